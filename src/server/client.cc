// Client: the v1 protocol from the calling side (see client.h).
#include "server/client.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "esdb/streams.grpc.pb.h"
#include "server/client_calls.h"
#include "server/protocol.h"
#include "server/server.h"

namespace cairn::server {

namespace pb = event_store::client::streams;

Status FromGrpc(const grpc::Status& s, const grpc::ClientContext& context, std::string_view what) {
  std::string exception;
  for (const auto& [k, v] : context.GetServerTrailingMetadata()) {
    if (std::string_view(k.data(), k.size()) == "exception") exception.assign(v.data(), v.size());
  }
  return FromGrpcCode(s, exception, what);
}

Status FromGrpcCode(const grpc::Status& s, std::string_view exception, std::string_view what) {
  std::string message = fmt::format("{}: {} (gRPC code {})", what, s.error_message(), static_cast<int>(s.error_code()));
  if (exception == "stream-deleted") return Status::NotFound(message, ErrorDetail::kStreamDeleted);
  if (exception == "stream-not-found") return Status::NotFound(message, ErrorDetail::kStreamNotFound);
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return Status::InvalidArgument(message);
    case grpc::StatusCode::NOT_FOUND:
      return Status::NotFound(message);
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Status::Unavailable(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Status::ResourceExhausted(message);
    case grpc::StatusCode::PERMISSION_DENIED:
      return Status(StatusCode::kPermissionDenied, message);
    case grpc::StatusCode::UNAUTHENTICATED:
      return Status(StatusCode::kUnauthenticated, message);
    default:
      return Status::Internal(message);
  }
}

Result<AppendResult> AppendCall(pb::Streams::Stub* stub, grpc::ClientContext* context, std::string_view stream,
                                ExpectedVersion expected, std::span<const EventData> events) {
  pb::AppendResp response;
  auto writer = stub->Append(context, &response);
  pb::AppendReq req;
  auto* options = req.mutable_options();
  options->mutable_stream_identifier()->set_stream_name(stream.data(), stream.size());
  switch (expected.kind()) {
    case ExpectedVersion::Kind::kAny:
      options->mutable_any();
      break;
    case ExpectedVersion::Kind::kNoStream:
      options->mutable_no_stream();
      break;
    case ExpectedVersion::Kind::kStreamExists:
      options->mutable_stream_exists();
      break;
    case ExpectedVersion::Kind::kExact:
      options->set_revision(expected.version());
      break;
  }
  bool open = writer->Write(req);
  for (const EventData& e : events) {
    if (!open) break;
    req.Clear();
    auto* m = req.mutable_proposed_message();
    if (!e.id.IsNil()) UuidToProto(e.id, /*structured=*/false, m->mutable_id());
    (*m->mutable_metadata())["type"] = e.type;
    (*m->mutable_metadata())["content-type"] =
        std::string(e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes);
    m->set_custom_metadata(e.metadata);
    m->set_data(e.data);
    open = writer->Write(req);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s, *context, fmt::format("append to {}", stream));
  if (response.has_wrong_expected_version()) {
    const auto& w = response.wrong_expected_version();
    std::optional<uint64_t> actual;
    if (w.has_current_revision()) actual = w.current_revision();
    return Status::WrongExpectedVersion(fmt::format("append to {}: wrong expected version", stream), actual);
  }
  const auto& ok = response.success();
  AppendResult result;
  result.next_version = ok.has_current_revision() ? ok.current_revision() + 1 : 0;
  result.first_version = result.next_version - std::min<uint64_t>(result.next_version, events.size());
  if (ok.has_position()) result.position = Position(ok.position().commit_position());
  return result;
}

namespace {

class GrpcClient final : public Client {
 public:
  explicit GrpcClient(std::shared_ptr<grpc::Channel> channel) : stub_(pb::Streams::NewStub(channel)) {}
  ~GrpcClient() override {
    std::shared_ptr<Batch> batch;
    {
      std::lock_guard lock(batch_mu_);
      batch = std::move(batch_);
    }
    if (batch) batch->Close();
  }

  // As the official clients do: every append on one long BatchAppend call (no call setup per
  // append). Appends from several threads are in flight on the call at once, each answered
  // under its correlation id.
  Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                              std::span<const EventData> events) override {
    pb::BatchAppendReq req;
    const std::string id = Uuid::V7().ToString();
    req.mutable_correlation_id()->set_string(id);
    auto* o = req.mutable_options();
    o->mutable_stream_identifier()->set_stream_name(stream.data(), stream.size());
    switch (expected.kind()) {
      case ExpectedVersion::Kind::kAny: o->mutable_any(); break;
      case ExpectedVersion::Kind::kNoStream: o->mutable_no_stream(); break;
      case ExpectedVersion::Kind::kStreamExists: o->mutable_stream_exists(); break;
      case ExpectedVersion::Kind::kExact: o->set_stream_position(expected.version()); break;
    }
    for (const EventData& e : events) {
      auto* m = req.add_proposed_messages();
      if (!e.id.IsNil()) UuidToProto(e.id, /*structured=*/false, m->mutable_id());
      (*m->mutable_metadata())["type"] = e.type;
      (*m->mutable_metadata())["content-type"] =
          std::string(e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes);
      m->set_custom_metadata(e.metadata);
      m->set_data(e.data);
    }
    req.set_is_final(true);
    std::shared_ptr<Batch> batch;
    {
      std::lock_guard lock(batch_mu_);
      if (!batch_ || batch_->broken()) {
        if (batch_) batch_->Close();
        batch_ = std::make_shared<Batch>(stub_.get());
      }
      batch = batch_;
    }
    auto answer = batch->Send(id, req);
    if (!answer.ok()) return answer.status().WithContext(fmt::format("append to {}", stream));
    const pb::BatchAppendResp& resp = *answer;
    if (resp.has_success()) {
      const auto& ok = resp.success();
      AppendResult result;
      result.next_version = ok.has_current_revision() ? ok.current_revision() + 1 : 0;
      result.first_version = result.next_version - std::min<uint64_t>(result.next_version, events.size());
      if (ok.has_position()) result.position = Position(ok.position().commit_position());
      return result;
    }
    const auto& error = resp.error();
    event_store::client::WrongExpectedVersion w;
    if (error.details().UnpackTo(&w)) {
      std::optional<uint64_t> actual;
      if (w.has_current_stream_revision()) actual = w.current_stream_revision();
      return Status::WrongExpectedVersion(fmt::format("append to {}: wrong expected version", stream), actual);
    }
    return FromGrpcCode(grpc::Status(static_cast<grpc::StatusCode>(error.code()), error.message()), "",
                        fmt::format("append to {}", stream));
  }

  Status ReadAll(uint64_t max_count, const std::function<void(const RecordedEventView&)>& fn) override {
    pb::ReadReq req;
    auto* o = req.mutable_options();
    o->mutable_all()->mutable_start();
    o->set_read_direction(pb::ReadReq::Options::Forwards);
    o->set_count(max_count);
    o->mutable_no_filter();
    o->mutable_uuid_option()->mutable_structured();
    grpc::ClientContext context;
    auto reader = stub_->Read(&context, req);
    pb::ReadResp resp;
    RecordedEventView view;
    while (reader->Read(&resp)) {
      if (!resp.has_event()) continue;
      const auto& e = resp.event().event();
      view.stream = e.stream_identifier().stream_name();
      view.version = e.stream_revision();
      view.position = Position(e.commit_position());
      view.id = UuidFromProto(e.id()).value_or(Uuid{});
      auto type = e.metadata().find("type");
      view.type = type == e.metadata().end() ? std::string_view() : std::string_view(type->second);
      view.data = e.data();
      view.metadata = e.custom_metadata();
      fn(view);
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return FromGrpc(s, context, "read $all");
    return Status::Ok();
  }

 private:
  // One BatchAppend call: writes from any thread (one at a time), a reader thread that hands each
  // answer to the append waiting for its correlation id.
  class Batch {
   public:
    explicit Batch(pb::Streams::Stub* stub) : call_(stub->BatchAppend(&context_)) {
      reader_ = std::thread([this] { ReadAnswers(); });
    }
    ~Batch() { Close(); }

    bool broken() {
      std::lock_guard lock(mu_);
      return ended_;
    }

    // Sends one append and waits for its answer.
    Result<pb::BatchAppendResp> Send(const std::string& id, const pb::BatchAppendReq& req) {
      Waiting waiting;
      {
        std::lock_guard lock(mu_);
        if (ended_) return Status::Unavailable("the batch append call ended");
        waiting_[id] = &waiting;
      }
      bool written;
      {
        std::lock_guard lock(write_mu_);
        written = call_->Write(req);
      }
      std::unique_lock lock(mu_);
      if (!written) {
        ended_ = true;
        waiting_.erase(id);
        return Status::Unavailable("the batch append call ended");
      }
      cv_.wait(lock, [&] { return waiting.answer.has_value() || ended_; });
      waiting_.erase(id);
      if (!waiting.answer) return ended_status_;
      return std::move(*waiting.answer);
    }

    // Half-closes the call and waits for the reader (idempotent).
    void Close() {
      std::call_once(closed_, [&] {
        {
          std::lock_guard lock(write_mu_);
          call_->WritesDone();
        }
        reader_.join();
      });
    }

   private:
    struct Waiting {
      std::optional<pb::BatchAppendResp> answer;
    };

    void ReadAnswers() {
      pb::BatchAppendResp resp;
      while (call_->Read(&resp)) {
        std::lock_guard lock(mu_);
        auto it = waiting_.find(resp.correlation_id().string());
        if (it != waiting_.end()) it->second->answer = std::move(resp);
        cv_.notify_all();
      }
      grpc::Status s = call_->Finish();
      std::lock_guard lock(mu_);
      ended_ = true;
      ended_status_ = FromGrpc(s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "the batch append call ended") : s,
                               context_, "batch append");
      cv_.notify_all();
    }

    grpc::ClientContext context_;
    std::unique_ptr<grpc::ClientReaderWriter<pb::BatchAppendReq, pb::BatchAppendResp>> call_;
    std::mutex write_mu_;
    std::mutex mu_;  // guards what follows
    std::condition_variable cv_;
    std::map<std::string, Waiting*> waiting_;
    bool ended_ = false;
    Status ended_status_;
    std::once_flag closed_;
    std::thread reader_;
  };

  std::unique_ptr<pb::Streams::Stub> stub_;
  std::mutex batch_mu_;
  std::shared_ptr<Batch> batch_;
};

}  // namespace

Result<std::unique_ptr<Client>> Client::Connect(std::string_view address) {
  CAIRN_RETURN_IF_ERROR(ParseHostPort(address, "server address").status());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // A channel of its own (not shared by gRPC's subchannel pool), so each Client is one connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(std::string(address), grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<Client>(std::make_unique<GrpcClient>(std::move(channel)));
}

}  // namespace cairn::server

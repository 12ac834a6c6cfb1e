// Client: the v1 protocol from the calling side (see client.h).
#include "server/client.h"

#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "auth/security.h"
#include "esdb/streams.grpc.pb.h"
#include "server/batch_append_wire.h"
#include "server/client_calls.h"
#include "server/protocol.h"
#include "server/h2_client.h"
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

AppendResult BatchAppendResult(const BatchAppendSuccessView& success, size_t events) {
  AppendResult result;
  result.next_version = success.current ? *success.current + 1 : 0;
  result.first_version = result.next_version - std::min<uint64_t>(result.next_version, events);
  if (success.position) result.position = *success.position;
  return result;
}

Result<AppendResult> BatchAppendResult(const pb::BatchAppendResp& resp, std::string_view stream, size_t events) {
  if (resp.has_success()) {
    const auto& ok = resp.success();
    BatchAppendSuccessView view;
    if (ok.has_current_revision()) view.current = ok.current_revision();
    if (ok.has_position()) view.position = Position(ok.position().commit_position());
    return BatchAppendResult(view, events);
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

namespace {

using AppendDone = std::function<void(Result<AppendResult>)>;

// BatchAppend by name on the generic stub: requests go out as bytes built by
// EncodeBatchAppendReq (batch_append_wire.h), without the generated message and its metadata
// map. gRPC keeps a pointer to the name for the call's life, so it is a static.
const std::string kBatchAppendMethod = "/event_store.client.streams.Streams/BatchAppend";

// `bytes` as a one-slice ByteBuffer that owns them (no copy).
grpc::ByteBuffer OwningBuffer(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

// One long Streams.BatchAppend call on gRPC's callback API: appends from any thread are queued
// and written one after another (corked while more are queued, so that a burst shares frames);
// each answer goes to the append waiting under its correlation id, on gRPC's thread. No thread of
// its own. Its owner destroys it after Close(), on the owner's thread: its ClientContext may hold
// the channel's last reference, and a channel must not be destroyed on one of gRPC's callback
// threads (libgrpc++ 1.51 then frees its callback queue twice).
class BatchCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  static std::unique_ptr<BatchCall> Start(grpc::GenericStub* stub, const std::string& authorization) {
    std::unique_ptr<BatchCall> call(new BatchCall());
    if (!authorization.empty()) call->context_.AddMetadata("authorization", authorization);
    stub->PrepareBidiStreamingCall(&call->context_, kBatchAppendMethod, grpc::StubOptions(), call.get());
    call->StartRead(&call->resp_bytes_);
    call->AddHold();  // until the call is closed or ended: writes start from outside reactions
    call->StartCall();
    return call;
  }

  bool ended() {
    std::lock_guard lock(mu_);
    return ended_;
  }

  // gRPC is done with the call (OnDone has run).
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }

  // Queues one append; `done` runs with its answer (or the call's end) on a gRPC thread, or at
  // once on this thread when the call has already ended.
  // `key`: the low half of its correlation id.
  void Send(std::unique_ptr<grpc::ByteBuffer> req, uint64_t key, std::string stream, size_t events, AppendDone done) {
    const grpc::ByteBuffer* write = nullptr;
    bool more = false;
    {
      std::unique_lock lock(mu_);
      if (ended_ || closing_) {
        lock.unlock();
        done(Status::Unavailable(fmt::format("append to {}: the batch append call ended", stream)));
        return;
      }
      waiting_.emplace(key, Waiting{std::move(stream), events, std::move(done)});
      queue_.push_back(std::move(req));
      if (!writing_) {
        writing_ = true;
        write = queue_.front().get();
        more = queue_.size() > 1;
      }
    }
    if (write != nullptr) Write(write, more);
  }

  // Half-closes the call once the queued appends are written, and waits until gRPC is done with
  // it (every append answered or failed). Idempotent.
  void Close() {
    bool writes_done = false;
    {
      std::unique_lock lock(mu_);
      if (!closing_) {
        closing_ = true;
        writes_done = !writing_ && !ended_;
        if (writes_done) {
          writes_done_started_ = true;
          hold_released_ = true;
        } else {
          ReleaseHoldLocked();  // a write in flight (OnWriteDone half-closes) or the call ended
        }
      }
    }
    if (writes_done) {
      StartWritesDone();
      RemoveHold();
    }
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return done_; });
  }

  void OnWriteDone(bool ok) override {
    const grpc::ByteBuffer* next = nullptr;
    bool more = false;
    bool writes_done = false;
    {
      std::lock_guard lock(mu_);
      queue_.pop_front();
      if (!ok) ended_ = true;  // the call is broken: OnDone fails the waiting appends
      if (!ended_ && !queue_.empty()) {
        next = queue_.front().get();
        more = queue_.size() > 1;
      } else {
        writing_ = false;
        writes_done = closing_ && !ended_ && !writes_done_started_;
        if (writes_done) writes_done_started_ = true;
        if (ended_) ReleaseHoldLocked();
      }
    }
    if (next != nullptr) {
      Write(next, more);
    } else if (writes_done) {
      StartWritesDone();
    }
  }

  void OnReadDone(bool ok) override {
    if (ok && !grpc::SerializationTraits<pb::BatchAppendResp>::Deserialize(&resp_bytes_, &resp_).ok()) {
      context_.TryCancel();  // not an answer: the call ends, and OnDone fails what still waits
      ok = false;
    }
    if (!ok) {  // the server ended the call: OnDone follows once the writes are done
      std::lock_guard lock(mu_);
      ended_ = true;
      if (!writing_) ReleaseHoldLocked();
      return;
    }
    Waiting w;
    bool found = false;
    {
      std::lock_guard lock(mu_);
      auto it = waiting_.find(static_cast<uint64_t>(resp_.correlation_id().structured().least_significant_bits()));
      if (it != waiting_.end()) {
        w = std::move(it->second);
        waiting_.erase(it);
        found = true;
      }
    }
    if (found) w.done(BatchAppendResult(resp_, w.stream, w.events));
    StartRead(&resp_bytes_);
  }

  void OnDone(const grpc::Status& s) override {
    // An append still waiting has an unknown outcome: kUnavailable, unless the server refused
    // the caller (credentials, permissions).
    const bool refused =
        s.error_code() == grpc::StatusCode::UNAUTHENTICATED || s.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    const Status status =
        refused ? FromGrpc(s, context_, "batch append")
                : Status::Unavailable(fmt::format("the batch append call ended before the answer: {} (gRPC code {})",
                                                  s.ok() ? "the server closed it" : s.error_message(),
                                                  static_cast<int>(s.error_code())));
    std::map<uint64_t, Waiting> failed;
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      failed.swap(waiting_);
    }
    for (auto& [key, w] : failed) w.done(status.WithContext(fmt::format("append to {}", w.stream)));
    std::lock_guard lock(mu_);
    done_ = true;
    done_cv_.notify_all();  // the last use of this object on gRPC's side
  }

 private:
  struct Waiting {
    std::string stream;
    size_t events = 0;
    AppendDone done;
  };

  BatchCall() = default;

  // The call's first write is never corked (gRPC 1.51 does not complete a corked first write).
  void Write(const grpc::ByteBuffer* req, bool more) {
    grpc::WriteOptions options;
    if (more && written_++ > 0) options.set_buffer_hint();
    StartWrite(req, options);
  }

  // The hold taken at Start, released once; gRPC may end the call after it. Safe under mu_:
  // RemoveHold never runs OnDone inline (libgrpc++ schedules it).
  void ReleaseHoldLocked() {
    if (hold_released_) return;
    hold_released_ = true;
    RemoveHold();
  }

  grpc::ClientContext context_;
  grpc::ByteBuffer resp_bytes_;     // the answer being read (reads are one at a time)
  pb::BatchAppendResp resp_;        // ... parsed
  uint64_t written_ = 0;            // writes started; touched by one write at a time
  std::mutex mu_;                   // guards what follows
  std::condition_variable done_cv_;
  std::deque<std::unique_ptr<grpc::ByteBuffer>> queue_;  // front: being written
  std::map<uint64_t, Waiting> waiting_;                     // by correlation id (low bits)
  bool writing_ = false;
  bool closing_ = false;
  bool writes_done_started_ = false;
  bool ended_ = false;
  bool hold_released_ = false;
  bool done_ = false;
};

class GrpcClient final : public Client {
 public:
  GrpcClient(std::string address, std::shared_ptr<grpc::Channel> channel, std::string authorization,
             std::unique_ptr<H2Appender> h2)
      : address_(std::move(address)),
        stub_(pb::Streams::NewStub(channel)),
        generic_(channel),
        id_high_(HighHalf(Uuid::V7())),
        authorization_(std::move(authorization)),
        h2_(std::move(h2)) {}
  ~GrpcClient() override {
    h2_.reset();  // its call ends, its thread joins
    std::unique_ptr<BatchCall> batch;
    std::vector<std::unique_ptr<BatchCall>> ended;
    {
      std::lock_guard lock(batch_mu_);
      batch = std::move(batch_);
      ended = std::move(ended_);
    }
    if (batch) batch->Close();
    for (auto& old : ended) old->Close();
  }

  // As the official clients do: every append on one long BatchAppend call (no call setup per
  // append), several in flight at once, each answered under its correlation id.
  void AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                   AppendDone done) override {
    if (h2_) {
      h2_->AppendAsync(stream, expected, events, std::move(done));
      return;
    }
    const uint64_t key = next_id_.fetch_add(1, std::memory_order_relaxed);
    auto req = std::make_unique<grpc::ByteBuffer>(OwningBuffer(
        EncodeBatchAppendReq(id_high_, static_cast<int64_t>(key), stream, expected, events)));
    BatchCall* batch;
    {
      std::lock_guard lock(batch_mu_);
      if (!batch_ || batch_->ended()) {
        std::erase_if(ended_, [](const std::unique_ptr<BatchCall>& old) { return old->done(); });
        if (batch_) ended_.push_back(std::move(batch_));
        batch_ = BatchCall::Start(&generic_, authorization_);
      }
      batch = batch_.get();  // lives until this client is destroyed
    }
    batch->Send(std::move(req), key, std::string(stream), events.size(), std::move(done));
  }

  Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                              std::span<const EventData> events) override {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<AppendResult>> answer;
    AppendAsync(stream, expected, events, [&](Result<AppendResult> r) {
      std::lock_guard lock(mu);
      answer.emplace(std::move(r));
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return answer.has_value(); });
    return std::move(*answer);
  }

  // Over an HTTP/2 connection of its own with nghttp2 (h2_client.h): gRPC's C++ client costs
  // about three times the CPU per answer.
  Status ReadAll(uint64_t max_count, const std::function<void(const RecordedEventView&)>& fn) override {
    return ReadAllOverHttp2(address_, max_count, fn);
  }

 private:
  static int64_t HighHalf(const Uuid& u) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | u.bytes[static_cast<size_t>(i)];
    return static_cast<int64_t>(v);
  }

  std::string address_;
  std::unique_ptr<pb::Streams::Stub> stub_;
  grpc::GenericStub generic_;            // BatchAppend, as bytes
  const int64_t id_high_;               // the correlation ids' high half, the low half counts
  std::atomic<uint64_t> next_id_{1};
  const std::string authorization_;   // the appends' authorization header, "" for none
  std::unique_ptr<H2Appender> h2_;    // ClientOptions::appends == kH2: every append goes there
  std::mutex batch_mu_;
  std::unique_ptr<BatchCall> batch_;                // the call new appends go on
  std::vector<std::unique_ptr<BatchCall>> ended_;   // earlier calls, destroyed here once done
};

}  // namespace

Result<std::unique_ptr<Client>> Client::Connect(std::string_view address, ClientOptions options) {
  CAIRN_RETURN_IF_ERROR(ParseHostPort(address, "server address").status());
  const std::string authorization =
      options.user.empty() ? std::string() : auth::BasicCredentials(options.user, options.password);
  std::unique_ptr<H2Appender> h2;
  if (options.appends == AppendTransport::kH2) {
    CAIRN_ASSIGN_OR_RETURN(h2, H2Appender::Start(address, authorization));
  }
  TuneGrpcRuntime();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // A channel of its own (not shared by gRPC's subchannel pool), so each Client is one connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(std::string(address), grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<Client>(std::make_unique<GrpcClient>(std::string(address), std::move(channel), authorization, std::move(h2)));
}

}  // namespace cairn::server

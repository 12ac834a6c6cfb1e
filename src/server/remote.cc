// The remote store and remote subscriptions (remote.h): Store calls and catch-up subscriptions
// as v1 protocol calls.
#include "server/remote.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "esdb/streams.grpc.pb.h"
#include "server/client_calls.h"
#include "server/protocol.h"
#include "server/server.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;
using ReadOptions = pb::ReadReq::Options;

constexpr std::string_view kMetadataType = "$metadata";


// The server's event as a view into `e` (valid while `e` is).
RecordedEventView ViewOf(const pb::ReadResp::ReadEvent::RecordedEvent& e) {
  RecordedEventView v;
  v.stream = e.stream_identifier().stream_name();
  v.version = e.stream_revision();
  v.position = Position(e.commit_position());
  v.id = UuidFromProto(e.id()).value_or(Uuid{});
  if (auto t = e.metadata().find("type"); t != e.metadata().end()) v.type = t->second;
  if (auto ct = e.metadata().find("content-type"); ct != e.metadata().end()) {
    v.content_type = ct->second == kContentTypeJson ? ContentType::kJson : ContentType::kBytes;
  }
  if (auto created = e.metadata().find("created"); created != e.metadata().end()) {
    v.recorded_at = Timestamp{std::strtoll(created->second.c_str(), nullptr, 10) * 100};
  }
  v.data = e.data();
  v.metadata = e.custom_metadata();
  return v;
}

struct Connection {
  RemoteUrl url;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Streams::Stub> stub;

  void Prepare(grpc::ClientContext* context) const {
    if (!url.user.empty()) context->AddMetadata("authorization", auth::BasicCredentials(url.user, url.password));
  }
};

Result<std::shared_ptr<Connection>> Connect(std::string_view text) {
  CAIRN_ASSIGN_OR_RETURN(RemoteUrl url, ParseRemoteUrl(text));
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (url.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!url.ca_file.empty()) {
      std::ifstream in(url.ca_file, std::ios::binary);
      if (!in) return Status::InvalidArgument(fmt::format("tlsCAFile {}: cannot read the file", url.ca_file));
      ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto c = std::make_shared<Connection>();
  c->url = url;
  c->channel = grpc::CreateCustomChannel(url.address, credentials, args);
  c->stub = pb::Streams::NewStub(c->channel);
  return c;
}

// A cursor over one Streams.Read call: pulls the server's messages as Next() asks.
class RemoteCursor final : public CursorImpl {
 public:
  RemoteCursor(std::shared_ptr<Connection> c, const pb::ReadReq& req, std::string what, EventFilter filter,
               uint64_t max_count, std::optional<uint64_t> skip_position)
      : conn_(std::move(c)), what_(std::move(what)), filter_(std::move(filter)), remaining_(max_count),
        skip_position_(skip_position) {
    conn_->Prepare(&context_);
    reader_ = conn_->stub->Read(&context_, req);
  }
  ~RemoteCursor() override {
    if (!finished_) {
      context_.TryCancel();
      (void)reader_->Finish();
    }
  }

  // Reads the first message ahead: a stream the server reports missing or deleted is the
  // read's error, not the cursor's.
  Status Prime() {
    primed_ = Pull();
    if (!primed_ && !status_.ok()) return status_;
    if (not_found_) return Status::NotFound(fmt::format("stream {} not found", what_), ErrorDetail::kStreamNotFound);
    return Status::Ok();
  }

  bool Next(RecordedEventView* out) override {
    while (remaining_ > 0) {
      if (!primed_ && !Pull()) return false;
      primed_ = false;
      *out = ViewOf(resp_.event().event());
      checkpoint_ = Position(out->position.value() + 1);
      if (skip_position_ && out->position.value() == *skip_position_) {
        skip_position_.reset();
        continue;
      }
      skip_position_.reset();
      if (!filter_.Empty() && !filter_.Matches(out->stream, out->type)) continue;
      --remaining_;
      return true;
    }
    return false;
  }
  Status status() const override { return status_; }
  Position checkpoint() const override { return checkpoint_; }

 private:
  // The next event message into resp_; false at the end (status_ says why).
  bool Pull() {
    while (!finished_ && reader_->Read(&resp_)) {
      if (resp_.has_event()) return true;
      if (resp_.has_stream_not_found()) not_found_ = true;
    }
    if (!finished_) {
      finished_ = true;
      grpc::Status s = reader_->Finish();
      if (!s.ok()) status_ = FromGrpc(s, context_, "read " + what_);
    }
    return false;
  }

  std::shared_ptr<Connection> conn_;
  std::string what_;
  EventFilter filter_;
  uint64_t remaining_;
  std::optional<uint64_t> skip_position_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<pb::ReadResp>> reader_;
  pb::ReadResp resp_;
  bool primed_ = false;
  bool finished_ = false;
  bool not_found_ = false;
  Status status_;
  Position checkpoint_;
};

class RemoteStore final : public Store {
 public:
  explicit RemoteStore(std::shared_ptr<Connection> c) : conn_(std::move(c)) {}

  Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                              const AppendOptions&) override {
    grpc::ClientContext context;
    conn_->Prepare(&context);
    return AppendCall(conn_->stub.get(), &context, stream, expected, events);
  }

  void AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                   AppendCallback done, const AppendOptions& options) override {
    done(Append(stream, expected, events, options));
  }

  Result<EventCursor> ReadStream(std::string_view stream, const ReadStreamOptions& options) override {
    if (options.as_of) return Status::NotSupported("as_of (temporal reads) over the gRPC protocol");
    pb::ReadReq req;
    auto* o = req.mutable_options();
    auto* so = o->mutable_stream();
    so->mutable_stream_identifier()->set_stream_name(stream.data(), stream.size());
    const bool forward = options.direction == ReadDirection::kForward;
    if (options.from) {
      so->set_revision(*options.from);
    } else if (forward) {
      so->mutable_start();
    } else {
      so->mutable_end();
    }
    o->set_read_direction(forward ? ReadOptions::Forwards : ReadOptions::Backwards);
    o->set_count(options.max_count);
    o->mutable_no_filter();
    o->mutable_uuid_option()->mutable_string();
    auto cursor = std::make_unique<RemoteCursor>(conn_, req, std::string(stream), EventFilter{}, options.max_count,
                                                 std::nullopt);
    CAIRN_RETURN_IF_ERROR(cursor->Prime());
    return EventCursor(std::move(cursor));
  }

  Result<EventCursor> ReadAll(const ReadAllOptions& options) override {
    if (options.as_of) return Status::NotSupported("as_of (temporal reads) over the gRPC protocol");
    pb::ReadReq req;
    auto* o = req.mutable_options();
    auto* ao = o->mutable_all();
    const bool forward = options.direction == ReadDirection::kForward;
    std::optional<uint64_t> skip;
    if (options.from == Position::Start()) {
      ao->mutable_start();
    } else if (options.from == Position::End()) {
      ao->mutable_end();
    } else if (forward) {
      // This client's checkpoints are "event position + 1": ask from the event, then skip it.
      const uint64_t p = options.from.value() - 1;
      ao->mutable_position()->set_commit_position(p);
      ao->mutable_position()->set_prepare_position(p);
      skip = p;
    } else {
      ao->mutable_position()->set_commit_position(options.from.value());
      ao->mutable_position()->set_prepare_position(options.from.value());
    }
    o->set_read_direction(forward ? ReadOptions::Forwards : ReadOptions::Backwards);
    // Filters are applied here, so the server's count cannot be the caller's.
    o->set_count(options.filter.Empty() && !skip ? options.max_count : std::numeric_limits<uint64_t>::max());
    o->mutable_no_filter();
    o->mutable_uuid_option()->mutable_string();
    auto cursor = std::make_unique<RemoteCursor>(conn_, req, "$all", options.filter, options.max_count, skip);
    CAIRN_RETURN_IF_ERROR(cursor->Prime());
    return EventCursor(std::move(cursor));
  }

  Result<Position> PositionAtTime(Timestamp) override {
    return Status::NotSupported("PositionAtTime over the gRPC protocol");
  }

  Result<StreamInfo> GetStreamInfo(std::string_view stream) override {
    StreamInfo info;
    ReadStreamOptions last;
    last.direction = ReadDirection::kBackward;
    last.max_count = 1;
    auto cursor = ReadStream(stream, last);
    if (cursor.ok()) {
      if (cursor->Next()) {
        info.exists = true;
        info.last_version = cursor->event().version;
        info.last_position = cursor->event().position;
      }
      CAIRN_RETURN_IF_ERROR(cursor->status());
    } else if (cursor.status().detail() == ErrorDetail::kStreamDeleted) {
      info.tombstoned = true;
      return info;
    } else if (cursor.status().code() != StatusCode::kNotFound) {
      return cursor.status();
    }
    auto meta = ReadStream("$$" + std::string(stream), last);
    if (meta.ok() && meta->Next()) {
      info.metadata_version = meta->event().version;
      CAIRN_ASSIGN_OR_RETURN(info.metadata, StreamMetadata::Parse(meta->event().data));
    }
    return info;
  }

  Result<AppendResult> SetStreamMetadata(std::string_view stream, ExpectedVersion expected,
                                         const StreamMetadata& metadata) override {
    EventData e{Uuid::V7(), std::string(kMetadataType), metadata.ToJson(), "", ContentType::kJson};
    return Append("$$" + std::string(stream), expected, std::span<const EventData>(&e, 1), AppendOptions{});
  }

  Result<AppendResult> DeleteStream(std::string_view stream, ExpectedVersion expected) override {
    pb::DeleteReq req;
    FillEnd(req.mutable_options(), stream, expected);
    pb::DeleteResp resp;
    grpc::ClientContext context;
    conn_->Prepare(&context);
    grpc::Status s = conn_->stub->Delete(&context, req, &resp);
    if (!s.ok()) return FromGrpc(s, context, fmt::format("delete {}", stream));
    AppendResult r;
    if (resp.has_position()) r.position = Position(resp.position().commit_position());
    return r;
  }

  Result<AppendResult> TombstoneStream(std::string_view stream, ExpectedVersion expected) override {
    pb::TombstoneReq req;
    FillEnd(req.mutable_options(), stream, expected);
    pb::TombstoneResp resp;
    grpc::ClientContext context;
    conn_->Prepare(&context);
    grpc::Status s = conn_->stub->Tombstone(&context, req, &resp);
    if (!s.ok()) return FromGrpc(s, context, fmt::format("tombstone {}", stream));
    AppendResult r;
    if (resp.has_position()) r.position = Position(resp.position().commit_position());
    return r;
  }

  Result<std::vector<StreamSummary>> ListStreams(const ListStreamsOptions&) override {
    return Status::NotSupported(
        "listing streams over the gRPC protocol (it has no such call): use the HTTP API's GET /streams");
  }

  Position HeadPosition() const override {
    ReadAllOptions last;
    last.direction = ReadDirection::kBackward;
    last.from = Position::End();
    last.max_count = 1;
    auto cursor = const_cast<RemoteStore*>(this)->ReadAll(last);
    if (cursor.ok() && cursor->Next()) return Position(cursor->event().position.value() + 1);
    return Position::Start();
  }

  Position WaitForAppend(Position after, std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const Position head = HeadPosition();
      if (head > after || std::chrono::steady_clock::now() >= deadline) return head;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(100), deadline - std::chrono::steady_clock::now()));
    }
  }

  Status Close() override { return Status::Ok(); }

 private:
  template <typename EndOptions>
  static void FillEnd(EndOptions* o, std::string_view stream, ExpectedVersion expected) {
    o->mutable_stream_identifier()->set_stream_name(stream.data(), stream.size());
    switch (expected.kind()) {
      case ExpectedVersion::Kind::kAny: o->mutable_any(); break;
      case ExpectedVersion::Kind::kNoStream: o->mutable_no_stream(); break;
      case ExpectedVersion::Kind::kStreamExists: o->mutable_stream_exists(); break;
      case ExpectedVersion::Kind::kExact: o->set_revision(expected.version()); break;
    }
  }

  std::shared_ptr<Connection> conn_;
};

// A subscription the server runs: a thread reads the call's messages into a small queue (the
// call's flow control holds the server back when the consumer is slow).
class RemoteSubscription final : public Subscription {
 public:
  RemoteSubscription(std::shared_ptr<Connection> c, pb::ReadReq req, bool all) : conn_(std::move(c)), all_(all) {
    conn_->Prepare(&context_);
    reader_ = conn_->stub->Read(&context_, req);
    thread_ = std::thread([this] { Run(); });
  }
  ~RemoteSubscription() override {
    Stop();
    thread_.join();
  }

  bool Next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    current_.reset();
    space_.notify_one();
    const auto ready = [&] { return !queue_.empty() || ended_; };
    if (timeout == std::chrono::milliseconds::max()) {
      cv_.wait(lock, ready);
    } else if (!cv_.wait_for(lock, timeout, ready)) {
      return false;
    }
    if (queue_.empty()) return false;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    space_.notify_one();
    const pb::ReadResp& r = *current_;
    message_ = SubscriptionMessage{};
    if (r.has_event()) {
      message_.kind = SubscriptionMessage::Kind::kEvent;
      message_.event = ViewOf(r.event().event());
      if (all_) {
        message_.checkpoint = message_.event.position;
      } else {
        message_.next_version = message_.event.version + 1;
      }
      next_version_ = message_.next_version;
    } else if (r.has_caught_up()) {
      message_.kind = SubscriptionMessage::Kind::kCaughtUp;
      live_ = true;
    } else if (r.has_fell_behind()) {
      message_.kind = SubscriptionMessage::Kind::kFellBehind;
      live_ = false;
    } else {
      message_.kind = SubscriptionMessage::Kind::kCheckpoint;
      message_.checkpoint = Position(r.checkpoint().commit_position());
    }
    if (all_) checkpoint_ = message_.checkpoint;
    return true;
  }
  const SubscriptionMessage& message() const override { return message_; }
  void Stop() override { context_.TryCancel(); }
  bool done() const override {
    std::lock_guard lock(mu_);
    return ended_ && queue_.empty();
  }
  Status status() const override {
    std::lock_guard lock(mu_);
    return status_;
  }
  bool live() const override { return live_; }
  Position checkpoint() const override { return checkpoint_; }
  StreamVersion next_version() const override { return next_version_; }

 private:
  void Run() {
    for (;;) {
      auto resp = std::make_unique<pb::ReadResp>();
      if (!reader_->Read(resp.get())) break;
      if (resp->has_confirmation()) continue;
      if (!resp->has_event() && !resp->has_caught_up() && !resp->has_fell_behind() && !resp->has_checkpoint()) continue;
      std::unique_lock lock(mu_);
      space_.wait(lock, [&] { return queue_.size() < kQueue; });
      queue_.push_back(std::move(resp));
      cv_.notify_one();
    }
    grpc::Status s = reader_->Finish();
    std::lock_guard lock(mu_);
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) status_ = FromGrpc(s, context_, "subscription");
    ended_ = true;
    cv_.notify_all();
  }

  static constexpr size_t kQueue = 256;
  std::shared_ptr<Connection> conn_;
  const bool all_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<pb::ReadResp>> reader_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_, space_;
  std::deque<std::unique_ptr<pb::ReadResp>> queue_;  // under mu_
  bool ended_ = false;                                // under mu_
  Status status_;                                     // under mu_
  std::unique_ptr<pb::ReadResp> current_;  // what message_ points into
  SubscriptionMessage message_;
  bool live_ = false;
  Position checkpoint_;
  StreamVersion next_version_ = 0;
};

}  // namespace

bool IsRemoteUrl(std::string_view url) {
  return url.starts_with("esdb://") || url.starts_with("kurrentdb://") || url.starts_with("kdb://") ||
         url.starts_with("esdb+discover://") || url.starts_with("kurrentdb+discover://");
}

Result<RemoteUrl> ParseRemoteUrl(std::string_view text) {
  if (text.find("+discover://") != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("server URL {}: +discover (cluster gossip) is not supported; give one "
                                               "node as esdb://HOST:PORT",
                                               text));
  }
  const size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos || !IsRemoteUrl(text)) {
    return Status::InvalidArgument(fmt::format("server URL {}: expected esdb://[USER:PASSWORD@]HOST:PORT[?tls=...]", text));
  }
  std::string_view rest = text.substr(scheme_end + 3);
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  RemoteUrl u;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Status::InvalidArgument(fmt::format("server URL {}: credentials must be USER:PASSWORD", text));
    }
    u.user = std::string(cred.substr(0, colon));
    u.password = std::string(cred.substr(colon + 1));
  }
  CAIRN_RETURN_IF_ERROR(ParseHostPort(rest, "server URL host:port").status());
  u.address = std::string(rest);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = kv.find('=');
    std::string_view key = kv.substr(0, eq), value = eq == std::string_view::npos ? "" : kv.substr(eq + 1);
    std::string lower(key);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "tls") {
      if (value != "true" && value != "false") {
        return Status::InvalidArgument(fmt::format("server URL {}: tls must be true or false", text));
      }
      u.tls = value == "true";
    } else if (lower == "tlscafile") {
      u.ca_file = std::string(value);
    }
    // Other client settings (timeouts, keep-alive, node preference) do not apply to this client.
  }
  return u;
}

Result<std::unique_ptr<Store>> OpenRemoteStore(std::string_view url) {
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Connection> c, Connect(url));
  return std::unique_ptr<Store>(std::make_unique<RemoteStore>(std::move(c)));
}

Result<std::unique_ptr<Subscription>> SubscribeRemote(std::string_view url, std::string_view stream,
                                                      std::optional<uint64_t> from, const EventFilter& filter) {
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Connection> c, Connect(url));
  pb::ReadReq req;
  auto* o = req.mutable_options();
  const bool all = stream == "$all";
  if (all) {
    auto* ao = o->mutable_all();
    if (from && *from == 0) {
      ao->mutable_start();
    } else if (from) {
      ao->mutable_position()->set_commit_position(*from);
      ao->mutable_position()->set_prepare_position(*from);
    } else {
      ao->mutable_end();
    }
    if (!filter.Empty()) {
      if (!filter.event_types.empty() && (!filter.stream_prefixes.empty() || !filter.categories.empty())) {
        return Status::InvalidArgument("a server-side filter takes event types or stream prefixes, not both");
      }
      auto* fo = o->mutable_filter();
      if (!filter.event_types.empty()) {
        // Exact types as a regular expression: ^(a|b)$ with the names' specials escaped.
        std::string re = "^(";
        for (size_t i = 0; i < filter.event_types.size(); ++i) {
          if (i > 0) re += '|';
          for (char ch : filter.event_types[i]) {
            if (std::string_view("\\^$.|?*+()[]{}").find(ch) != std::string_view::npos) re += '\\';
            re += ch;
          }
        }
        re += ")$";
        fo->mutable_event_type()->set_regex(re);
      } else {
        auto* e = fo->mutable_stream_identifier();
        for (const auto& p : filter.stream_prefixes) e->add_prefix(p);
        for (const auto& cat : filter.categories) e->add_prefix(cat + "-");
      }
      fo->set_max(1000);
      fo->set_checkpointintervalmultiplier(1);
    } else {
      o->mutable_no_filter();
    }
  } else {
    auto* so = o->mutable_stream();
    so->mutable_stream_identifier()->set_stream_name(stream.data(), stream.size());
    if (from && *from == 0) {
      so->mutable_start();
    } else if (from) {
      so->set_revision(*from - 1);  // the protocol's subscriptions start after the given revision
    } else {
      so->mutable_end();
    }
    o->mutable_no_filter();
  }
  o->set_read_direction(ReadOptions::Forwards);
  o->mutable_subscription();
  o->mutable_uuid_option()->mutable_string();
  return std::unique_ptr<Subscription>(std::make_unique<RemoteSubscription>(std::move(c), std::move(req), all));
}

}  // namespace cairn::server

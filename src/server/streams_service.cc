// Streams: Append, Read (reads and catch-up subscriptions), Delete and Tombstone over the public
// Store API. The protocol's meanings, and where cairn differs, are in docs/protocol.md.
#include <fmt/format.h>
#include <re2/re2.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/batch_append_session.h"
#include "server/batch_append_wire.h"
#include "server/protocol.h"
#include "server/services.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;
using Options = pb::ReadReq::Options;

// How often an idle subscription looks at the stop flag and whether its client went away.
constexpr std::chrono::milliseconds kSubscriptionPoll{200};
// At most one checkpoint per this long while a filtered $all subscription skips events.
constexpr std::chrono::milliseconds kCheckpointEvery{1000};

// A stream's metadata lives in "$$<stream>" as one "$metadata" event.
constexpr std::string_view kMetastreamPrefix = "$$";
constexpr std::string_view kMetadataType = "$metadata";

template <typename ExpectedOptions>
ExpectedVersion ExpectedFrom(const ExpectedOptions& o) {
  if (o.has_revision()) return ExpectedVersion::Exact(o.revision());
  if (o.has_no_stream()) return ExpectedVersion::NoStream();
  if (o.has_stream_exists()) return ExpectedVersion::StreamExists();
  return ExpectedVersion::Any();
}

// Delete and Tombstone: the same request and answer shapes around a different store call.
template <typename Request, typename Response, typename Op>
grpc::Status EndStream(grpc::ServerContext* context, const Request& request, Response* response, Op op) {
  const std::string& stream = request.options().stream_identifier().stream_name();
  const ExpectedVersion expected = ExpectedFrom(request.options());
  auto result = op(stream, expected);
  if (!result.ok()) return ToGrpcStatus(result.status(), context, stream, expected);
  response->mutable_position()->set_commit_position(result->position.value());
  response->mutable_position()->set_prepare_position(result->position.value());
  return grpc::Status::OK;
}

// The filter of a $all read: stream names or event types, by prefixes (any of them) or by a
// regular expression that must match somewhere in the text (as .NET's Regex.IsMatch does). RE2
// runs in time linear in the text, whatever pattern a client sends.
class ReadFilter {
 public:
  static Result<ReadFilter> From(const Options& options) {
    ReadFilter f;
    if (options.filter_option_case() != Options::kFilter) return f;
    const auto& fo = options.filter();
    const Options::FilterOptions::Expression* e = nullptr;
    if (fo.has_stream_identifier()) {
      f.target_ = Target::kStream;
      e = &fo.stream_identifier();
    } else if (fo.has_event_type()) {
      f.target_ = Target::kType;
      e = &fo.event_type();
    } else {
      return f;
    }
    if (e->prefix_size() > 0) {
      f.prefixes_.assign(e->prefix().begin(), e->prefix().end());
    } else if (!e->regex().empty()) {
      RE2::Options re_options;
      re_options.set_log_errors(false);
      f.regex_ = std::make_shared<RE2>(e->regex(), re_options);
      if (!f.regex_->ok()) {
        return Status::InvalidArgument(
            fmt::format("filter.regex: \"{}\" is not a regular expression: {}", e->regex(), f.regex_->error()));
      }
    }
    if (fo.has_max() && fo.max() > 0) {
      f.checkpoint_interval_ = uint64_t{fo.max()} * std::max<uint32_t>(1, fo.checkpointintervalmultiplier());
    }
    return f;
  }

  bool Active() const { return target_ != Target::kNone; }
  uint64_t checkpoint_interval() const { return checkpoint_interval_; }

  bool Matches(const RecordedEventView& e) const {
    if (target_ == Target::kNone) return true;
    std::string_view text = target_ == Target::kStream ? e.stream : e.type;
    if (!prefixes_.empty()) {
      for (const auto& p : prefixes_) {
        if (text.starts_with(p)) return true;
      }
      return false;
    }
    if (regex_) return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *regex_);
    return true;
  }

 private:
  enum class Target { kNone, kStream, kType };
  Target target_ = Target::kNone;
  std::vector<std::string> prefixes_;
  std::shared_ptr<RE2> regex_;  // RE2 is not copyable
  uint64_t checkpoint_interval_ = 1000;
};

// The answers of one Read call, in the id form the client asked for. One message is reused: an
// event after an event overwrites the fields in place (the strings and the metadata map keep their
// memory), so a long read builds each answer without allocating.
class ReadMessages {
 public:
  explicit ReadMessages(bool structured_ids) : structured_ids_(structured_ids) {}

  const pb::ReadResp& Event(const RecordedEventView& e) {
    if (!resp_.has_event()) resp_.Clear();
    auto* read_event = resp_.mutable_event();
    auto* rec = read_event->mutable_event();
    UuidToProto(e.id, structured_ids_, rec->mutable_id());
    rec->mutable_stream_identifier()->mutable_stream_name()->assign(e.stream.data(), e.stream.size());
    rec->set_stream_revision(e.version);
    rec->set_prepare_position(e.position.value());
    rec->set_commit_position(e.position.value());
    auto& md = *rec->mutable_metadata();
    md["type"].assign(e.type.data(), e.type.size());
    md["content-type"].assign(e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes);
    char created[24];
    const auto end = fmt::format_to_n(created, sizeof(created), "{}", TicksSinceEpoch(e.recorded_at)).out;
    md["created"].assign(created, end);
    rec->mutable_custom_metadata()->assign(e.metadata.data(), e.metadata.size());
    rec->mutable_data()->assign(e.data.data(), e.data.size());
    read_event->set_commit_position(e.position.value());
    return resp_;
  }

  const pb::ReadResp& Confirmation(const std::string& id) {
    resp_.Clear();
    resp_.mutable_confirmation()->set_subscription_id(id);
    return resp_;
  }

  const pb::ReadResp& CaughtUp() {
    resp_.Clear();
    resp_.mutable_caught_up();
    return resp_;
  }

  const pb::ReadResp& Checkpoint(Position p) {
    resp_.Clear();
    resp_.mutable_checkpoint()->set_commit_position(p.value());
    resp_.mutable_checkpoint()->set_prepare_position(p.value());
    return resp_;
  }

  const pb::ReadResp& StreamNotFound(std::string_view stream) {
    resp_.Clear();
    resp_.mutable_stream_not_found()->mutable_stream_identifier()->set_stream_name(stream.data(), stream.size());
    return resp_;
  }

 private:
  bool structured_ids_;
  pb::ReadResp resp_;
};

// Writes one answer and waits until gRPC has taken it; false when the client has gone away. What
// a subscription's thread writes through.
using BlockingWrite = std::function<bool(const pb::ReadResp&)>;

// The answers of a subscription, each written and waited for.
class EventWriter {
 public:
  EventWriter(BlockingWrite write, bool structured_ids) : write_(std::move(write)), messages_(structured_ids) {}

  // False when the client has gone away.
  bool Event(const RecordedEventView& e) { return write_(messages_.Event(e)); }
  bool Confirmation(const std::string& id) { return write_(messages_.Confirmation(id)); }
  bool CaughtUp() { return write_(messages_.CaughtUp()); }
  bool Checkpoint(Position p) { return write_(messages_.Checkpoint(p)); }

 private:
  BlockingWrite write_;
  ReadMessages messages_;
};

bool Ended(grpc::ServerContextBase* context, const std::atomic<bool>* stopping) {
  return context->IsCancelled() || stopping->load(std::memory_order_relaxed);
}

grpc::Status ShuttingDown() { return {grpc::StatusCode::UNAVAILABLE, "the server is shutting down"}; }

// One Read call on the callback API. A plain read writes its cursor's events on gRPC's threads,
// the next one as the previous write completes: no thread waits for the transport. A
// subscription waits for appends, so it runs on a thread of its own and writes through
// WriteAndWait. The reactor deletes itself when gRPC is done with the call.
class ReadCall final : public grpc::ServerWriteReactor<pb::ReadResp> {
 public:
  ReadCall(grpc::CallbackServerContext* context, bool structured_ids)
      : context_(context), structured_ids_(structured_ids), messages_(structured_ids) {}

  // Writes the cursor's events that pass the filter, at most `count`, then ends the call with the
  // cursor's status (`what` names the read in errors).
  void StartPlain(EventCursor cursor, ReadFilter filter, uint64_t count, std::string what) {
    cursor_.emplace(std::move(cursor));
    filter_ = std::move(filter);
    remaining_ = count;
    what_ = std::move(what);
    WriteNextEvent();
  }

  // Writes the stream-not-found answer, then ends the call with OK.
  void StartStreamNotFound(std::string_view stream) { StartWrite(&messages_.StreamNotFound(stream)); }

  // Runs `body` on a thread of its own; its status ends the call. Refused beyond the service's
  // limit of such threads.
  void StartThread(std::atomic<int>* threads, std::function<grpc::Status(EventWriter*)> body) {
    if (threads->fetch_add(1) >= StreamsService::kMaxSubscriptionThreads) {
      threads->fetch_sub(1);
      Finish({grpc::StatusCode::RESOURCE_EXHAUSTED,
              fmt::format("more than {} live subscriptions", StreamsService::kMaxSubscriptionThreads)});
      return;
    }
    threaded_ = true;
    thread_ = std::thread([this, threads, body = std::move(body)] {
      EventWriter out([this](const pb::ReadResp& m) { return WriteAndWait(m); }, structured_ids_);
      grpc::Status status = body(&out);
      threads->fetch_sub(1);
      Finish(std::move(status));  // the last use of `this` on this thread
    });
  }

  void OnWriteDone(bool ok) override {
    if (threaded_) {
      {
        std::lock_guard lock(mu_);
        write_done_ = true;
        write_ok_ = ok;
      }
      cv_.notify_one();
      return;
    }
    if (!ok || !cursor_) {
      Finish(grpc::Status::OK);  // the client went away, or the single answer is written
      return;
    }
    WriteNextEvent();
  }

  void OnDone() override {
    // Finish was the thread's last use of this reactor; it may still be returning from it.
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
    delete this;
  }

 private:
  void WriteNextEvent() {
    while (remaining_ > 0 && cursor_->Next()) {
      const RecordedEventView& e = cursor_->event();
      if (!filter_.Matches(e)) continue;
      --remaining_;
      // Corked: gRPC completes a write with the buffer hint at once while the call's unsent
      // bytes stay under its write buffer (64 KiB) and sends them as one frame, so many events
      // share one transport write and one syscall. The call's first write is never corked (gRPC
      // 1.51 does not complete a corked first write: the call hangs), nor every kUncorkEvery-th.
      grpc::WriteOptions options;
      if (written_++ % kUncorkEvery != 0) options.set_buffer_hint();
      StartWrite(&messages_.Event(e), options);
      return;
    }
    Finish(ToGrpcStatus(cursor_->status(), context_, what_));
  }

  bool WriteAndWait(const pb::ReadResp& m) {
    {
      std::lock_guard lock(mu_);
      write_done_ = false;
    }
    StartWrite(&m);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return write_done_; });
    return write_ok_;
  }

  grpc::CallbackServerContext* context_;
  bool structured_ids_;
  ReadMessages messages_;
  // A plain read.
  static constexpr uint64_t kUncorkEvery = 32;
  uint64_t written_ = 0;
  std::optional<EventCursor> cursor_;
  ReadFilter filter_;
  uint64_t remaining_ = 0;
  std::string what_;
  // A subscription.
  bool threaded_ = false;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool write_done_ = false;
  bool write_ok_ = false;
};

// A plain read of one stream.
void ReadStreamOnce(Store* store, grpc::CallbackServerContext* context, const Options& o, ReadCall* call) {
  const std::string& stream = o.stream().stream_identifier().stream_name();
  const std::optional<ReadStreamOptions> ro = PlainStreamReadOptions(o);
  if (!ro) {
    call->Finish(grpc::Status::OK);  // nothing comes after the end
    return;
  }
  auto cursor = store->ReadStream(stream, *ro);
  if (!cursor.ok()) {
    if (cursor.status().detail() == ErrorDetail::kStreamNotFound) {
      call->StartStreamNotFound(stream);
      return;
    }
    call->Finish(ToGrpcStatus(cursor.status(), context, stream));
    return;
  }
  call->StartPlain(std::move(*cursor), ReadFilter(), o.count(), stream);
}

// A plain read of $all.
void ReadAllOnce(Store* store, grpc::CallbackServerContext* context, const Options& o, ReadFilter filter,
                 ReadCall* call) {
  const std::optional<ReadAllOptions> ro = PlainAllReadOptions(o);
  if (!ro) {
    call->Finish(grpc::Status::OK);  // empty by definition
    return;
  }
  auto cursor = store->ReadAll(*ro);
  if (!cursor.ok()) {
    call->Finish(ToGrpcStatus(cursor.status(), context, "$all"));
    return;
  }
  call->StartPlain(std::move(*cursor), std::move(filter), o.count(), "$all");
}

// Counts a running subscription for the status pages while it lives.
class LiveCount {
 public:
  explicit LiveCount(std::atomic<uint64_t>* count) : count_(count) { count_->fetch_add(1, std::memory_order_relaxed); }
  ~LiveCount() { count_->fetch_sub(1, std::memory_order_relaxed); }
  LiveCount(const LiveCount&) = delete;
  LiveCount& operator=(const LiveCount&) = delete;

 private:
  std::atomic<uint64_t>* count_;
};

// A catch-up subscription to one stream: the events after the given version, then live ones.
grpc::Status SubscribeStream(Store* store, grpc::CallbackServerContext* context, const std::atomic<bool>* stopping,
                             const Options& o, EventWriter* out) {
  const std::string& stream = o.stream().stream_identifier().stream_name();
  const auto& so = o.stream();
  StreamVersion next = 0;
  if (so.has_revision()) {
    next = so.revision() + 1;  // a subscription starts after the given version
  } else if (so.has_end()) {
    auto info = store->GetStreamInfo(stream);
    if (!info.ok()) return ToGrpcStatus(info.status(), context, stream);
    if (info->tombstoned) return ToGrpcStatus(Status::NotFound("stream " + stream + " is deleted (tombstoned)", ErrorDetail::kStreamDeleted), context, stream);
    next = info->last_version ? *info->last_version + 1 : 0;
  }
  if (!out->Confirmation(Uuid::V7().ToString())) return grpc::Status::OK;
  bool caught_up = false;
  for (;;) {
    // The head before the read: an append after it wakes the wait below, so nothing is missed.
    const Position head = store->HeadPosition();
    ReadStreamOptions ro;
    ro.from = next;
    auto cursor = store->ReadStream(stream, ro);
    if (cursor.ok()) {
      while (cursor->Next()) {
        if (!out->Event(cursor->event())) return grpc::Status::OK;
        next = cursor->event().version + 1;
      }
      if (!cursor->status().ok()) return ToGrpcStatus(cursor->status(), context, stream);
    } else if (cursor.status().detail() != ErrorDetail::kStreamNotFound) {
      // Not yet written (or soft-deleted) is an empty stream to a subscriber; tombstoned ends it.
      return ToGrpcStatus(cursor.status(), context, stream);
    }
    if (!caught_up) {
      caught_up = true;
      if (!out->CaughtUp()) return grpc::Status::OK;
    }
    while (store->WaitForAppend(head, kSubscriptionPoll) <= head) {
      if (Ended(context, stopping)) return context->IsCancelled() ? grpc::Status::OK : ShuttingDown();
    }
    if (Ended(context, stopping)) return context->IsCancelled() ? grpc::Status::OK : ShuttingDown();
  }
}

// A catch-up subscription to $all: the events after the given position, then live ones; with a
// filter, checkpoints tell the client how far the server has looked.
grpc::Status SubscribeAll(Store* store, grpc::CallbackServerContext* context, const std::atomic<bool>* stopping,
                          const Options& o, const ReadFilter& filter, EventWriter* out) {
  const auto& ao = o.all();
  Position from = Position::Start();
  // A subscription starts after the given position. (A flag, not std::optional: g++ 12 -O2
  // reports a false maybe-uninitialized on the optional here.)
  bool skip_first = false;
  if (ao.has_position()) {
    from = Position(ao.position().commit_position());
    skip_first = true;
  } else if (ao.has_end()) {
    from = store->HeadPosition();
  }
  if (!out->Confirmation(Uuid::V7().ToString())) return grpc::Status::OK;
  bool caught_up = false;
  std::optional<Position> last_scanned;
  std::optional<Position> last_checkpoint;
  uint64_t scanned_since_checkpoint = 0;
  auto last_checkpoint_time = std::chrono::steady_clock::now();
  for (;;) {
    const Position head = store->HeadPosition();
    ReadAllOptions ro;
    ro.from = from;
    auto cursor = store->ReadAll(ro);
    if (!cursor.ok()) return ToGrpcStatus(cursor.status(), context, "$all");
    while (cursor->Next()) {
      const RecordedEventView& e = cursor->event();
      if (skip_first && e.position == from) continue;
      last_scanned = e.position;
      if (filter.Matches(e)) {
        if (!out->Event(e)) return grpc::Status::OK;
      } else if (filter.Active() && ++scanned_since_checkpoint >= filter.checkpoint_interval()) {
        if (!out->Checkpoint(e.position)) return grpc::Status::OK;
        last_checkpoint = e.position;
        scanned_since_checkpoint = 0;
        last_checkpoint_time = std::chrono::steady_clock::now();
      }
      if (Ended(context, stopping)) return context->IsCancelled() ? grpc::Status::OK : ShuttingDown();
    }
    if (!cursor->status().ok()) return ToGrpcStatus(cursor->status(), context, "$all");
    from = cursor->checkpoint();
    skip_first = false;
    // A filtered subscription also reports progress when it is caught up and events it skipped
    // came in, so that a client restarting from its checkpoint does not rescan them.
    if (filter.Active() && last_scanned && last_scanned != last_checkpoint &&
        (!caught_up || std::chrono::steady_clock::now() - last_checkpoint_time >= kCheckpointEvery)) {
      if (!out->Checkpoint(*last_scanned)) return grpc::Status::OK;
      last_checkpoint = last_scanned;
      scanned_since_checkpoint = 0;
      last_checkpoint_time = std::chrono::steady_clock::now();
    }
    if (!caught_up) {
      caught_up = true;
      if (!out->CaughtUp()) return grpc::Status::OK;
    }
    while (store->WaitForAppend(head, kSubscriptionPoll) <= head) {
      if (Ended(context, stopping)) return context->IsCancelled() ? grpc::Status::OK : ShuttingDown();
    }
    if (Ended(context, stopping)) return context->IsCancelled() ? grpc::Status::OK : ShuttingDown();
  }
}

}  // namespace

grpc::ServerWriteReactor<pb::ReadResp>* StreamsService::Read(grpc::CallbackServerContext* context,
                                                            const pb::ReadReq* request) {
  const Options& o = request->options();
  auto* call = new ReadCall(context, o.uuid_option().has_structured());
  if (o.stream_option_case() == Options::STREAM_OPTION_NOT_SET) {
    call->Finish(InvalidRequest("ReadReq.options: set stream or all"));
    return call;
  }
  if (o.count_option_case() == Options::COUNT_OPTION_NOT_SET) {
    call->Finish(InvalidRequest("ReadReq.options: set count or subscription"));
    return call;
  }
  const bool subscription = o.count_option_case() == Options::kSubscription;
  Store* store = store_;
  const std::atomic<bool>* stopping = stopping_;
  if (o.has_stream()) {
    const std::string& stream = o.stream().stream_identifier().stream_name();
    if (auto denied = Authorize(security_, context, auth::Permission::kRead, stream); !denied.ok()) {
      call->Finish(denied);
      return call;
    }
    if (o.filter_option_case() == Options::kFilter) {
      call->Finish(InvalidRequest("ReadReq.options.filter: filters apply to $all only"));
      return call;
    }
    if (subscription) {
      call->StartThread(&subscription_threads_, [this, store, context, stopping, &o](EventWriter* out) {
        LiveCount counted(&live_stream_);
        return SubscribeStream(store, context, stopping, o, out);
      });
    } else {
      ReadStreamOnce(store, context, o, call);
    }
    return call;
  }
  if (auto denied = Authorize(security_, context, auth::Permission::kReadAll, ""); !denied.ok()) {
    call->Finish(denied);
    return call;
  }
  auto filter = ReadFilter::From(o);
  if (!filter.ok()) {
    call->Finish(ToGrpcStatus(filter.status(), context, "$all"));
    return call;
  }
  if (subscription) {
    call->StartThread(&subscription_threads_,
                      [this, store, context, stopping, &o, f = std::move(*filter)](EventWriter* out) {
                        LiveCount counted(&live_all_);
                        return SubscribeAll(store, context, stopping, o, f, out);
                      });
  } else {
    ReadAllOnce(store, context, o, std::move(*filter), call);
  }
  return call;
}

namespace {

// Why an event of an append is refused before anything is written.
struct EventProblem {
  std::string exception;  // the trailer the clients read, or empty
  std::string message;
};

// One proposed message (Append's or BatchAppend's: the same fields) as EventData.
template <typename Proposed>
std::optional<EventProblem> EventFrom(Proposed* m, const std::string& stream, size_t index, EventData* out) {
  auto type = m->metadata().find("type");
  auto content_type = m->metadata().find("content-type");
  if (type == m->metadata().end() || content_type == m->metadata().end()) {
    return EventProblem{"missing-required-metadata-property",
                        fmt::format("append to {}: event {} lacks the \"type\" or \"content-type\" property", stream,
                                    index)};
  }
  if (m->has_id()) {
    auto id = UuidFromProto(m->id());
    if (!id) return EventProblem{"", fmt::format("append to {}: event {}: id is not a UUID", stream, index)};
    out->id = *id;
  }
  out->type = type->second;
  out->content_type = content_type->second == kContentTypeJson ? ContentType::kJson : ContentType::kBytes;
  out->data = std::move(*m->mutable_data());
  out->metadata = std::move(*m->mutable_custom_metadata());
  return std::nullopt;
}

// The same checks for a BatchAppend message read from its bytes (batch_append_wire.h); its
// EventData is complete when there is no problem.
std::optional<EventProblem> WireEventProblem(const WireProposedMessage& m, const std::string& stream, size_t index) {
  if (!m.has_type || !m.has_content_type) {
    return EventProblem{"missing-required-metadata-property",
                        fmt::format("append to {}: event {} lacks the \"type\" or \"content-type\" property", stream,
                                    index)};
  }
  if (m.has_id && !m.id_valid) {
    return EventProblem{"", fmt::format("append to {}: event {}: id is not a UUID", stream, index)};
  }
  return std::nullopt;
}

// What an append did: the stream's current revision (none: no stream) and the position of its
// first event (none: nothing was written), or why it failed.
struct AppendOutcome {
  Status status;
  std::optional<StreamVersion> current;
  std::optional<Position> position;
};

// The success part of an answer to Append or BatchAppend (two message types, the same fields).
template <class Success>
void SetSuccess(Success* success, const AppendOutcome& outcome) {
  if (outcome.current) {
    success->set_current_revision(*outcome.current);
  } else {
    success->mutable_no_stream();
  }
  if (outcome.position) {
    success->mutable_position()->set_commit_position(outcome.position->value());
    success->mutable_position()->set_prepare_position(outcome.position->value());
  } else {
    success->mutable_no_position();
  }
}

// The append itself, after the request is parsed and authorized: stream metadata through
// SetStreamMetadata, system streams refused, an empty append checks the expected version only.
AppendOutcome CommitAppend(Store* store, const std::string& stream, ExpectedVersion expected,
                           std::span<const EventData> events) {
  AppendOutcome out;
  Result<AppendResult> result = Status::Internal("unset");
  if (stream.starts_with(kMetastreamPrefix)) {
    // Stream metadata: one "$metadata" event with EventStoreDB's JSON keys, applied through
    // SetStreamMetadata so that it takes effect at once (its event id is the store's).
    if (events.size() != 1 || events[0].type != kMetadataType) {
      out.status = Status::InvalidArgument(
          fmt::format("append to {}: a metastream takes exactly one \"$metadata\" event", stream));
      return out;
    }
    auto md = StreamMetadata::Parse(events[0].data);
    if (!md.ok()) {
      out.status = md.status().WithContext("append to " + stream);
      return out;
    }
    result = store->SetStreamMetadata(std::string_view(stream).substr(kMetastreamPrefix.size()), expected, *md);
  } else if (stream.starts_with('$')) {
    out.status = Status(StatusCode::kPermissionDenied,
                        fmt::format("append to {}: streams starting with '$' belong to the system", stream));
    return out;
  } else if (events.empty()) {
    // An empty append checks the expected version and reports the stream's state.
    auto info = store->GetStreamInfo(stream);
    if (!info.ok()) {
      out.status = info.status();
      return out;
    }
    if (info->tombstoned) {
      out.status = Status::NotFound("stream " + stream + " is deleted (tombstoned)", ErrorDetail::kStreamDeleted);
      return out;
    }
    if (info->exists) out.current = info->last_version;
    const bool matches = expected.kind() == ExpectedVersion::Kind::kAny ||
                         (expected.kind() == ExpectedVersion::Kind::kNoStream && !out.current) ||
                         (expected.kind() == ExpectedVersion::Kind::kStreamExists && out.current) ||
                         (expected.kind() == ExpectedVersion::Kind::kExact && out.current == expected.version());
    if (!matches) out.status = Status::WrongExpectedVersion("append to " + stream + ": wrong expected version", out.current);
    return out;
  } else {
    result = store->Append(stream, expected, events);
  }
  if (!result.ok()) {
    out.status = result.status();
    return out;
  }
  if (result->next_version > 0) out.current = result->next_version - 1;
  out.position = result->position;
  return out;
}

}  // namespace

namespace {

// Append's answer for what the store did: the response, or the error status with its trailers.
grpc::Status AppendAnswer(const AppendOutcome& outcome, grpc::ServerContextBase* context, const std::string& stream,
                          ExpectedVersion expected, pb::AppendResp* response) {
  if (!outcome.status.ok()) {
    const Status& s = outcome.status;
    if (s.detail() != ErrorDetail::kWrongExpectedVersion) return ToGrpcStatus(s, context, stream, expected);
    auto* wev = response->mutable_wrong_expected_version();
    if (s.actual_version()) {
      wev->set_current_revision(*s.actual_version());
    } else {
      wev->mutable_current_no_stream();
    }
    switch (expected.kind()) {
      case ExpectedVersion::Kind::kAny:
        wev->mutable_expected_any();
        break;
      case ExpectedVersion::Kind::kNoStream:
        wev->mutable_expected_no_stream();
        break;
      case ExpectedVersion::Kind::kStreamExists:
        wev->mutable_expected_stream_exists();
        break;
      case ExpectedVersion::Kind::kExact:
        wev->set_expected_revision(expected.version());
        break;
    }
    return grpc::Status::OK;
  }
  SetSuccess(response->mutable_success(), outcome);
  return grpc::Status::OK;
}

AppendOutcome OutcomeOf(const Result<AppendResult>& result);

// One Append call on the callback API: the options, then the events, then the client's
// half-close commits them. A plain append goes to Store::AppendAsync and is answered from its
// callback; the rest (metastream writes, empty appends, system streams) block on
// the store and run on the service's task thread. No thread is held while the client sends or
// the store syncs.
class AppendCall final : public grpc::ServerReadReactor<pb::AppendReq> {
 public:
  AppendCall(StreamsService* service, grpc::CallbackServerContext* context, pb::AppendResp* response)
      : service_(service), context_(context), response_(response) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-closed (commit), or cancelled / gone
      Commit();
      return;
    }
    if (!has_options_) {
      if (!req_.has_options()) {
        Finish(InvalidRequest("AppendReq: the first message must carry options"));
        return;
      }
      has_options_ = true;
      stream_ = req_.options().stream_identifier().stream_name();
      expected_ = ExpectedFrom(req_.options());
      // Writing "$$x" needs metadata-write on x (Security maps it).
      if (auto denied = Authorize(service_->security(), context_, auth::Permission::kWrite, stream_); !denied.ok()) {
        Finish(denied);
        return;
      }
      StartRead(&req_);
      return;
    }
    if (!req_.has_proposed_message()) {
      Finish(InvalidRequest("AppendReq: only the first message may carry options"));
      return;
    }
    auto* m = req_.mutable_proposed_message();
    if (events_.size() >= kMaxAppendEvents) {
      Finish(InvalidRequest(fmt::format("append to {}: more than {} events in one append", stream_, kMaxAppendEvents)));
      return;
    }
    total_bytes_ += m->data().size() + m->custom_metadata().size();
    if (total_bytes_ > kMaxAppendBytes) {
      context_->AddTrailingMetadata("exception", "maximum-append-size-exceeded");
      context_->AddTrailingMetadata("maximum-append-size", std::to_string(kMaxAppendBytes));
      Finish({grpc::StatusCode::INVALID_ARGUMENT,
              fmt::format("append to {}: more than {} bytes of data and metadata in one append", stream_, kMaxAppendBytes)});
      return;
    }
    EventData e;
    if (auto problem = EventFrom(m, stream_, events_.size(), &e)) {
      if (!problem->exception.empty()) {
        context_->AddTrailingMetadata("exception", problem->exception);
        context_->AddTrailingMetadata("required-metadata-properties", "type,content-type");
      }
      Finish(InvalidRequest(problem->message));
      return;
    }
    events_.push_back(std::move(e));
    StartRead(&req_);
  }

  void OnDone() override { delete this; }

 private:
  void Commit() {
    // The reads also end when the client cancels or vanishes: only a half-close commits.
    if (context_->IsCancelled()) {
      Finish({grpc::StatusCode::CANCELLED, "append cancelled by the client"});
      return;
    }
    if (!has_options_) {
      Finish(InvalidRequest("AppendReq: the first message must carry options"));
      return;
    }
    if (stream_.starts_with('$') || events_.empty()) {
      service_->blocking_tasks()->Post([this] {
        const AppendOutcome outcome = CommitAppend(service_->store(), stream_, expected_, events_);
        Finish(AppendAnswer(outcome, context_, stream_, expected_, response_));
      });
      return;
    }
    service_->store()->AppendAsync(stream_, expected_, events_, [this](Result<AppendResult> result) {
      Finish(AppendAnswer(OutcomeOf(result), context_, stream_, expected_, response_));
    });
  }

  StreamsService* service_;
  grpc::CallbackServerContext* context_;
  pb::AppendResp* response_;
  pb::AppendReq req_;
  bool has_options_ = false;
  std::string stream_;
  ExpectedVersion expected_ = ExpectedVersion::Any();
  std::vector<EventData> events_;
  size_t total_bytes_ = 0;
};

}  // namespace

grpc::ServerReadReactor<pb::AppendReq>* StreamsService::Append(grpc::CallbackServerContext* context,
                                                               pb::AppendResp* response) {
  return new AppendCall(this, context, response);
}

namespace {

// BatchAppend's answer for a refused append: the code, the message and the details message the
// clients unpack.
void BatchError(pb::BatchAppendResp* resp, const pb::BatchAppendReq::Options& o, const event_store::client::UUID& id,
                grpc::StatusCode code, const std::string& message, const google::protobuf::Message& details) {
  resp->Clear();
  *resp->mutable_correlation_id() = id;
  *resp->mutable_stream_identifier() = o.stream_identifier();
  auto* e = resp->mutable_error();
  e->set_code(static_cast<int32_t>(code));
  e->set_message(message);
  e->mutable_details()->PackFrom(details);
}

// BatchAppend's answer for an append that was refused before the store saw it.
void BatchProblem(pb::BatchAppendResp* resp, const pb::BatchAppendReq::Options& o, const event_store::client::UUID& id,
                  const EventProblem& problem) {
  if (problem.exception == "maximum-append-size-exceeded") {
    event_store::client::MaximumAppendSizeExceeded max;
    max.set_maxappendsize(static_cast<uint32_t>(kMaxAppendBytes));
    BatchError(resp, o, id, grpc::StatusCode::INVALID_ARGUMENT, problem.message, max);
  } else {
    event_store::client::BadRequest bad;
    bad.set_message(problem.message);
    BatchError(resp, o, id, grpc::StatusCode::INVALID_ARGUMENT, problem.message, bad);
  }
}

// BatchAppend's answer for what the store did with an append.
void BatchOutcome(pb::BatchAppendResp* resp, const pb::BatchAppendReq::Options& o, const event_store::client::UUID& id,
                  ExpectedVersion expected, const AppendOutcome& outcome) {
  if (outcome.status.ok()) {
    resp->Clear();
    *resp->mutable_correlation_id() = id;
    *resp->mutable_stream_identifier() = o.stream_identifier();
    SetSuccess(resp->mutable_success(), outcome);
    return;
  }
  const Status& s = outcome.status;
  const std::string message = s.ToString();
  if (s.detail() == ErrorDetail::kWrongExpectedVersion) {
    event_store::client::WrongExpectedVersion w;
    if (s.actual_version()) {
      w.set_current_stream_revision(*s.actual_version());
    } else {
      w.mutable_current_no_stream();
    }
    switch (expected.kind()) {
      case ExpectedVersion::Kind::kAny: w.mutable_expected_any(); break;
      case ExpectedVersion::Kind::kNoStream: w.mutable_expected_no_stream(); break;
      case ExpectedVersion::Kind::kStreamExists: w.mutable_expected_stream_exists(); break;
      case ExpectedVersion::Kind::kExact: w.set_expected_stream_position(expected.version()); break;
    }
    BatchError(resp, o, id, grpc::StatusCode::FAILED_PRECONDITION, message, w);
  } else if (s.detail() == ErrorDetail::kStreamDeleted) {
    event_store::client::StreamDeleted d;
    *d.mutable_stream_identifier() = o.stream_identifier();
    BatchError(resp, o, id, grpc::StatusCode::FAILED_PRECONDITION, message, d);
  } else if (s.code() == StatusCode::kPermissionDenied || s.code() == StatusCode::kUnauthenticated) {
    event_store::client::AccessDenied d;
    BatchError(resp, o, id,
               s.code() == StatusCode::kUnauthenticated ? grpc::StatusCode::UNAUTHENTICATED
                                                        : grpc::StatusCode::PERMISSION_DENIED,
               message, d);
  } else {
    event_store::client::Unknown u;
    BatchError(resp, o, id, grpc::StatusCode::INTERNAL, message, u);
  }
}

AppendOutcome OutcomeOf(const Result<AppendResult>& result) {
  AppendOutcome out;
  if (!result.ok()) {
    out.status = result.status();
    return out;
  }
  if (result->next_version > 0) out.current = result->next_version - 1;
  out.position = result->position;
  return out;
}

// A BatchAppend call on gRPC's callback API: reads its messages one at a time into the session
// and writes the session's answers one at a time. What the session's hooks touch (Writes) outlives
// the reactor: an acknowledgement's hook may still run on the store's thread after another
// thread ended the call.
class BatchAppendCall final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  BatchAppendCall(StreamsService* service, grpc::CallbackServerContext* context) : writes_(std::make_shared<Writes>()) {
    writes_->call = this;
    BatchAppendSession::Hooks hooks;
    // Called by the session, which is alive while they run.
    hooks.answers_ready = [w = writes_] { w->Pump(); };
    hooks.read_next = [this] { StartRead(&req_bytes_); };
    hooks.authorize_write = [security = service->security(), context](const std::string& stream) {
      return Authorize(security, context, auth::Permission::kWrite, stream);
    };
    session_ = BatchAppendSession::Create(service->store(), service->blocking_tasks(), std::move(hooks));
    writes_->session = session_.get();
    StartRead(&req_bytes_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-closed by the client, cancelled or gone
      session_->EndReads();
      writes_->Pump();
      return;
    }
    const bool more = session_->OnMessage(&req_bytes_);
    req_bytes_.Clear();
    if (more) StartRead(&req_bytes_);
    writes_->Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(writes_->mu);
      writes_->writing = false;
      writes_->queue.pop_front();
      if (!ok) writes_->failed = true;  // the client is gone: its later answers are dropped
    }
    writes_->Pump();
  }

  void OnDone() override { delete this; }

 private:
  struct Writes {
    BatchAppendCall* call = nullptr;  // valid until `finished` is set
    BatchAppendSession* session = nullptr;
    std::mutex mu;                    // guards what follows
    std::deque<grpc::ByteBuffer> queue;  // answers to write, in order
    bool writing = false;
    bool wrote = false;
    bool failed = false;
    bool finished = false;
    grpc::Status end_status;

    // Takes the session's answers and starts the next write, or the end. One write at a time;
    // corked when another answer follows at once (in the same frame), except the call's first
    // write (gRPC 1.51 does not complete a corked first write).
    void Pump() {
      std::vector<std::string> answers;
      BatchAppendCall* to_write = nullptr;
      const grpc::ByteBuffer* next = nullptr;
      grpc::WriteOptions options;
      bool finish = false;
      {
        std::lock_guard lock(mu);  // taken under it: two threads pumping keep the answers' order
        if (finished) return;
        session->TakeAnswers(&answers);
        for (std::string& a : answers) {
          grpc::Slice slice(a);
          queue.emplace_back(&slice, 1);
        }
        if (failed) queue.clear();
        if (!writing && !queue.empty()) {
          writing = true;
          if (wrote && queue.size() > 1) options.set_buffer_hint();
          wrote = true;
          next = &queue.front();
        }
        finish = !writing && queue.empty() && session->TakeFinish(&end_status);
        if (finish) finished = true;
        to_write = call;
      }
      if (next != nullptr) to_write->StartWrite(next, options);
      if (finish) to_write->Finish(end_status);
    }
  };

  std::shared_ptr<Writes> writes_;
  std::shared_ptr<BatchAppendSession> session_;
  grpc::ByteBuffer req_bytes_;  // the message being read (reads are one at a time)
};

}  // namespace

// ---- BatchAppendSession (batch_append_session.h)

struct BatchAppendSession::Open {
  pb::BatchAppendReq::Options options;
  event_store::client::UUID correlation_id;  // of the final message, once it is in
  std::vector<EventData> events;
  size_t bytes = 0;
  std::optional<EventProblem> problem;  // the first reason to refuse it, answered at is_final
};

std::shared_ptr<BatchAppendSession> BatchAppendSession::Create(Store* store, TaskThread* blocking_tasks, Hooks hooks) {
  return std::make_shared<BatchAppendSession>(store, blocking_tasks, std::move(hooks));
}

BatchAppendSession::BatchAppendSession(Store* store, TaskThread* blocking_tasks, Hooks hooks)
    : store_(store), blocking_tasks_(blocking_tasks), hooks_(std::move(hooks)) {}

bool BatchAppendSession::OnMessage(grpc::ByteBuffer* bytes) { return Handle(ParseBatchAppendReq(bytes, &req_)); }

bool BatchAppendSession::OnMessage(std::string_view bytes) { return Handle(ParseBatchAppendReq(bytes, &req_)); }

bool BatchAppendSession::Handle(const Status& parsed) {
  if (!parsed.ok()) {
    // Bytes that are no BatchAppendReq: the call ends with INVALID_ARGUMENT once the appends
    // before them are answered (nothing after them is read).
    std::lock_guard lock(mu_);
    reads_done_ = true;
    end_status_ = InvalidRequest(parsed.message());
    return false;
  }
  // The usual message is a whole append (options, events, is_final) while no other is open: it
  // needs no entry in open_.
  std::string key;
  auto it = open_.end();
  if (!open_.empty() || !req_.is_final) {
    key = req_.correlation_id.SerializeAsString();
    it = open_.find(key);
  }
  std::shared_ptr<Open> fresh;
  if (it == open_.end()) {
    if (!req_.has_options) {
      event_store::client::BadRequest bad;
      bad.set_message("BatchAppendReq: the first message of a correlation id must carry options");
      pb::BatchAppendResp resp;
      BatchError(&resp, req_.options, req_.correlation_id, grpc::StatusCode::INVALID_ARGUMENT, bad.message(), bad);
      Slot* slot = Reserve();
      slot->bytes = resp.SerializeAsString();
      Ready(slot, false);
      return true;
    }
    fresh = std::make_shared<Open>();
    fresh->options.Swap(&req_.options);  // req_ is read afresh from the next message
    if (!req_.is_final) it = open_.emplace(key, fresh).first;
  }
  Open& a = fresh ? *fresh : *it->second;
  const std::string& name = a.options.stream_identifier().stream_name();
  if (a.events.empty()) a.events.reserve(req_.proposed_messages.size());
  for (WireProposedMessage& m : req_.proposed_messages) {
    if (a.problem) break;
    a.bytes += m.event.data.size() + m.event.metadata.size();
    if (a.events.size() >= kMaxAppendEvents || a.bytes > kMaxAppendBytes) {
      a.problem = EventProblem{"maximum-append-size-exceeded",
                               fmt::format("append to {}: more than {} events or {} bytes in one append", name,
                                           kMaxAppendEvents, kMaxAppendBytes)};
      break;
    }
    a.problem = WireEventProblem(m, name, a.events.size());
    if (!a.problem) a.events.push_back(std::move(m.event));
  }
  if (!req_.is_final) return true;
  std::shared_ptr<Open> done = fresh;
  if (it != open_.end()) {
    done = std::move(it->second);
    open_.erase(it);
  }
  done->correlation_id.Swap(&req_.correlation_id);  // req_ is read afresh from the next message
  const event_store::client::UUID& id = done->correlation_id;
  Slot* slot = Reserve();
  if (done->problem) {
    pb::BatchAppendResp resp;
    BatchProblem(&resp, done->options, id, *done->problem);
    slot->bytes = resp.SerializeAsString();
    Ready(slot, false);
    return true;
  }
  ExpectedVersion expected = ExpectedVersion::Any();
  if (done->options.has_stream_position()) expected = ExpectedVersion::Exact(done->options.stream_position());
  if (done->options.has_no_stream()) expected = ExpectedVersion::NoStream();
  if (done->options.has_stream_exists()) expected = ExpectedVersion::StreamExists();
  const std::string& stream = done->options.stream_identifier().stream_name();
  if (grpc::Status denied = hooks_.authorize_write(stream); !denied.ok()) {
    AppendOutcome refused;
    refused.status = Status(denied.error_code() == grpc::StatusCode::UNAUTHENTICATED ? StatusCode::kUnauthenticated
                                                                                     : StatusCode::kPermissionDenied,
                            denied.error_message());
    pb::BatchAppendResp resp;
    BatchOutcome(&resp, done->options, id, expected, refused);
    slot->bytes = resp.SerializeAsString();
    Ready(slot, false);
    return true;
  }
  auto self = shared_from_this();
  if (stream.starts_with('$') || done->events.empty()) {
    // Blocks on the store: on the task thread once the earlier appends are acknowledged; the
    // next message is read after it.
    std::function<void()> task = [self, slot, done, expected] {
      const event_store::client::UUID& id = done->correlation_id;
      AppendOutcome outcome =
          CommitAppend(self->store_, done->options.stream_identifier().stream_name(), expected, done->events);
      pb::BatchAppendResp resp;
      BatchOutcome(&resp, done->options, id, expected, outcome);
      slot->bytes = resp.SerializeAsString();
      {
        std::lock_guard lock(self->mu_);
        self->blocking_ = false;
      }
      // The next message may come in before this answer is ready: answers keep their order, and
      // the call cannot end while one is not.
      self->hooks_.read_next();
      self->Ready(slot, false);
    };
    std::lock_guard lock(mu_);
    blocking_ = true;
    if (pending_ == 0) {
      blocking_tasks_->Post(std::move(task));
    } else {
      deferred_ = std::move(task);
    }
    return false;
  }
  {
    std::lock_guard lock(mu_);
    pending_++;
  }
  // The events are the store's from here (no copy); the callback needs only the options.
  store_->AppendAsync(stream, expected, std::move(done->events), [self, slot, done, expected](Result<AppendResult> result) {
    const AppendOutcome outcome = OutcomeOf(result);
    if (outcome.status.ok()) {
      slot->bytes = EncodeBatchAppendSuccess(done->correlation_id, done->options.stream_identifier(), outcome.current,
                                             outcome.position);
    } else {
      pb::BatchAppendResp resp;
      BatchOutcome(&resp, done->options, done->correlation_id, expected, outcome);
      slot->bytes = resp.SerializeAsString();
    }
    self->Ready(slot, true);
  });
  return true;
}

BatchAppendSession::Slot* BatchAppendSession::Reserve() {
  std::lock_guard lock(mu_);
  return &slots_.emplace_back();  // a deque keeps references to its elements as it grows at the ends
}

void BatchAppendSession::Ready(Slot* slot, bool acknowledged) {
  {
    std::lock_guard lock(mu_);
    slot->ready = true;
    if (acknowledged && --pending_ == 0 && deferred_) {
      blocking_tasks_->Post(std::move(deferred_));
      deferred_ = nullptr;
    }
  }
  hooks_.answers_ready();
}

void BatchAppendSession::EndReads(grpc::Status status) {
  std::lock_guard lock(mu_);
  reads_done_ = true;
  if (end_status_.ok()) end_status_ = std::move(status);
}

void BatchAppendSession::TakeAnswers(std::vector<std::string>* out) {
  std::lock_guard lock(mu_);
  while (!slots_.empty() && slots_.front().ready) {
    out->push_back(std::move(slots_.front().bytes));
    slots_.pop_front();
  }
}

bool BatchAppendSession::TakeFinish(grpc::Status* status) {
  std::lock_guard lock(mu_);
  if (finished_ || !reads_done_ || pending_ > 0 || blocking_ || !slots_.empty()) return false;
  finished_ = true;
  *status = end_status_;
  return true;
}

int BatchAppendSession::in_flight() const {
  std::lock_guard lock(mu_);
  return pending_ + (blocking_ ? 1 : 0);
}

TaskThread::TaskThread() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  });
}

TaskThread::~TaskThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void TaskThread::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamsService::BatchAppend(
    grpc::CallbackServerContext* context) {
  return new BatchAppendCall(this, context);
}

grpc::Status StreamsService::Delete(grpc::ServerContext* context, const pb::DeleteReq* request,
                                    pb::DeleteResp* response) {
  const std::string& stream = request->options().stream_identifier().stream_name();
  if (auto denied = Authorize(security_, context, auth::Permission::kDelete, stream); !denied.ok()) return denied;
  return EndStream(context, *request, response,
                   [&](std::string_view stream, ExpectedVersion expected) { return store_->DeleteStream(stream, expected); });
}

grpc::Status StreamsService::Tombstone(grpc::ServerContext* context, const pb::TombstoneReq* request,
                                       pb::TombstoneResp* response) {
  const std::string& stream = request->options().stream_identifier().stream_name();
  if (auto denied = Authorize(security_, context, auth::Permission::kDelete, stream); !denied.ok()) return denied;
  return EndStream(context, *request, response,
                   [&](std::string_view stream, ExpectedVersion expected) { return store_->TombstoneStream(stream, expected); });
}

}  // namespace cairn::server

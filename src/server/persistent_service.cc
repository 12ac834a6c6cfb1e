// PersistentSubscriptions: consumer groups over include/cairn/persistent_subscription.h. The
// protocol's meanings, and where cairn differs, are in docs/protocol.md.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "server/protocol.h"
#include "server/services.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::persistent_subscriptions;

// How often an idle Read looks at the stop flag and at whether its client went away.
constexpr std::chrono::milliseconds kReadPoll{200};
// The client's buffer_size when it sends none.
constexpr int32_t kDefaultBufferSize = 10;
// .NET ticks (100 ns) per millisecond: older clients send timeouts in ticks.
constexpr int64_t kTicksPerMs = 10'000;

// A failed call on a group: the protocol's persistent-subscription exceptions where the clients
// expect one, else the common mapping.
grpc::Status GroupError(const Status& status, grpc::ServerContextBase* context, std::string_view source,
                        std::string_view group) {
  auto exception = [&](const char* name) {
    context->AddTrailingMetadata("exception", name);
    context->AddTrailingMetadata("stream-name", std::string(source));
    context->AddTrailingMetadata("group-name", std::string(group));
  };
  const std::string message = status.ToString();
  switch (status.code()) {
    case StatusCode::kNotFound:
      if (status.detail() != ErrorDetail::kNone) break;
      exception("persistent-subscription-does-not-exist");
      return {grpc::StatusCode::NOT_FOUND, message};
    case StatusCode::kAlreadyExists:
      exception("persistent-subscription-exists");
      return {grpc::StatusCode::ALREADY_EXISTS, message};
    case StatusCode::kResourceExhausted:
      exception("maximum-subscribers-reached");
      return {grpc::StatusCode::FAILED_PRECONDITION, message};
    default:
      break;
  }
  return ToGrpcStatus(status, context, source);
}

// "C:<commit>/P:<prepare>": how the protocol shows a $all position in SubscriptionInfo.
std::string AllPositionText(uint64_t p) { return fmt::format("C:{}/P:{}", p, p); }

template <typename Settings>
Result<PersistentSubscriptionSettings> SettingsFrom(const Settings& in, PersistentSubscriptionSettings out) {
  out.resolve_links = in.resolve_links();
  out.extra_statistics = in.extra_statistics();
  out.max_retry_count = in.max_retry_count();
  out.min_checkpoint_count = in.min_checkpoint_count();
  out.max_checkpoint_count = in.max_checkpoint_count();
  out.max_subscriber_count = in.max_subscriber_count();
  out.live_buffer_size = in.live_buffer_size();
  out.read_batch_size = in.read_batch_size();
  out.history_buffer_size = in.history_buffer_size();
  if (in.message_timeout_case() == Settings::kMessageTimeoutMs) {
    out.message_timeout_ms = in.message_timeout_ms();
  } else if (in.message_timeout_case() == Settings::kMessageTimeoutTicks) {
    out.message_timeout_ms = in.message_timeout_ticks() / kTicksPerMs;
  }
  if (in.checkpoint_after_case() == Settings::kCheckpointAfterMs) {
    out.checkpoint_after_ms = in.checkpoint_after_ms();
  } else if (in.checkpoint_after_case() == Settings::kCheckpointAfterTicks) {
    out.checkpoint_after_ms = in.checkpoint_after_ticks() / kTicksPerMs;
  }
  // Older clients send the enum only; newer ones the name, which wins.
  switch (static_cast<int>(in.named_consumer_strategy())) {
    case 0: out.consumer_strategy = ConsumerStrategy::kDispatchToSingle; break;
    case 2: out.consumer_strategy = ConsumerStrategy::kPinned; break;
    default: out.consumer_strategy = ConsumerStrategy::kRoundRobin; break;
  }
  if constexpr (requires { in.consumer_strategy(); }) {
    if (!in.consumer_strategy().empty()) {
      auto parsed = ParseConsumerStrategy(in.consumer_strategy());
      if (!parsed) {
        return Status::InvalidArgument(fmt::format(
            "consumer_strategy: \"{}\" is not one of DispatchToSingle, RoundRobin, Pinned", in.consumer_strategy()));
      }
      out.consumer_strategy = *parsed;
    }
  }
  return out;
}

template <typename AllOptions>
PersistentStart AllStart(const AllOptions& all) {
  if (all.has_position()) return PersistentStart::At(all.position().commit_position());
  if (all.has_end()) return PersistentStart::End();
  return PersistentStart::Start();
}

template <typename StreamOptions>
PersistentStart StreamStart(const StreamOptions& s) {
  if (s.has_revision()) return PersistentStart::At(s.revision());
  if (s.has_end()) return PersistentStart::End();
  return PersistentStart::Start();
}

// The deprecated form: the stream in Options.stream_identifier, its start in Settings.revision
// (UINT64_MAX means the end).
PersistentStart RevisionStart(uint64_t revision) {
  if (revision == std::numeric_limits<uint64_t>::max()) return PersistentStart::End();
  if (revision == 0) return PersistentStart::Start();
  return PersistentStart::At(revision);
}

// A $all group's filter: stream names or event types, by prefixes (any of them) or by a regular
// expression; prefixes win when a request has both, as in EventStoreDB. The window and the
// checkpoint interval do not apply to a group (it checkpoints by its own settings).
Status FilterFrom(const pb::CreateReq::AllOptions& all, PersistentSubscriptionSettings* s) {
  if (!all.has_filter()) return Status::Ok();
  const auto& fo = all.filter();
  if (fo.has_stream_identifier()) {
    const auto& e = fo.stream_identifier();
    if (e.prefix_size() > 0) {
      s->filter.stream_prefixes.assign(e.prefix().begin(), e.prefix().end());
    } else {
      s->stream_regex = e.regex();
    }
  } else if (fo.has_event_type()) {
    const auto& e = fo.event_type();
    if (e.prefix_size() > 0) {
      s->event_type_prefixes.assign(e.prefix().begin(), e.prefix().end());
    } else {
      s->event_type_regex = e.regex();
    }
  }
  return Status::Ok();
}

void FillInfo(const PersistentGroupInfo& in, pb::SubscriptionInfo* out) {
  const bool all = in.source == kAllStreamName;
  const auto& s = in.settings;
  out->set_event_source(in.source);
  out->set_group_name(in.group);
  out->set_status(in.status);
  for (const auto& c : in.connections) {
    auto* ci = out->add_connections();
    ci->set_from(c.from.empty() ? c.id : c.from);
    ci->set_username(c.username);
    ci->set_average_items_per_second(static_cast<int32_t>(std::min<uint64_t>(c.per_second, std::numeric_limits<int32_t>::max())));
    ci->set_count_since_last_measurement(static_cast<int64_t>(c.per_second));
    ci->set_total_items(static_cast<int64_t>(c.delivered));
    ci->set_available_slots(static_cast<int32_t>(c.available_slots));
    ci->set_in_flight_messages(static_cast<int32_t>(c.in_flight));
    ci->set_connection_name(c.name);
  }
  out->set_total_items(static_cast<int64_t>(in.delivered));
  out->set_average_per_second(static_cast<int32_t>(std::min<uint64_t>(in.per_second, std::numeric_limits<int32_t>::max())));
  out->set_count_since_last_measurement(static_cast<int64_t>(in.per_second));
  auto position = [&](std::optional<uint64_t> v) -> std::string {
    if (!v) return "";
    return all ? AllPositionText(*v) : std::to_string(*v);
  };
  // The checkpoint is a resume point: for a stream, the version after the last event done (so
  // the last checkpointed event is the one before it, none at 0); for $all, the position itself.
  std::optional<uint64_t> checkpointed = in.checkpoint;
  if (!all && checkpointed) checkpointed = *checkpointed == 0 ? std::nullopt : std::optional<uint64_t>(*checkpointed - 1);
  out->set_last_checkpointed_event_position(position(checkpointed));
  out->set_last_known_event_position(position(in.last_event));
  out->set_resolve_link_tos(s.resolve_links);
  switch (s.start_from.kind) {
    case PersistentStart::Kind::kStart: out->set_start_from(all ? "C:0/P:0" : "0"); break;
    case PersistentStart::Kind::kEnd: out->set_start_from(all ? "C:-1/P:-1" : "-1"); break;
    case PersistentStart::Kind::kAt: out->set_start_from(position(s.start_from.value)); break;
  }
  out->set_message_timeout_milliseconds(static_cast<int32_t>(s.message_timeout_ms));
  out->set_extra_statistics(s.extra_statistics);
  out->set_max_retry_count(static_cast<int32_t>(s.max_retry_count));
  out->set_live_buffer_size(static_cast<int32_t>(s.live_buffer_size));
  out->set_buffer_size(static_cast<int32_t>(s.history_buffer_size));
  out->set_read_batch_size(static_cast<int32_t>(s.read_batch_size));
  out->set_check_point_after_milliseconds(static_cast<int32_t>(s.checkpoint_after_ms));
  out->set_min_check_point_count(static_cast<int32_t>(s.min_checkpoint_count));
  out->set_max_check_point_count(static_cast<int32_t>(s.max_checkpoint_count));
  const uint64_t fresh = in.buffered - std::min(in.buffered, in.retry_buffered);
  if (in.status == "Live") {
    out->set_live_buffer_count(static_cast<int64_t>(fresh));
  } else {
    out->set_read_buffer_count(static_cast<int32_t>(fresh));
  }
  out->set_retry_buffer_count(static_cast<int32_t>(in.retry_buffered));
  out->set_total_in_flight_messages(static_cast<int32_t>(in.in_flight));
  out->set_outstanding_messages_count(static_cast<int32_t>(in.in_flight));
  out->set_named_consumer_strategy(std::string(ConsumerStrategyName(s.consumer_strategy)));
  out->set_max_subscriber_count(static_cast<int32_t>(s.max_subscriber_count));
  out->set_parked_message_count(static_cast<int64_t>(in.parked));
}

// The source named by a request's stream_option: "$all" or the stream.
template <typename Options>
std::string SourceOf(const Options& o) {
  if (o.has_all()) return std::string(kAllStreamName);
  return o.stream_identifier().stream_name();
}

void FillEvent(const PersistentEvent& pe, bool structured_ids, pb::ReadResp* resp) {
  const RecordedEvent& e = pe.event;
  auto* read_event = resp->mutable_event();
  auto* rec = read_event->mutable_event();
  UuidToProto(e.id, structured_ids, rec->mutable_id());
  rec->mutable_stream_identifier()->set_stream_name(e.stream);
  rec->set_stream_revision(e.version);
  rec->set_prepare_position(e.position.value());
  rec->set_commit_position(e.position.value());
  auto& md = *rec->mutable_metadata();
  md["type"] = e.type;
  md["content-type"] = std::string(e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes);
  md["created"] = std::to_string(TicksSinceEpoch(e.recorded_at));
  rec->set_custom_metadata(e.metadata);
  rec->set_data(e.data);
  read_event->set_commit_position(e.position.value());
  read_event->set_retry_count(static_cast<int32_t>(pe.retry_count));
}

// Event ids of an ack or nack; a malformed one is an INVALID_ARGUMENT.
template <typename Ids>
Result<std::vector<Uuid>> IdsFrom(const Ids& ids) {
  std::vector<Uuid> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    auto u = UuidFromProto(id);
    if (!u) return Status::InvalidArgument("ids: not a UUID");
    out.push_back(*u);
  }
  return out;
}

}  // namespace

// Managing groups is operating the server ($admins, as in EventStoreDB); consuming one needs
// read access to its source.
#define CAIRN_OPERATE_OR_RETURN(context)                                                                   \
  do {                                                                                                     \
    if (auto denied = Authorize(security_, context, auth::Permission::kOperate, ""); !denied.ok()) return denied; \
  } while (0)

Status PersistentService::Open() {
  CAIRN_ASSIGN_OR_RETURN(subs_, PersistentSubscriptions::Open(*store_));
  return Status::Ok();
}

void PersistentService::Close() {
  if (subs_) (void)subs_->Close();
}

grpc::Status PersistentService::Create(grpc::ServerContext* context, const pb::CreateReq* request, pb::CreateResp*) {
  CAIRN_OPERATE_OR_RETURN(context);
  const auto& o = request->options();
  std::string source;
  PersistentSubscriptionSettings settings;
  if (o.has_all()) {
    source = std::string(kAllStreamName);
    settings.start_from = AllStart(o.all());
    if (Status f = FilterFrom(o.all(), &settings); !f.ok()) return ToGrpcStatus(f, context, source);
  } else if (o.has_stream()) {
    source = o.stream().stream_identifier().stream_name();
    settings.start_from = StreamStart(o.stream());
  } else {
    source = o.stream_identifier().stream_name();
    settings.start_from = RevisionStart(o.settings().revision());
  }
  auto s = SettingsFrom(o.settings(), settings);
  if (!s.ok()) return ToGrpcStatus(s.status(), context, source);
  return GroupError(subs_->Create(source, o.group_name(), *s), context, source, o.group_name());
}

grpc::Status PersistentService::Update(grpc::ServerContext* context, const pb::UpdateReq* request, pb::UpdateResp*) {
  CAIRN_OPERATE_OR_RETURN(context);
  const auto& o = request->options();
  std::string source;
  if (o.has_all()) {
    source = std::string(kAllStreamName);
  } else if (o.has_stream()) {
    source = o.stream().stream_identifier().stream_name();
  } else {
    source = o.stream_identifier().stream_name();
  }
  // The filter cannot be changed by an update: keep the group's.
  auto info = subs_->GetInfo(source, o.group_name());
  if (!info.ok()) return GroupError(info.status(), context, source, o.group_name());
  PersistentSubscriptionSettings settings = info->settings;
  if (o.has_all()) {
    settings.start_from = AllStart(o.all());
  } else if (o.has_stream()) {
    settings.start_from = StreamStart(o.stream());
  } else {
    settings.start_from = RevisionStart(o.settings().revision());
  }
  auto s = SettingsFrom(o.settings(), settings);
  if (!s.ok()) return ToGrpcStatus(s.status(), context, source);
  return GroupError(subs_->Update(source, o.group_name(), *s), context, source, o.group_name());
}

grpc::Status PersistentService::Delete(grpc::ServerContext* context, const pb::DeleteReq* request, pb::DeleteResp*) {
  CAIRN_OPERATE_OR_RETURN(context);
  const std::string source = SourceOf(request->options());
  const std::string& group = request->options().group_name();
  return GroupError(subs_->Delete(source, group), context, source, group);
}

grpc::Status PersistentService::GetInfo(grpc::ServerContext* context, const pb::GetInfoReq* request,
                                        pb::GetInfoResp* response) {
  CAIRN_OPERATE_OR_RETURN(context);
  const std::string source = SourceOf(request->options());
  const std::string& group = request->options().group_name();
  auto info = subs_->GetInfo(source, group);
  if (!info.ok()) return GroupError(info.status(), context, source, group);
  FillInfo(*info, response->mutable_subscription_info());
  return grpc::Status::OK;
}

grpc::Status PersistentService::List(grpc::ServerContext* context, const pb::ListReq* request, pb::ListResp* response) {
  CAIRN_OPERATE_OR_RETURN(context);
  std::optional<std::string> source;
  if (request->options().has_list_for_stream()) {
    const auto& s = request->options().list_for_stream();
    source = s.has_all() ? std::string(kAllStreamName) : s.stream().stream_name();
  }
  auto list = subs_->List(source ? std::optional<std::string_view>(*source) : std::nullopt);
  if (!list.ok()) return ToGrpcStatus(list.status(), context, source.value_or(""));
  for (const auto& info : *list) FillInfo(info, response->add_subscriptions());
  return grpc::Status::OK;
}

grpc::Status PersistentService::ReplayParked(grpc::ServerContext* context, const pb::ReplayParkedReq* request,
                                             pb::ReplayParkedResp*) {
  CAIRN_OPERATE_OR_RETURN(context);
  const auto& o = request->options();
  const std::string source = SourceOf(o);
  std::optional<uint64_t> stop_at;
  if (o.has_stop_at()) {
    if (o.stop_at() < 0) {
      return ToGrpcStatus(Status::InvalidArgument(fmt::format("stop_at: {} is negative", o.stop_at())), context, source);
    }
    stop_at = static_cast<uint64_t>(o.stop_at());
  }
  return GroupError(subs_->ReplayParked(source, o.group_name(), stop_at), context, source, o.group_name());
}

grpc::Status PersistentService::RestartSubsystem(grpc::ServerContext* context, const event_store::client::Empty*,
                                                 event_store::client::Empty*) {
  CAIRN_OPERATE_OR_RETURN(context);
  return ToGrpcStatus(subs_->RestartSubsystem(), context, "");
}

#undef CAIRN_OPERATE_OR_RETURN

// One consumer's Read call. gRPC calls OnReadDone (the options, then acks and nacks) and
// OnWriteDone on its threads; a writer thread of the call's own takes events from the consumer
// (Next blocks) and writes them one at a time. Only the writer thread calls Finish (except when
// the call fails before it starts), once its last write is done; OnDone then joins it.
class PersistentReadReactor final : public grpc::ServerBidiReactor<pb::ReadReq, pb::ReadResp> {
 public:
  PersistentReadReactor(PersistentService* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!started_) {
      started_ = true;
      grpc::Status begun = ok ? Begin() : grpc::Status::OK;
      if (!begun.ok() || !ok) {
        Finish(begun);
        return;
      }
      writer_ = std::thread([this] { WriteLoop(); });
      std::lock_guard ops(ops_mu_);
      if (!finished_) StartRead(&request_);
      return;
    }
    if (!ok) {
      // The client half-closed or went away: the consumer leaves, the writer ends the call.
      EndWith(grpc::Status::OK);
      return;
    }
    Status answered = Answer(request_);
    if (!answered.ok()) {
      EndWith(ToGrpcStatus(answered, context_, source_));
      return;
    }
    // No read after Finish: ops_mu_ orders this against the writer's Finish.
    std::lock_guard ops(ops_mu_);
    if (!finished_) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    write_pending_ = false;
    if (!ok) ending_ = true;  // the client is gone
    cv_.notify_all();
  }

  void OnCancel() override { EndWith(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (writer_.joinable()) {
      // The writer has called Finish and touches nothing after it.
      if (writer_.get_id() == std::this_thread::get_id()) {
        writer_.detach();
      } else {
        writer_.join();
      }
    }
    delete this;
  }

 private:
  // The first message: options. Connects the consumer.
  grpc::Status Begin() {
    if (!request_.has_options()) return InvalidRequest("the first message of a persistent subscription must be options");
    const auto& o = request_.options();
    source_ = SourceOf(o);
    group_ = o.group_name();
    const bool all = source_ == kAllStreamName;
    ConsumerOptions co;
    if (auto denied = Authorize(service_->security_, context_, all ? auth::Permission::kReadAll : auth::Permission::kRead,
                                all ? "" : source_, &co.username);
        !denied.ok()) {
      return denied;
    }
    co.buffer_size = o.buffer_size() == 0 ? kDefaultBufferSize : o.buffer_size();
    co.from = PeerOf(context_);
    const auto& md = context_->client_metadata();
    auto name = md.find("connection-name");
    co.name = name != md.end() ? std::string(name->second.data(), name->second.size()) : co.from;
    auto consumer = service_->subs_->Connect(source_, group_, co);
    if (!consumer.ok()) return GroupError(consumer.status(), context_, source_, group_);
    structured_ = o.uuid_option().has_structured();
    std::lock_guard lock(mu_);
    consumer_ = std::move(*consumer);
    return grpc::Status::OK;
  }

  Status Answer(const pb::ReadReq& req) {
    if (req.has_ack()) {
      auto ids = IdsFrom(req.ack().ids());
      return ids.ok() ? consumer_->Ack(*ids) : ids.status();
    }
    if (req.has_nack()) {
      auto ids = IdsFrom(req.nack().ids());
      NackAction action = NackAction::kRetry;
      switch (req.nack().action()) {
        case pb::ReadReq::Nack::Park: action = NackAction::kPark; break;
        case pb::ReadReq::Nack::Retry: action = NackAction::kRetry; break;
        case pb::ReadReq::Nack::Skip: action = NackAction::kSkip; break;
        case pb::ReadReq::Nack::Stop: action = NackAction::kStop; break;
        default: return Status::InvalidArgument("nack.action: Unknown; one of Park, Retry, Skip, Stop");
      }
      return ids.ok() ? consumer_->Nack(*ids, action, req.nack().reason()) : ids.status();
    }
    return Status::Ok();
  }

  // Asks the writer to end the call with `status` (the first reason wins).
  void EndWith(grpc::Status status) {
    std::lock_guard lock(mu_);
    if (!ending_) {
      ending_ = true;
      end_status_ = std::move(status);
    }
    if (consumer_) consumer_->Stop();  // wakes the writer out of Next()
    cv_.notify_all();
  }

  // Writes `resp` and waits for it to be done; false when the call is ending.
  bool WriteAndWait(const pb::ReadResp& resp) {
    {
      std::lock_guard lock(mu_);
      if (ending_) return false;
      write_pending_ = true;
    }
    StartWrite(&resp);  // not under mu_: OnWriteDone takes it
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !write_pending_; });
    return !ending_;
  }

  // The status of a consumer the group ended: the protocol's "dropped" (what EventStoreDB sends
  // when a group is updated, deleted or restarted, or the server stops), or the source's own
  // error (a deleted stream) as for any read.
  grpc::Status Dropped(const Status& why) {
    if (why.detail() != ErrorDetail::kNone) return ToGrpcStatus(why, context_, source_);
    context_->AddTrailingMetadata("exception", "persistent-subscription-dropped");
    context_->AddTrailingMetadata("stream-name", source_);
    context_->AddTrailingMetadata("group-name", group_);
    return {grpc::StatusCode::CANCELLED,
            fmt::format("Subscription group {} on stream {} was dropped: {}", group_, source_, why.ToString())};
  }

  void WriteLoop() {
    grpc::Status result = grpc::Status::OK;
    pb::ReadResp resp;
    resp.mutable_subscription_confirmation()->set_subscription_id(fmt::format("{}::{}", source_, group_));
    bool open = WriteAndWait(resp);
    while (open) {
      if (service_->stopping_->load()) {
        result = Dropped(Status::Unavailable("the server is shutting down"));
        break;
      }
      if (consumer_->Next(kReadPoll)) {
        resp.Clear();
        FillEvent(consumer_->event(), structured_, &resp);
        open = WriteAndWait(resp);
        continue;
      }
      if (consumer_->done()) {
        const Status why = consumer_->status();
        // OK: stopped from this side (EndWith), which says how the call ends.
        if (!why.ok()) result = Dropped(why);
        break;
      }
      std::lock_guard lock(mu_);
      open = !ending_;
    }
    consumer_->Stop();
    {
      std::lock_guard lock(mu_);
      if (ending_ && result.ok()) result = end_status_;
      ending_ = true;
    }
    std::lock_guard ops(ops_mu_);
    finished_ = true;
    Finish(result);
  }

  PersistentService* service_;
  grpc::CallbackServerContext* context_;
  pb::ReadReq request_;
  bool started_ = false;  // gRPC's read callbacks never overlap
  std::string source_, group_;
  bool structured_ = false;
  std::thread writer_;

  std::mutex ops_mu_;      // StartRead (after the first) against Finish
  bool finished_ = false;  // guarded by ops_mu_
  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<PersistentConsumer> consumer_;  // set before the writer starts, then fixed
  bool write_pending_ = false;
  bool ending_ = false;
  grpc::Status end_status_;
};

grpc::ServerBidiReactor<pb::ReadReq, pb::ReadResp>* PersistentService::Read(grpc::CallbackServerContext* context) {
  return new PersistentReadReactor(this, context);
}

}  // namespace cairn::server

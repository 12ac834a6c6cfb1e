// PersistentSubscriptions: consumer groups over include/cairn/persistent_subscription.h. The
// protocol's meanings, and where cairn differs, are in docs/protocol.md.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
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
grpc::Status GroupError(const Status& status, grpc::ServerContext* context, std::string_view source,
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

Result<EventFilter> FilterFrom(const pb::CreateReq::AllOptions& all) {
  EventFilter f;
  if (!all.has_filter()) return f;
  const auto& fo = all.filter();
  if (fo.has_event_type()) {
    return Status::InvalidArgument("filter.event_type: persistent subscriptions filter by stream name prefixes only");
  }
  if (fo.has_stream_identifier()) {
    if (!fo.stream_identifier().regex().empty()) {
      return Status::InvalidArgument("filter.stream_identifier.regex: persistent subscriptions filter by prefixes only");
    }
    f.stream_prefixes.assign(fo.stream_identifier().prefix().begin(), fo.stream_identifier().prefix().end());
  }
  return f;
}

void FillInfo(const PersistentGroupInfo& in, pb::SubscriptionInfo* out) {
  const bool all = in.source == kAllStreamName;
  const auto& s = in.settings;
  out->set_event_source(in.source);
  out->set_group_name(in.group);
  out->set_status(in.status);
  for (const auto& c : in.connections) {
    auto* ci = out->add_connections();
    ci->set_from(c.id);
    ci->set_total_items(static_cast<int64_t>(c.delivered));
    ci->set_available_slots(static_cast<int32_t>(c.available_slots));
    ci->set_in_flight_messages(static_cast<int32_t>(c.in_flight));
    ci->set_connection_name(c.name);
  }
  out->set_total_items(static_cast<int64_t>(in.delivered));
  auto position = [&](std::optional<uint64_t> v) -> std::string {
    if (!v) return "";
    return all ? AllPositionText(*v) : std::to_string(*v);
  };
  out->set_last_checkpointed_event_position(position(in.checkpoint));
  out->set_last_known_event_position(position(in.last_known));
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
  out->set_read_buffer_count(static_cast<int32_t>(in.buffered));
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
    auto filter = FilterFrom(o.all());
    if (!filter.ok()) return ToGrpcStatus(filter.status(), context, source);
    settings.filter = std::move(*filter);
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

grpc::Status PersistentService::Read(grpc::ServerContext* context,
                                     grpc::ServerReaderWriter<pb::ReadResp, pb::ReadReq>* stream) {
  pb::ReadReq first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  if (!first.has_options()) return InvalidRequest("the first message of a persistent subscription must be options");
  const auto& o = first.options();
  const std::string source = SourceOf(o);
  const std::string& group = o.group_name();
  const bool all = source == kAllStreamName;
  if (auto denied = Authorize(security_, context, all ? auth::Permission::kReadAll : auth::Permission::kRead,
                              all ? "" : source);
      !denied.ok()) {
    return denied;
  }
  ConsumerOptions co;
  co.buffer_size = o.buffer_size() == 0 ? kDefaultBufferSize : o.buffer_size();
  co.name = context->peer();
  auto consumer = subs_->Connect(source, group, co);
  if (!consumer.ok()) return GroupError(consumer.status(), context, source, group);
  const bool structured = o.uuid_option().has_structured();

  pb::ReadResp resp;
  resp.mutable_subscription_confirmation()->set_subscription_id(fmt::format("{}::{}", source, group));
  if (!stream->Write(resp)) return grpc::Status::OK;

  // Acks and nacks come in on their own thread (the sync API allows one reader and one writer at
  // once); this thread writes events.
  std::atomic<bool> client_done{false};
  Status answer_error;
  std::thread answers([&] {
    pb::ReadReq req;
    while (stream->Read(&req)) {
      Status s;
      if (req.has_ack()) {
        auto ids = IdsFrom(req.ack().ids());
        s = ids.ok() ? (*consumer)->Ack(*ids) : ids.status();
      } else if (req.has_nack()) {
        auto ids = IdsFrom(req.nack().ids());
        NackAction action = NackAction::kRetry;
        switch (req.nack().action()) {
          case pb::ReadReq::Nack::Park: action = NackAction::kPark; break;
          case pb::ReadReq::Nack::Retry: action = NackAction::kRetry; break;
          case pb::ReadReq::Nack::Skip: action = NackAction::kSkip; break;
          case pb::ReadReq::Nack::Stop: action = NackAction::kStop; break;
          default:
            s = Status::InvalidArgument("nack.action: Unknown; one of Park, Retry, Skip, Stop");
            break;
        }
        if (s.ok()) s = ids.ok() ? (*consumer)->Nack(*ids, action, req.nack().reason()) : ids.status();
      }
      if (!s.ok()) {
        answer_error = s;
        break;
      }
    }
    client_done.store(true);
  });

  grpc::Status result = grpc::Status::OK;
  while (!client_done.load() && !context->IsCancelled()) {
    if (stopping_->load()) {
      result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      break;
    }
    if ((*consumer)->Next(kReadPoll)) {
      resp.Clear();
      FillEvent((*consumer)->event(), structured, &resp);
      if (!stream->Write(resp)) break;
      continue;
    }
    if ((*consumer)->done()) {
      const Status why = (*consumer)->status();
      if (!why.ok()) result = GroupError(why, context, source, group);
      break;
    }
  }
  (*consumer)->Stop();
  // The answers thread may be blocked in Read: cancelling the call ends it. A client that is
  // still there sees the call cancelled, which the clients treat as the subscription dropping.
  if (!client_done.load()) context->TryCancel();
  answers.join();
  if (!answer_error.ok()) return ToGrpcStatus(answer_error, context, source);
  return result;
}

}  // namespace cairn::server

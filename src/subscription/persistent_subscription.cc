// Persistent subscriptions (include/cairn/persistent_subscription.h) on the public Store API: the
// group's settings, checkpoint and parked events are system streams; the live state (what is
// buffered and in flight) is one Group object per loaded group, with one pump thread that reads
// the source, writes parked events and checkpoints, and expires timed-out deliveries. Consumers
// take events from their own queues and answer with acks and nacks; every store write happens on
// the pump thread, so a consumer never waits for an fsync.
#include "cairn/persistent_subscription.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <re2/re2.h>
#include <set>
#include <thread>

#include "cairn/store.h"
#include "cairn/subscription.h"
#include "util/check.h"
#include "util/utf8.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr std::string_view kRegistryStream = "$persistentsubscriptions";
constexpr std::string_view kStreamPrefix = "$persistentsubscription-";
// Event types of the system streams. On disk: never change.
constexpr std::string_view kRegisteredType = "$PersistentSubscriptionCreated";
constexpr std::string_view kSettingsType = "$PersistentSubscriptionSettings";
constexpr std::string_view kDeletedType = "$PersistentSubscriptionDeleted";
constexpr std::string_view kCheckpointType = "$SubscriptionCheckpoint";
constexpr std::string_view kLinkType = "$>";
// The pump's longest sleep: how late a timeout or a timed checkpoint can be.
constexpr std::chrono::milliseconds kPumpSlice{50};

AppendOptions SystemAppend() {
  AppendOptions o;
  o.allow_system_stream = true;
  return o;
}

EventData JsonEvent(std::string_view type, const json& data) {
  EventData e;
  e.type = std::string(type);
  e.data = data.dump();
  return e;
}

// Appends one JSON event to a system stream.
Status AppendJson(Store& store, std::string_view stream, std::string_view type, const json& data) {
  const EventData e = JsonEvent(type, data);
  return store.Append(stream, ExpectedVersion::Any(), {&e, 1}, SystemAppend()).status();
}

// The last visible event of a stream; nullopt when it has none.
Result<std::optional<RecordedEvent>> LastEvent(Store& store, std::string_view stream) {
  ReadStreamOptions o;
  o.direction = ReadDirection::kBackward;
  o.max_count = 1;
  Result<EventCursor> cursor = store.ReadStream(stream, o);
  if (!cursor.ok()) {
    if (cursor.status().IsNotFound() && cursor.status().detail() == ErrorDetail::kStreamNotFound) {
      return std::optional<RecordedEvent>();
    }
    return cursor.status();
  }
  if (cursor->Next()) return std::optional<RecordedEvent>(cursor->event().ToOwned());
  if (!cursor->status().ok()) return cursor->status();
  return std::optional<RecordedEvent>();
}

Status CheckRange(std::string_view field, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return Status::InvalidArgument(fmt::format("{}: {} is outside {}..{}", field, value, min, max));
  }
  return Status::Ok();
}

Status ValidateNames(std::string_view source, std::string_view group) {
  if (source.empty()) return Status::InvalidArgument("stream: empty (a stream name or \"$all\")");
  if (source.find('\0') != std::string_view::npos || !util::IsValidUtf8(source)) {
    return Status::InvalidArgument("stream: not valid UTF-8 without NUL");
  }
  if (group.empty()) return Status::InvalidArgument("group: empty");
  if (group.size() > kMaxGroupNameBytes) {
    return Status::InvalidArgument(fmt::format("group: {} bytes, the limit is {}", group.size(), kMaxGroupNameBytes));
  }
  if (group.find('\0') != std::string_view::npos || !util::IsValidUtf8(group)) {
    return Status::InvalidArgument("group: not valid UTF-8 without NUL");
  }
  // The longest system stream of the group must be a valid stream name.
  const size_t longest = PersistentCheckpointStream(source, group).size();
  if (longest > kMaxStreamNameBytes) {
    return Status::InvalidArgument(fmt::format(
        "stream: \"{}\" with group \"{}\" makes a checkpoint stream name of {} bytes, the limit is {}",
        source.substr(0, 40), group.substr(0, 40), longest, kMaxStreamNameBytes));
  }
  return Status::Ok();
}

json StartToJson(const PersistentStart& s) {
  switch (s.kind) {
    case PersistentStart::Kind::kStart: return "start";
    case PersistentStart::Kind::kEnd: return "end";
    case PersistentStart::Kind::kAt: return s.value;
  }
  return "end";
}

json SettingsToJson(const PersistentSubscriptionSettings& s) {
  json filter = json::object();
  filter["stream_prefixes"] = s.filter.stream_prefixes;
  filter["categories"] = s.filter.categories;
  filter["event_types"] = s.filter.event_types;
  filter["exclude_system_events"] = s.filter.exclude_system_events;
  filter["event_type_prefixes"] = s.event_type_prefixes;
  filter["stream_regex"] = s.stream_regex;
  filter["event_type_regex"] = s.event_type_regex;
  return json{{"resolve_links", s.resolve_links},
              {"start_from", StartToJson(s.start_from)},
              {"extra_statistics", s.extra_statistics},
              {"message_timeout_ms", s.message_timeout_ms},
              {"max_retry_count", s.max_retry_count},
              {"live_buffer_size", s.live_buffer_size},
              {"history_buffer_size", s.history_buffer_size},
              {"read_batch_size", s.read_batch_size},
              {"checkpoint_after_ms", s.checkpoint_after_ms},
              {"min_checkpoint_count", s.min_checkpoint_count},
              {"max_checkpoint_count", s.max_checkpoint_count},
              {"max_subscriber_count", s.max_subscriber_count},
              {"consumer_strategy", ConsumerStrategyName(s.consumer_strategy)},
              {"filter", filter}};
}

Result<PersistentSubscriptionSettings> SettingsFromJson(std::string_view text, std::string_view stream) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Corruption(fmt::format("{}: settings are not a JSON object", stream));
  PersistentSubscriptionSettings s;
  try {
    s.resolve_links = j.value("resolve_links", s.resolve_links);
    const json& start = j.at("start_from");
    if (start.is_number_unsigned()) {
      s.start_from = PersistentStart::At(start.get<uint64_t>());
    } else {
      s.start_from = start.get<std::string>() == "start" ? PersistentStart::Start() : PersistentStart::End();
    }
    s.extra_statistics = j.value("extra_statistics", s.extra_statistics);
    s.message_timeout_ms = j.at("message_timeout_ms").get<int64_t>();
    s.max_retry_count = j.at("max_retry_count").get<int64_t>();
    s.live_buffer_size = j.at("live_buffer_size").get<int64_t>();
    s.history_buffer_size = j.at("history_buffer_size").get<int64_t>();
    s.read_batch_size = j.at("read_batch_size").get<int64_t>();
    s.checkpoint_after_ms = j.at("checkpoint_after_ms").get<int64_t>();
    s.min_checkpoint_count = j.at("min_checkpoint_count").get<int64_t>();
    s.max_checkpoint_count = j.at("max_checkpoint_count").get<int64_t>();
    s.max_subscriber_count = j.at("max_subscriber_count").get<int64_t>();
    auto strategy = ParseConsumerStrategy(j.at("consumer_strategy").get<std::string>());
    if (!strategy) return Status::Corruption(fmt::format("{}: unknown consumer_strategy", stream));
    s.consumer_strategy = *strategy;
    const json& f = j.at("filter");
    s.filter.stream_prefixes = f.at("stream_prefixes").get<std::vector<std::string>>();
    s.filter.categories = f.at("categories").get<std::vector<std::string>>();
    s.filter.event_types = f.at("event_types").get<std::vector<std::string>>();
    s.filter.exclude_system_events = f.at("exclude_system_events").get<bool>();
    // Added later: absent from groups created before.
    s.event_type_prefixes = f.value("event_type_prefixes", std::vector<std::string>());
    s.stream_regex = f.value("stream_regex", std::string());
    s.event_type_regex = f.value("event_type_regex", std::string());
  } catch (const json::exception& e) {
    return Status::Corruption(fmt::format("{}: settings: {}", stream, e.what()));
  }
  return s;
}

Result<uint64_t> CheckpointFromEvent(const RecordedEvent& e) {
  json j = json::parse(e.data, nullptr, false);
  if (!j.is_object() || !j.contains("checkpoint") || !j["checkpoint"].is_number_unsigned()) {
    return Status::Corruption(fmt::format("{}@{}: not a checkpoint", e.version, e.stream));
  }
  return j["checkpoint"].get<uint64_t>();
}

// A filter's regular expression, compiled; kInvalidArgument naming the field when it is not one.
Result<std::shared_ptr<const RE2>> CompileRegex(std::string_view field, const std::string& pattern) {
  if (pattern.size() > kMaxPersistentFilterRegexBytes) {
    return Status::InvalidArgument(
        fmt::format("{}: {} bytes, the limit is {}", field, pattern.size(), kMaxPersistentFilterRegexBytes));
  }
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const RE2>(pattern, options);
  if (!re->ok()) {
    return Status::InvalidArgument(fmt::format("{}: \"{}\" is not a regular expression: {}", field, pattern, re->error()));
  }
  return re;
}

// The part of a $all group's filter that the catch-up subscription's EventFilter cannot say:
// event type prefixes and regular expressions.
class ExtraFilter {
 public:
  static Result<ExtraFilter> From(const PersistentSubscriptionSettings& s) {
    ExtraFilter f;
    f.type_prefixes_ = s.event_type_prefixes;
    if (!s.stream_regex.empty()) {
      CAIRN_ASSIGN_OR_RETURN(f.stream_re_, CompileRegex("filter.stream_regex", s.stream_regex));
    }
    if (!s.event_type_regex.empty()) {
      CAIRN_ASSIGN_OR_RETURN(f.type_re_, CompileRegex("filter.event_type_regex", s.event_type_regex));
    }
    return f;
  }

  bool Matches(std::string_view stream, std::string_view type) const {
    if (!type_prefixes_.empty() &&
        std::none_of(type_prefixes_.begin(), type_prefixes_.end(), [&](const auto& p) { return type.starts_with(p); })) {
      return false;
    }
    if (stream_re_ && !RE2::PartialMatch(re2::StringPiece(stream.data(), stream.size()), *stream_re_)) return false;
    if (type_re_ && !RE2::PartialMatch(re2::StringPiece(type.data(), type.size()), *type_re_)) return false;
    return true;
  }

 private:
  std::vector<std::string> type_prefixes_;
  std::shared_ptr<const RE2> stream_re_, type_re_;
};

// FNV-1a: a hash that is the same in every process, so that pinning does not depend on the
// standard library's std::hash.
uint64_t StableHash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// What a consumer shares with its group; guarded by the group's mutex.
struct ConsumerState {
  std::string id;
  std::string name;
  int64_t buffer_size = 10;
  std::deque<PersistentEvent> queue;  // handed to it, not yet taken by Next()
  uint64_t in_flight = 0;             // handed to it (queued or taken), not yet done
  uint64_t delivered = 0;
  std::string from, username;
  uint64_t delivered_at_mark = 0;  // `delivered` at the last measurement
  uint64_t per_second = 0;
  bool ended = false;
  Status status;
  std::condition_variable cv;
};

// Delivery order: replayed parked events (origin 0, keyed by their parked-stream version) before
// the source's events (origin 1, keyed by the order they were read).
using Key = std::pair<uint8_t, uint64_t>;
constexpr uint8_t kReplayed = 0;
constexpr uint8_t kSource = 1;

struct Entry {
  RecordedEvent event;
  uint32_t retry_count = 0;
  // Source events: the resume point that delivers this event again (its version for a stream,
  // its position for $all).
  uint64_t resume_before = 0;
  enum class State : uint8_t { kReady, kInFlight, kParking } state = State::kReady;
  ConsumerState* consumer = nullptr;
  Clock::time_point deadline;
  std::string park_reason;
};

class Group : public std::enable_shared_from_this<Group> {
 public:
  Group(Store& store, std::string source, std::string group, PersistentSubscriptionSettings settings)
      : store_(store),
        source_(std::move(source)),
        group_(std::move(group)),
        all_(source_ == kAllStreamName),
        settings_(std::move(settings)),
        checkpoint_stream_(PersistentCheckpointStream(source_, group_)),
        parked_stream_(PersistentParkedStream(source_, group_)) {
    // The settings were validated before they were stored; a pattern that RE2 refuses now (a
    // group written by another version) lets every event through, the safe side of a filter
    // for at-least-once delivery, rather than losing events.
    auto extra = ExtraFilter::From(settings_);
    if (extra.ok()) extra_filter_ = std::move(*extra);
  }

  ~Group() { CAIRN_CHECK(!pump_.joinable()); }

  // Reads the checkpoint and starts reading from it.
  Status Start() {
    CAIRN_ASSIGN_OR_RETURN(std::optional<RecordedEvent> last, LastEvent(store_, checkpoint_stream_));
    uint64_t resume = 0;
    if (last) {
      CAIRN_ASSIGN_OR_RETURN(resume, CheckpointFromEvent(*last));
    }
    CAIRN_ASSIGN_OR_RETURN(StreamInfo parked, store_.GetStreamInfo(parked_stream_));
    parked_truncated_ = parked.metadata.truncate_before.value_or(0);
    if (all_) {
      SubscribeToAllOptions o;
      o.from = AllFrom::Checkpoint(Position(resume));
      o.filter = settings_.filter;
      CAIRN_ASSIGN_OR_RETURN(reader_, SubscribeToAll(store_, o));
    } else {
      SubscribeToStreamOptions o;
      o.from = StreamFrom::Version(resume);
      CAIRN_ASSIGN_OR_RETURN(reader_, SubscribeToStream(store_, source_, o));
    }
    checkpoint_written_ = resume;
    reader_resume_ = resume;
    last_checkpoint_time_ = Clock::now();
    pump_ = std::thread([this] { Pump(); });
    return Status::Ok();
  }

  // Stops the pump, writes the checkpoint (unless the group is gone) and ends every consumer
  // with `reason`.
  void Shutdown(const Status& reason, bool write_checkpoint) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (reader_) reader_->Stop();
    if (pump_.joinable()) pump_.join();
    std::unique_lock lock(mu_);
    if (write_checkpoint) {
      // Parks in progress come first: a parked event must be in the parked stream before the
      // checkpoint passes it.
      FlushParks(lock);
      WriteCheckpoint(lock, /*force=*/true);
    }
    for (auto& c : consumers_) EndConsumer(*c, reason);
    consumers_.clear();
  }

  Result<std::shared_ptr<ConsumerState>> AddConsumer(const ConsumerOptions& options, std::string id) {
    std::lock_guard lock(mu_);
    if (stopping_) return Status::Unavailable("persistent subscription: the group is restarting; connect again");
    if (settings_.max_subscriber_count > 0 &&
        static_cast<int64_t>(consumers_.size()) >= settings_.max_subscriber_count) {
      return Status::ResourceExhausted(fmt::format("max_subscriber_count: group {}::{} has {} consumers, the limit",
                                                   source_, group_, consumers_.size()));
    }
    auto c = std::make_shared<ConsumerState>();
    c->id = std::move(id);
    c->name = options.name;
    c->from = options.from;
    c->username = options.username;
    c->buffer_size = options.buffer_size;
    consumers_.push_back(c);
    DispatchLocked();
    cv_.notify_all();
    return c;
  }

  // The consumer leaves; its unacknowledged events go back (retry count + 1).
  void Leave(ConsumerState* c) {
    std::lock_guard lock(mu_);
    auto it = std::find_if(consumers_.begin(), consumers_.end(), [&](const auto& p) { return p.get() == c; });
    if (it == consumers_.end()) return;
    EndConsumer(*c, Status::Ok());
    for (auto& [key, entry] : outstanding_) {
      if (entry.state == Entry::State::kInFlight && entry.consumer == c) RetryLocked(key, entry, "consumer left");
    }
    consumers_.erase(it);
    rr_next_ = consumers_.empty() ? 0 : rr_next_ % consumers_.size();
    DispatchLocked();
    cv_.notify_all();
  }

  bool Next(ConsumerState& c, std::chrono::milliseconds timeout, PersistentEvent* out) {
    std::unique_lock lock(mu_);
    const auto pred = [&] { return !c.queue.empty() || c.ended; };
    if (timeout >= std::chrono::hours(24 * 365)) {
      c.cv.wait(lock, pred);
    } else {
      c.cv.wait_for(lock, timeout, pred);
    }
    if (c.queue.empty()) return false;
    *out = std::move(c.queue.front());
    c.queue.pop_front();
    return true;
  }

  bool Ended(const ConsumerState& c, Status* status) {
    std::lock_guard lock(mu_);
    if (status != nullptr) *status = c.status;
    return c.ended;
  }

  void Answer(ConsumerState& c, std::span<const Uuid> ids, std::optional<NackAction> action, std::string_view reason) {
    std::lock_guard lock(mu_);
    bool stop = false;
    for (const Uuid& id : ids) {
      auto found = in_flight_ids_.find(id);
      if (found == in_flight_ids_.end()) continue;  // not in flight: a late answer, ignored
      const Key key = found->second;
      Entry& entry = outstanding_.at(key);
      if (!action) {
        DoneLocked(key);
        continue;
      }
      switch (*action) {
        case NackAction::kSkip:
          DoneLocked(key);
          break;
        case NackAction::kRetry:
          RetryLocked(key, entry, fmt::format("nacked: {}", reason));
          break;
        case NackAction::kPark:
          ParkLocked(key, entry, fmt::format("nacked: {}", reason));
          break;
        case NackAction::kStop:
          // Back as not delivered, without a retry: stopping is not the event's fault.
          TakeBackLocked(key, entry);
          stop = true;
          break;
      }
    }
    if (stop && !c.ended) {
      // Leave without the lock taken twice: the same steps as Leave().
      EndConsumer(c, Status::Ok());
      for (auto& [key, entry] : outstanding_) {
        if (entry.state == Entry::State::kInFlight && entry.consumer == &c) RetryLocked(key, entry, "consumer stopped");
      }
      auto it = std::find_if(consumers_.begin(), consumers_.end(), [&](const auto& p) { return p.get() == &c; });
      if (it != consumers_.end()) consumers_.erase(it);
      rr_next_ = consumers_.empty() ? 0 : rr_next_ % consumers_.size();
    }
    DispatchLocked();
    cv_.notify_all();
  }

  // Queues the parked events (the oldest `stop_at`) for delivery ahead of new ones.
  Status ReplayParked(std::optional<uint64_t> stop_at) {
    ReadStreamOptions o;
    {
      std::lock_guard lock(mu_);
      o.from = std::max(parked_truncated_, parked_replayed_upto_);
    }
    if (stop_at) o.max_count = *stop_at;
    Result<EventCursor> cursor = store_.ReadStream(parked_stream_, o);
    if (!cursor.ok()) {
      if (cursor.status().IsNotFound() && cursor.status().detail() == ErrorDetail::kStreamNotFound) return Status::Ok();
      return cursor.status();
    }
    std::vector<std::pair<StreamVersion, std::optional<RecordedEvent>>> replay;
    while (cursor->Next()) {
      const RecordedEventView& link = cursor->event();
      std::optional<RecordedEvent> original;
      if (link.type == kLinkType) {
        const size_t at = link.data.find('@');
        if (at != std::string_view::npos) {
          ReadStreamOptions ro;
          ro.from = std::strtoull(std::string(link.data.substr(0, at)).c_str(), nullptr, 10);
          ro.max_count = 1;
          Result<EventCursor> target = store_.ReadStream(link.data.substr(at + 1), ro);
          if (target.ok() && target->Next()) original = target->event().ToOwned();
        }
      }
      replay.emplace_back(link.version, std::move(original));
    }
    CAIRN_RETURN_IF_ERROR(cursor->status());
    std::lock_guard lock(mu_);
    for (auto& [version, original] : replay) {
      if (version < parked_replayed_upto_) continue;
      parked_replayed_upto_ = version + 1;
      // An original that is gone (its stream deleted) has nothing left to deliver.
      if (!original) continue;
      const Key key{kReplayed, version};
      Entry& entry = outstanding_[key];
      entry.event = std::move(*original);
      ready_.insert(key);
    }
    DispatchLocked();
    cv_.notify_all();
    return Status::Ok();
  }

  void Fill(PersistentGroupInfo* info) {
    std::lock_guard lock(mu_);
    info->status = !reader_status_.ok() ? "Dropped: " + reader_status_.ToString() : live_ ? "Live" : "CatchingUp";
    info->checkpoint = checkpoint_written_;
    info->last_known = reader_resume_;
    info->last_event = last_event_;
    info->delivered = delivered_;
    info->per_second = per_second_;
    for (const auto& c : consumers_) {
      PersistentConnectionInfo ci;
      ci.id = c->id;
      ci.name = c->name;
      ci.from = c->from;
      ci.username = c->username;
      ci.per_second = c->per_second;
      ci.delivered = c->delivered;
      ci.in_flight = c->in_flight;
      ci.available_slots = static_cast<uint64_t>(c->buffer_size) - std::min<uint64_t>(c->in_flight, c->buffer_size);
      info->connections.push_back(std::move(ci));
      info->in_flight += c->in_flight;
    }
    info->buffered = ready_.size();
    for (const Key& key : ready_) {
      if (outstanding_.at(key).retry_count > 0) ++info->retry_buffered;
    }
  }

  const PersistentSubscriptionSettings& settings() const { return settings_; }

 private:
  static void EndConsumer(ConsumerState& c, const Status& reason) {
    if (c.ended) return;
    c.ended = true;
    c.status = reason;
    c.queue.clear();
    c.cv.notify_all();
  }

  void TakeBackLocked(const Key& key, Entry& entry) {
    if (entry.state == Entry::State::kInFlight) {
      in_flight_ids_.erase(entry.event.id);
      if (entry.consumer != nullptr) {
        --entry.consumer->in_flight;
        // Not yet taken by Next(): drop it from the queue too.
        auto& q = entry.consumer->queue;
        q.erase(std::remove_if(q.begin(), q.end(), [&](const PersistentEvent& e) { return e.event.id == entry.event.id; }),
                q.end());
      }
    }
    entry.consumer = nullptr;
    entry.state = Entry::State::kReady;
    ready_.insert(key);
  }

  void RetryLocked(const Key& key, Entry& entry, std::string reason) {
    if (entry.retry_count >= settings_.max_retry_count) {
      ParkLocked(key, entry, fmt::format("{}; max_retry_count {} reached", reason, settings_.max_retry_count));
      return;
    }
    TakeBackLocked(key, entry);
    ++entry.retry_count;
  }

  void ParkLocked(const Key& key, Entry& entry, std::string reason) {
    if (entry.state == Entry::State::kParking) return;
    TakeBackLocked(key, entry);
    ready_.erase(key);
    entry.state = Entry::State::kParking;
    entry.park_reason = std::move(reason);
    to_park_.push_back(key);
  }

  void DoneLocked(const Key& key) {
    auto it = outstanding_.find(key);
    if (it == outstanding_.end()) return;
    Entry& entry = it->second;
    if (entry.state == Entry::State::kInFlight) {
      in_flight_ids_.erase(entry.event.id);
      if (entry.consumer != nullptr) --entry.consumer->in_flight;
    }
    ready_.erase(key);
    outstanding_.erase(it);
    if (key.first == kSource) ++done_since_checkpoint_;
  }

  ConsumerState* PickLocked(const Entry& entry) {
    const size_t n = consumers_.size();
    const auto has_room = [](const ConsumerState& c) { return static_cast<int64_t>(c.in_flight) < c.buffer_size; };
    switch (settings_.consumer_strategy) {
      case ConsumerStrategy::kDispatchToSingle:
        for (auto& c : consumers_) {
          if (has_room(*c)) return c.get();
        }
        return nullptr;
      case ConsumerStrategy::kRoundRobin:
        for (size_t i = 0; i < n; ++i) {
          const size_t at = (rr_next_ + i) % n;
          if (has_room(*consumers_[at])) {
            rr_next_ = (at + 1) % n;
            return consumers_[at].get();
          }
        }
        return nullptr;
      case ConsumerStrategy::kPinned: {
        ConsumerState* c = consumers_[StableHash(entry.event.stream) % n].get();
        return has_room(*c) ? c : nullptr;
      }
    }
    return nullptr;
  }

  void DispatchLocked() {
    if (consumers_.empty() || stopping_) return;
    const auto now = Clock::now();
    for (auto it = ready_.begin(); it != ready_.end();) {
      Entry& entry = outstanding_.at(*it);
      ConsumerState* c = PickLocked(entry);
      if (c == nullptr) {
        // Pinned: the next event may belong to another consumer. Otherwise everyone is full.
        if (settings_.consumer_strategy == ConsumerStrategy::kPinned) {
          ++it;
          continue;
        }
        break;
      }
      entry.state = Entry::State::kInFlight;
      entry.consumer = c;
      entry.deadline = now + std::chrono::milliseconds(settings_.message_timeout_ms);
      in_flight_ids_[entry.event.id] = *it;
      ++c->in_flight;
      ++c->delivered;
      ++delivered_;
      c->queue.push_back(PersistentEvent{entry.event, entry.retry_count});
      c->cv.notify_all();
      it = ready_.erase(it);
    }
  }

  void ExpireLocked() {
    if (settings_.message_timeout_ms == 0) return;
    const auto now = Clock::now();
    for (auto& [key, entry] : outstanding_) {
      if (entry.state == Entry::State::kInFlight && entry.deadline <= now) {
        RetryLocked(key, entry, fmt::format("not acknowledged within message_timeout_ms {}", settings_.message_timeout_ms));
      }
    }
  }

  // Once a second: how many events went out in that second, for the group and each consumer.
  void MeasureLocked() {
    const auto now = Clock::now();
    const auto elapsed = now - measured_at_;
    if (elapsed < std::chrono::seconds(1)) return;
    const double seconds = std::chrono::duration<double>(elapsed).count();
    auto rate = [&](uint64_t count) { return static_cast<uint64_t>(static_cast<double>(count) / seconds + 0.5); };
    per_second_ = rate(delivered_ - delivered_at_mark_);
    delivered_at_mark_ = delivered_;
    for (auto& c : consumers_) {
      c->per_second = rate(c->delivered - c->delivered_at_mark);
      c->delivered_at_mark = c->delivered;
    }
    measured_at_ = now;
  }

  // Appends the events waiting to be parked to the parked stream; then they are done.
  void FlushParks(std::unique_lock<std::mutex>& lock) {
    if (to_park_.empty()) return;
    std::vector<Key> keys;
    keys.swap(to_park_);
    std::vector<EventData> links;
    for (const Key& key : keys) {
      const Entry& entry = outstanding_.at(key);
      EventData link;
      link.type = std::string(kLinkType);
      link.data = fmt::format("{}@{}", entry.event.version, entry.event.stream);
      link.metadata = json{{"reason", entry.park_reason}, {"position", entry.event.position.value()},
                           {"event_id", entry.event.id.ToString()}}.dump();
      link.content_type = ContentType::kBytes;
      links.push_back(std::move(link));
    }
    lock.unlock();
    Result<AppendResult> r = store_.Append(parked_stream_, ExpectedVersion::Any(), links, SystemAppend());
    lock.lock();
    if (!r.ok()) {
      // They stay outstanding (holding the checkpoint back) and are tried again.
      write_error_ = r.status();
      to_park_.insert(to_park_.begin(), keys.begin(), keys.end());
      return;
    }
    for (const Key& key : keys) DoneLocked(key);
  }

  // The resume point before the oldest source event not yet done.
  uint64_t CheckpointLocked() const {
    auto it = outstanding_.lower_bound(Key{kSource, 0});
    return it != outstanding_.end() ? it->second.resume_before : reader_resume_;
  }

  void WriteCheckpoint(std::unique_lock<std::mutex>& lock, bool force) {
    const uint64_t value = CheckpointLocked();
    if (value == checkpoint_written_) {
      done_since_checkpoint_ = 0;
    } else {
      const auto now = Clock::now();
      const bool due = force || done_since_checkpoint_ >= static_cast<uint64_t>(settings_.max_checkpoint_count) ||
                       (done_since_checkpoint_ >= static_cast<uint64_t>(settings_.min_checkpoint_count) &&
                        now - last_checkpoint_time_ >= std::chrono::milliseconds(settings_.checkpoint_after_ms));
      if (due) {
        lock.unlock();
        Status r = AppendJson(store_, checkpoint_stream_, kCheckpointType, json{{"checkpoint", value}});
        lock.lock();
        if (r.ok()) {
          checkpoint_written_ = value;
          done_since_checkpoint_ = 0;
          last_checkpoint_time_ = now;
        } else {
          write_error_ = r;
        }
      }
    }
    // Replayed parked events that are done leave the parked stream (truncate-before).
    uint64_t truncate = parked_replayed_upto_;
    for (const auto& [key, entry] : outstanding_) {
      if (key.first == kReplayed) {
        truncate = key.second;
        break;
      }
    }
    if (truncate > parked_truncated_) {
      lock.unlock();
      Status s = TruncateParked(truncate);
      lock.lock();
      if (s.ok()) {
        parked_truncated_ = truncate;
      } else {
        write_error_ = s;
      }
    }
  }

  Status TruncateParked(uint64_t before) {
    CAIRN_ASSIGN_OR_RETURN(StreamInfo info, store_.GetStreamInfo(parked_stream_));
    StreamMetadata m = info.metadata;
    m.truncate_before = before;
    return store_.SetStreamMetadata(parked_stream_, ExpectedVersion::Any(), m).status();
  }

  void Pump() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      MeasureLocked();
      ExpireLocked();
      FlushParks(lock);
      DispatchLocked();
      WriteCheckpoint(lock, /*force=*/false);
      if (stopping_) break;
      const int64_t bound = live_ ? settings_.live_buffer_size : settings_.history_buffer_size;
      const int64_t room = bound - static_cast<int64_t>(ready_.size());
      if (room <= 0 || !reader_status_.ok()) {
        cv_.wait_for(lock, kPumpSlice);
        continue;
      }
      lock.unlock();
      ReadBatch(std::min<int64_t>(room, settings_.read_batch_size), lock);
    }
  }

  // Reads up to `count` events without the lock (waiting up to a slice for the first), then
  // takes the lock and queues them.
  void ReadBatch(int64_t count, std::unique_lock<std::mutex>& lock) {
    struct Read {
      std::optional<RecordedEvent> event;
      uint64_t resume = 0;
      bool live = false;
    };
    std::vector<Read> batch;
    Status failed;
    while (static_cast<int64_t>(batch.size()) < count) {
      const auto wait = batch.empty() ? kPumpSlice : std::chrono::milliseconds(0);
      if (!reader_->Next(wait)) {
        if (reader_->done() && !reader_->status().ok()) failed = reader_->status();
        break;
      }
      const SubscriptionMessage& m = reader_->message();
      Read r;
      r.resume = all_ ? m.checkpoint.value() : m.next_version;
      r.live = reader_->live();
      // A $all group never delivers the system streams of persistent subscriptions: its own
      // checkpoints would otherwise feed it forever.
      if (m.kind == SubscriptionMessage::Kind::kEvent && !m.event.stream.starts_with(kStreamPrefix) &&
          m.event.stream != kRegistryStream && extra_filter_.Matches(m.event.stream, m.event.type)) {
        r.event = m.event.ToOwned();
      }
      const bool had_event = r.event.has_value();
      batch.push_back(std::move(r));
      if (!had_event && m.kind != SubscriptionMessage::Kind::kEvent) break;
    }
    lock.lock();
    for (Read& r : batch) {
      if (r.event) {
        const Key key{kSource, next_seq_++};
        Entry& entry = outstanding_[key];
        entry.resume_before = all_ ? r.event->position.value() : r.event->version;
        last_event_ = entry.resume_before;
        entry.event = std::move(*r.event);
        ready_.insert(key);
      }
      reader_resume_ = r.resume;
      live_ = r.live;
    }
    if (!failed.ok()) {
      // The source is gone (tombstoned) or unreadable: the consumers learn why.
      reader_status_ = failed;
      for (auto& c : consumers_) EndConsumer(*c, failed);
      consumers_.clear();
    }
    DispatchLocked();
  }

  Store& store_;
  const std::string source_;
  const std::string group_;
  const bool all_;
  const PersistentSubscriptionSettings settings_;
  const std::string checkpoint_stream_;
  const std::string parked_stream_;
  std::unique_ptr<Subscription> reader_;  // used by the pump thread only (Stop() from any)
  std::thread pump_;

  std::mutex mu_;
  std::condition_variable cv_;  // wakes the pump: room, parks, stopping
  bool stopping_ = false;
  std::vector<std::shared_ptr<ConsumerState>> consumers_;
  size_t rr_next_ = 0;
  std::map<Key, Entry> outstanding_;
  std::set<Key> ready_;
  std::map<Uuid, Key> in_flight_ids_;
  std::vector<Key> to_park_;
  uint64_t next_seq_ = 0;
  uint64_t reader_resume_ = 0;
  bool live_ = false;
  Status reader_status_;
  Status write_error_;
  uint64_t checkpoint_written_ = 0;
  uint64_t done_since_checkpoint_ = 0;
  Clock::time_point last_checkpoint_time_;
  uint64_t parked_truncated_ = 0;
  uint64_t parked_replayed_upto_ = 0;
  uint64_t delivered_ = 0;
  std::optional<uint64_t> last_event_;
  ExtraFilter extra_filter_;
  Clock::time_point measured_at_ = Clock::now();
  uint64_t delivered_at_mark_ = 0;
  uint64_t per_second_ = 0;
};

class Consumer final : public PersistentConsumer {
 public:
  Consumer(std::shared_ptr<Group> group, std::shared_ptr<ConsumerState> state)
      : group_(std::move(group)), state_(std::move(state)) {}
  ~Consumer() override { Stop(); }

  bool Next(std::chrono::milliseconds timeout) override { return group_->Next(*state_, timeout, &event_); }
  const PersistentEvent& event() const override { return event_; }

  Status Ack(std::span<const Uuid> ids) override {
    CAIRN_RETURN_IF_ERROR(CheckIds(ids));
    group_->Answer(*state_, ids, std::nullopt, {});
    return Status::Ok();
  }
  Status Nack(std::span<const Uuid> ids, NackAction action, std::string_view reason) override {
    CAIRN_RETURN_IF_ERROR(CheckIds(ids));
    group_->Answer(*state_, ids, action, reason);
    return Status::Ok();
  }
  void Stop() override { group_->Leave(state_.get()); }
  bool done() const override { return group_->Ended(*state_, nullptr); }
  Status status() const override {
    Status s;
    group_->Ended(*state_, &s);
    return s;
  }
  const std::string& id() const override { return state_->id; }

 private:
  static Status CheckIds(std::span<const Uuid> ids) {
    if (ids.size() > static_cast<size_t>(kMaxConsumerBufferSize)) {
      return Status::InvalidArgument(fmt::format("ids: {} at once, the limit is {}", ids.size(), kMaxConsumerBufferSize));
    }
    return Status::Ok();
  }

  std::shared_ptr<Group> group_;
  std::shared_ptr<ConsumerState> state_;
  PersistentEvent event_;
};

class Manager final : public PersistentSubscriptions {
 public:
  explicit Manager(Store& store) : store_(store) {}
  ~Manager() override { (void)Close(); }

  Status LoadRegistry() {
    registry_.clear();
    Result<EventCursor> cursor = store_.ReadStream(kRegistryStream);
    if (!cursor.ok()) {
      if (cursor.status().IsNotFound() && cursor.status().detail() == ErrorDetail::kStreamNotFound) return Status::Ok();
      return cursor.status();
    }
    while (cursor->Next()) {
      json j = json::parse(cursor->event().data, nullptr, false);
      if (!j.is_object() || !j["stream"].is_string() || !j["group"].is_string()) {
        return Status::Corruption(fmt::format("{}@{}: not a group", cursor->event().version, kRegistryStream));
      }
      registry_.emplace(j["stream"].get<std::string>(), j["group"].get<std::string>());
    }
    return cursor->status();
  }

  Status Create(std::string_view source, std::string_view group, const PersistentSubscriptionSettings& settings) override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    CAIRN_RETURN_IF_ERROR(ValidateNames(source, group));
    CAIRN_RETURN_IF_ERROR(settings.Validate(source == kAllStreamName));
    CAIRN_ASSIGN_OR_RETURN(auto existing, ReadSettings(source, group));
    if (existing) {
      return Status::AlreadyExists(fmt::format("persistent subscription group {} on {} exists", group, source));
    }
    // Resolve the start now: "end" means the events after Create.
    uint64_t start = settings.start_from.value;
    if (settings.start_from.kind == PersistentStart::Kind::kStart) start = 0;
    if (settings.start_from.kind == PersistentStart::Kind::kEnd) {
      if (source == kAllStreamName) {
        start = store_.HeadPosition().value();
      } else {
        CAIRN_ASSIGN_OR_RETURN(StreamInfo info, store_.GetStreamInfo(source));
        start = info.last_version ? *info.last_version + 1 : 0;
      }
    }
    // The order makes a crash anywhere harmless: the group exists once its settings are written,
    // and by then it is in the list and has its first checkpoint.
    const std::pair<std::string, std::string> name{std::string(source), std::string(group)};
    if (!registry_.contains(name)) {
      CAIRN_RETURN_IF_ERROR(AppendJson(store_, kRegistryStream, kRegisteredType, json{{"stream", source}, {"group", group}}));
      registry_.insert(name);
    }
    CAIRN_RETURN_IF_ERROR(AppendJson(store_, PersistentCheckpointStream(source, group), kCheckpointType, json{{"checkpoint", start}}));
    // Parked events of an earlier group of the same name are gone.
    CAIRN_RETURN_IF_ERROR(TruncateAll(PersistentParkedStream(source, group)));
    return AppendJson(store_, PersistentConfigStream(source, group), kSettingsType, SettingsToJson(settings));
  }

  Status Update(std::string_view source, std::string_view group, const PersistentSubscriptionSettings& settings) override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    CAIRN_RETURN_IF_ERROR(ValidateNames(source, group));
    CAIRN_RETURN_IF_ERROR(settings.Validate(source == kAllStreamName));
    CAIRN_ASSIGN_OR_RETURN(auto existing, ReadSettings(source, group));
    if (!existing) return NotFound(source, group);
    CAIRN_RETURN_IF_ERROR(AppendJson(store_, PersistentConfigStream(source, group), kSettingsType, SettingsToJson(settings)));
    Unload(source, group, Status::Unavailable(fmt::format(
                              "persistent subscription group {} on {} was updated; connect again", group, source)),
           /*write_checkpoint=*/true);
    return Status::Ok();
  }

  Status Delete(std::string_view source, std::string_view group) override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    CAIRN_RETURN_IF_ERROR(ValidateNames(source, group));
    CAIRN_ASSIGN_OR_RETURN(auto existing, ReadSettings(source, group));
    if (!existing) return NotFound(source, group);
    Unload(source, group, Status::NotFound(fmt::format("persistent subscription group {} on {} was deleted", group, source)),
           /*write_checkpoint=*/false);
    CAIRN_RETURN_IF_ERROR(AppendJson(store_, PersistentConfigStream(source, group), kDeletedType, json::object()));
    return TruncateAll(PersistentParkedStream(source, group));
  }

  Result<std::vector<PersistentGroupInfo>> List(std::optional<std::string_view> source) override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    std::vector<PersistentGroupInfo> out;
    for (const auto& [s, g] : registry_) {
      if (source && s != *source) continue;
      CAIRN_ASSIGN_OR_RETURN(auto settings, ReadSettings(s, g));
      if (!settings) continue;
      CAIRN_ASSIGN_OR_RETURN(PersistentGroupInfo info, InfoLocked(s, g, *settings));
      out.push_back(std::move(info));
    }
    return out;
  }

  Result<PersistentGroupInfo> GetInfo(std::string_view source, std::string_view group) override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    CAIRN_RETURN_IF_ERROR(ValidateNames(source, group));
    CAIRN_ASSIGN_OR_RETURN(auto settings, ReadSettings(source, group));
    if (!settings) return NotFound(source, group);
    return InfoLocked(source, group, *settings);
  }

  Result<std::unique_ptr<PersistentConsumer>> Connect(std::string_view source, std::string_view group,
                                                      const ConsumerOptions& options) override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    CAIRN_RETURN_IF_ERROR(ValidateNames(source, group));
    if (options.buffer_size < 1 || options.buffer_size > kMaxConsumerBufferSize) {
      return Status::InvalidArgument(
          fmt::format("buffer_size: {} is outside 1..{}", options.buffer_size, kMaxConsumerBufferSize));
    }
    CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Group> g, LoadLocked(source, group));
    const std::string id = fmt::format("{}::{}::{}", source, group, ++consumer_count_);
    CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<ConsumerState> state, g->AddConsumer(options, id));
    return std::unique_ptr<PersistentConsumer>(std::make_unique<Consumer>(std::move(g), std::move(state)));
  }

  Status ReplayParked(std::string_view source, std::string_view group, std::optional<uint64_t> stop_at) override {
    std::shared_ptr<Group> g;
    {
      std::lock_guard lock(mu_);
      CAIRN_RETURN_IF_ERROR(CheckOpen());
      CAIRN_RETURN_IF_ERROR(ValidateNames(source, group));
      CAIRN_ASSIGN_OR_RETURN(g, LoadLocked(source, group));
    }
    return g->ReplayParked(stop_at);
  }

  Status RestartSubsystem() override {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(CheckOpen());
    for (auto& [name, g] : groups_) {
      g->Shutdown(Status::Unavailable("persistent subscriptions restarted; connect again"), true);
    }
    groups_.clear();
    return LoadRegistry();
  }

  Status Close() override {
    std::lock_guard lock(mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
    for (auto& [name, g] : groups_) {
      g->Shutdown(Status::FailedPrecondition("persistent subscriptions closed"), true);
    }
    groups_.clear();
    return Status::Ok();
  }

 private:
  Status CheckOpen() const {
    if (closed_) return Status::FailedPrecondition("persistent subscriptions: closed");
    return Status::Ok();
  }

  static Status NotFound(std::string_view source, std::string_view group) {
    return Status::NotFound(fmt::format("persistent subscription group {} on {} does not exist", group, source));
  }

  // The group's settings; nullopt when it does not exist.
  Result<std::optional<PersistentSubscriptionSettings>> ReadSettings(std::string_view source, std::string_view group) {
    const std::string stream = PersistentConfigStream(source, group);
    CAIRN_ASSIGN_OR_RETURN(std::optional<RecordedEvent> last, LastEvent(store_, stream));
    if (!last || last->type != kSettingsType) return std::optional<PersistentSubscriptionSettings>();
    CAIRN_ASSIGN_OR_RETURN(PersistentSubscriptionSettings s, SettingsFromJson(last->data, stream));
    return std::optional<PersistentSubscriptionSettings>(std::move(s));
  }

  Result<std::shared_ptr<Group>> LoadLocked(std::string_view source, std::string_view group) {
    const std::pair<std::string, std::string> name{std::string(source), std::string(group)};
    if (auto it = groups_.find(name); it != groups_.end()) return it->second;
    CAIRN_ASSIGN_OR_RETURN(auto settings, ReadSettings(source, group));
    if (!settings) return NotFound(source, group);
    auto g = std::make_shared<Group>(store_, name.first, name.second, *settings);
    CAIRN_RETURN_IF_ERROR(g->Start());
    groups_.emplace(name, g);
    return g;
  }

  void Unload(std::string_view source, std::string_view group, const Status& reason, bool write_checkpoint) {
    auto it = groups_.find({std::string(source), std::string(group)});
    if (it == groups_.end()) return;
    it->second->Shutdown(reason, write_checkpoint);
    groups_.erase(it);
  }

  Result<PersistentGroupInfo> InfoLocked(std::string_view source, std::string_view group,
                                         const PersistentSubscriptionSettings& settings) {
    PersistentGroupInfo info;
    info.source = std::string(source);
    info.group = std::string(group);
    info.settings = settings;
    auto it = groups_.find({info.source, info.group});
    if (it != groups_.end()) {
      it->second->Fill(&info);
    } else {
      info.status = "NotReady";
      CAIRN_ASSIGN_OR_RETURN(std::optional<RecordedEvent> last, LastEvent(store_, PersistentCheckpointStream(source, group)));
      if (last) {
        CAIRN_ASSIGN_OR_RETURN(uint64_t checkpoint, CheckpointFromEvent(*last));
        info.checkpoint = checkpoint;
      }
    }
    CAIRN_ASSIGN_OR_RETURN(StreamInfo parked, store_.GetStreamInfo(PersistentParkedStream(source, group)));
    if (parked.last_version) {
      const uint64_t end = *parked.last_version + 1;
      info.parked = end - std::min(end, parked.metadata.truncate_before.value_or(0));
    }
    return info;
  }

  // Hides every event of a system stream (truncate-before past its last one).
  Status TruncateAll(const std::string& stream) {
    CAIRN_ASSIGN_OR_RETURN(StreamInfo info, store_.GetStreamInfo(stream));
    if (!info.last_version) return Status::Ok();
    StreamMetadata m = info.metadata;
    m.truncate_before = *info.last_version + 1;
    return store_.SetStreamMetadata(stream, ExpectedVersion::Any(), m).status();
  }

  Store& store_;
  std::mutex mu_;
  bool closed_ = false;
  std::set<std::pair<std::string, std::string>> registry_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Group>> groups_;
  uint64_t consumer_count_ = 0;
};

}  // namespace

std::string_view ConsumerStrategyName(ConsumerStrategy strategy) {
  switch (strategy) {
    case ConsumerStrategy::kDispatchToSingle: return "DispatchToSingle";
    case ConsumerStrategy::kRoundRobin: return "RoundRobin";
    case ConsumerStrategy::kPinned: return "Pinned";
  }
  return "RoundRobin";
}

std::optional<ConsumerStrategy> ParseConsumerStrategy(std::string_view name) {
  if (name == "DispatchToSingle") return ConsumerStrategy::kDispatchToSingle;
  if (name == "RoundRobin") return ConsumerStrategy::kRoundRobin;
  if (name == "Pinned" || name == "PinnedByCorrelation") return ConsumerStrategy::kPinned;
  return std::nullopt;
}

Status PersistentSubscriptionSettings::Validate(bool all) const {
  CAIRN_RETURN_IF_ERROR(CheckRange("message_timeout_ms", message_timeout_ms, 0, kMaxPersistentTimeoutMs));
  CAIRN_RETURN_IF_ERROR(CheckRange("max_retry_count", max_retry_count, 0, kMaxPersistentRetryCount));
  CAIRN_RETURN_IF_ERROR(CheckRange("live_buffer_size", live_buffer_size, 1, kMaxPersistentBufferSize));
  CAIRN_RETURN_IF_ERROR(CheckRange("history_buffer_size", history_buffer_size, 1, kMaxPersistentBufferSize));
  CAIRN_RETURN_IF_ERROR(CheckRange("read_batch_size", read_batch_size, 1, history_buffer_size));
  CAIRN_RETURN_IF_ERROR(CheckRange("checkpoint_after_ms", checkpoint_after_ms, 0, kMaxPersistentTimeoutMs));
  CAIRN_RETURN_IF_ERROR(CheckRange("max_checkpoint_count", max_checkpoint_count, 1, kMaxPersistentCheckpointCount));
  CAIRN_RETURN_IF_ERROR(CheckRange("min_checkpoint_count", min_checkpoint_count, 0, max_checkpoint_count));
  CAIRN_RETURN_IF_ERROR(CheckRange("max_subscriber_count", max_subscriber_count, 0, kMaxPersistentSubscriberCount));
  const bool extra = !event_type_prefixes.empty() || !stream_regex.empty() || !event_type_regex.empty();
  if (!all && (!filter.Empty() || extra)) {
    return Status::InvalidArgument("filter: only a group on $all can have a filter");
  }
  if (event_type_prefixes.size() > kMaxPersistentFilterPrefixes) {
    return Status::InvalidArgument(fmt::format("filter.event_type_prefixes: {} prefixes, the limit is {}",
                                               event_type_prefixes.size(), kMaxPersistentFilterPrefixes));
  }
  return ExtraFilter::From(*this).status();
}

std::string PersistentConfigStream(std::string_view source, std::string_view group) {
  return fmt::format("{}{}::{}-config", kStreamPrefix, source, group);
}
std::string PersistentCheckpointStream(std::string_view source, std::string_view group) {
  return fmt::format("{}{}::{}-checkpoint", kStreamPrefix, source, group);
}
std::string PersistentParkedStream(std::string_view source, std::string_view group) {
  return fmt::format("{}{}::{}-parked", kStreamPrefix, source, group);
}

Result<std::unique_ptr<PersistentSubscriptions>> PersistentSubscriptions::Open(Store& store) {
  auto manager = std::make_unique<Manager>(store);
  CAIRN_RETURN_IF_ERROR(manager->LoadRegistry());
  return std::unique_ptr<PersistentSubscriptions>(std::move(manager));
}

}  // namespace cairn

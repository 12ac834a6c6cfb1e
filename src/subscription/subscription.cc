// Catch-up subscriptions on the public Store API (include/cairn/subscription.h): passes of
// cursors from a checkpoint up to the head, with Store::WaitForAppend between them.
#include "cairn/subscription.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <optional>

#include "cairn/store.h"
#include "util/check.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

// The longest one WaitForAppend call blocks, so that Stop() takes effect soon (the wait itself
// wakes at once on an append).
constexpr std::chrono::milliseconds kWaitSlice{100};

// What a pass-based subscription shares between $all and one stream: the passes, the waiting,
// the caught-up / fell-behind state and stopping. Subclasses open a pass's cursor and decide, per
// event, whether it is delivered.
class PassSubscription : public Subscription {
 public:
  PassSubscription(Store& store, uint64_t fell_behind_after_events)
      : store_(store), fell_behind_after_(std::max<uint64_t>(1, fell_behind_after_events)) {}

  bool Next(std::chrono::milliseconds timeout) override {
    if (done()) return false;
    // Saturate: Next() without a timeout passes milliseconds::max().
    const auto deadline = timeout >= std::chrono::hours(24 * 365) ? Clock::time_point::max() : Clock::now() + timeout;
    if (held_event_) {
      // The event after a kFellBehind: the cursor has not moved, so its view is still valid.
      held_event_ = false;
      message_.kind = SubscriptionMessage::Kind::kEvent;
      message_.event = cursor_->event();
      SetResume(&message_);
      return true;
    }
    for (;;) {
      if (stop_.load(std::memory_order_acquire)) return End(Status::Ok());
      if (!cursor_) {
        // The head is taken before the cursor is made: the cursor then sees at least up to it,
        // and waiting for the head to pass it below can miss nothing.
        pass_head_ = store_.HeadPosition();
        Result<std::optional<EventCursor>> opened = OpenPass();
        if (!opened.ok()) return End(opened.status());
        if (opened->has_value()) cursor_.emplace(std::move(**opened));
        pass_count_ = 0;
        if (!cursor_) {
          if (PassEnded()) return true;
          if (!WaitForHead(deadline)) return false;
          continue;
        }
      }
      if (cursor_->Next()) {
        const RecordedEventView& e = cursor_->event();
        if (!Accept(e, *cursor_)) {
          if (skipped_message_) {
            skipped_message_ = false;
            message_.kind = SubscriptionMessage::Kind::kCheckpoint;
            message_.event = {};
            SetResume(&message_);
            return true;
          }
          continue;
        }
        ++pass_count_;
        if (live_ && pass_count_ > fell_behind_after_) {
          live_ = false;
          held_event_ = true;
          message_.kind = SubscriptionMessage::Kind::kFellBehind;
          message_.event = {};
          // Its resume point is before the held event, which comes next.
          SetResumeBefore(&message_, e);
          return true;
        }
        message_.kind = SubscriptionMessage::Kind::kEvent;
        message_.event = e;
        SetResume(&message_);
        return true;
      }
      if (!cursor_->status().ok()) return End(cursor_->status());
      cursor_.reset();
      if (PassEnded()) return true;
      if (!WaitForHead(deadline)) return false;
    }
  }

  const SubscriptionMessage& message() const override { return message_; }
  void Stop() override { stop_.store(true, std::memory_order_release); }
  bool done() const override { return done_; }
  Status status() const override { return status_; }
  bool live() const override { return live_; }
  Position checkpoint() const override { return Resume().checkpoint; }
  StreamVersion next_version() const override { return Resume().next_version; }

 protected:
  // Opens the cursor of the next pass, or nullopt for an empty pass (a stream that does not
  // exist yet).
  virtual Result<std::optional<EventCursor>> OpenPass() = 0;
  // Whether `e`, just read, is delivered; moves the resume point past it either way. May set
  // skipped_message_ to report a checkpoint instead.
  virtual bool Accept(const RecordedEventView& e, const EventCursor& cursor) = 0;
  // Fills the resume fields (checkpoint / next_version) of a message.
  virtual void SetResume(SubscriptionMessage* m) const = 0;
  // The same for a message before `e`, the event Accept() took last.
  virtual void SetResumeBefore(SubscriptionMessage* m, const RecordedEventView& e) const = 0;

  Store& store_;
  bool skipped_message_ = false;

 private:
  SubscriptionMessage Resume() const {
    SubscriptionMessage m;
    if (held_event_) {
      SetResumeBefore(&m, cursor_->event());
    } else {
      SetResume(&m);
    }
    return m;
  }

  bool End(Status status) {
    done_ = true;
    status_ = std::move(status);
    cursor_.reset();
    return false;
  }

  // At the end of a pass: a consumer that is not live is caught up when the pass was short, or
  // when nothing was committed meanwhile. Returns true when that makes a message.
  bool PassEnded() {
    if (live_) return false;
    if (pass_count_ > fell_behind_after_ && store_.HeadPosition() > pass_head_) return false;
    live_ = true;
    message_.kind = SubscriptionMessage::Kind::kCaughtUp;
    message_.event = {};
    SetResume(&message_);
    return true;
  }

  // Waits for the head to pass the last pass's head. False on the deadline or the end.
  bool WaitForHead(Clock::time_point deadline) {
    for (;;) {
      if (stop_.load(std::memory_order_acquire)) return End(Status::Ok());
      if (store_.HeadPosition() > pass_head_) return true;
      const auto now = Clock::now();
      if (now >= deadline) return false;
      const auto slice = std::min<Clock::duration>(kWaitSlice, deadline - now);
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(slice);
      if (wait.count() == 0) return false;
      const auto before = Clock::now();
      const Position head = store_.WaitForAppend(pass_head_, wait);
      if (head > pass_head_) return true;
      // WaitForAppend returns before its timeout only for an append or a close (its contract).
      if (Clock::now() - before < wait) return End(Status::FailedPrecondition("subscription: the store was closed"));
    }
  }

  const uint64_t fell_behind_after_;
  std::optional<EventCursor> cursor_;
  Position pass_head_;
  uint64_t pass_count_ = 0;
  bool live_ = false;
  bool held_event_ = false;
  bool done_ = false;
  Status status_;
  std::atomic<bool> stop_{false};
  SubscriptionMessage message_;
};

class AllSubscription final : public PassSubscription {
 public:
  AllSubscription(Store& store, const SubscribeToAllOptions& options)
      : PassSubscription(store, options.fell_behind_after_events),
        filter_(options.filter),
        interval_(options.checkpoint_interval_events) {
    switch (options.from.kind()) {
      case AllFrom::Kind::kNow:
        checkpoint_ = store.HeadPosition();
        break;
      case AllFrom::Kind::kAfter:
        checkpoint_ = options.from.position();
        skip_through_ = options.from.position();
        break;
      case AllFrom::Kind::kCheckpoint:
        checkpoint_ = options.from.position();
        break;
    }
  }

 protected:
  Result<std::optional<EventCursor>> OpenPass() override {
    ReadAllOptions o;
    o.from = checkpoint_;
    CAIRN_ASSIGN_OR_RETURN(EventCursor cursor, store_.ReadAll(o));
    return std::optional<EventCursor>(std::move(cursor));
  }

  bool Accept(const RecordedEventView& e, const EventCursor& cursor) override {
    const Position next = cursor.checkpoint();
    // A $all cursor's checkpoint after an event is where a later read resumes: past the event.
    CAIRN_CHECK_MSG(next > e.position, "ReadAll cursor checkpoint not past the event it returned");
    before_ = checkpoint_;
    checkpoint_ = next;
    // AllFrom::After(p): the read starts at p itself, which was delivered before. Positions only
    // grow, so this also drops anything a backend could hand out twice.
    if (skip_through_ && e.position <= *skip_through_) return false;
    skip_through_.reset();
    if (filter_.Empty() || filter_.Matches(e.stream, e.type)) {
      skipped_ = 0;
      return true;
    }
    if (interval_ != 0 && ++skipped_ >= interval_) {
      skipped_ = 0;
      skipped_message_ = true;
    }
    return false;
  }

  void SetResume(SubscriptionMessage* m) const override {
    m->checkpoint = checkpoint_;
    m->next_version = 0;
  }
  void SetResumeBefore(SubscriptionMessage* m, const RecordedEventView&) const override {
    m->checkpoint = before_;
    m->next_version = 0;
  }

 private:
  EventFilter filter_;
  uint32_t interval_;
  uint32_t skipped_ = 0;
  Position checkpoint_;
  Position before_;
  std::optional<Position> skip_through_;
};

class StreamSubscription final : public PassSubscription {
 public:
  StreamSubscription(Store& store, std::string stream, StreamVersion next, const SubscribeToStreamOptions& options)
      : PassSubscription(store, options.fell_behind_after_events), stream_(std::move(stream)), next_(next) {}

 protected:
  Result<std::optional<EventCursor>> OpenPass() override {
    ReadStreamOptions o;
    o.from = next_;
    Result<EventCursor> cursor = store_.ReadStream(stream_, o);
    if (!cursor.ok()) {
      const Status& s = cursor.status();
      // Not written yet, or soft-deleted: wait for its next events.
      if (s.IsNotFound() && s.detail() == ErrorDetail::kStreamNotFound) return std::optional<EventCursor>();
      return s;
    }
    return std::optional<EventCursor>(std::move(*cursor));
  }

  bool Accept(const RecordedEventView& e, const EventCursor&) override {
    if (e.version < next_) return false;
    next_ = e.version + 1;
    return true;
  }

  void SetResume(SubscriptionMessage* m) const override {
    m->checkpoint = Position::Start();
    m->next_version = next_;
  }
  void SetResumeBefore(SubscriptionMessage* m, const RecordedEventView& e) const override {
    m->checkpoint = Position::Start();
    m->next_version = e.version;
  }

 private:
  std::string stream_;
  StreamVersion next_;
};

}  // namespace

Result<std::unique_ptr<Subscription>> SubscribeToAll(Store& store, const SubscribeToAllOptions& options) {
  if (options.fell_behind_after_events == 0) {
    return Status::InvalidArgument("fell_behind_after_events: must be at least 1");
  }
  return std::unique_ptr<Subscription>(std::make_unique<AllSubscription>(store, options));
}

Result<std::unique_ptr<Subscription>> SubscribeToStream(Store& store, std::string_view stream,
                                                        const SubscribeToStreamOptions& options) {
  if (options.fell_behind_after_events == 0) {
    return Status::InvalidArgument("fell_behind_after_events: must be at least 1");
  }
  // Validates the name (kInvalidArgument naming it) and finds where Now() starts.
  CAIRN_ASSIGN_OR_RETURN(StreamInfo info, store.GetStreamInfo(stream));
  if (info.tombstoned) {
    return Status::NotFound(fmt::format("subscribe to {}: the stream is deleted for good", stream),
                            ErrorDetail::kStreamDeleted);
  }
  StreamVersion next = options.from.version();
  if (options.from.kind() == StreamFrom::Kind::kNow) next = info.last_version ? *info.last_version + 1 : 0;
  if (next > kMaxStreamVersion) {
    return Status::InvalidArgument(fmt::format("from version {} exceeds the limit {}", next, kMaxStreamVersion));
  }
  return std::unique_ptr<Subscription>(std::make_unique<StreamSubscription>(store, std::string(stream), next, options));
}

SubscriptionRunner::SubscriptionRunner(std::unique_ptr<Subscription> subscription, Handler on_message)
    : subscription_(std::move(subscription)), on_message_(std::move(on_message)) {
  CAIRN_CHECK(subscription_ != nullptr);
  thread_ = std::thread([this] { Run(); });
}

SubscriptionRunner::~SubscriptionRunner() { (void)Stop(); }

void SubscriptionRunner::Run() {
  for (;;) {
    if (!subscription_->Next()) {
      if (subscription_->done()) break;
      continue;
    }
    Status handled;
    try {
      handled = on_message_(subscription_->message());
    } catch (const std::exception& e) {
      handled = Status::Internal(fmt::format("subscription handler threw: {}", e.what()));
    } catch (...) {
      handled = Status::Internal("subscription handler threw a non-standard exception");
    }
    if (!handled.ok()) {
      status_ = handled;
      subscription_->Stop();
      break;
    }
  }
  if (status_.ok()) status_ = subscription_->status();
  done_.store(true, std::memory_order_release);
}

Status SubscriptionRunner::Stop() {
  subscription_->Stop();
  if (thread_.joinable()) thread_.join();
  return status_;
}

}  // namespace cairn

// Proves the catch-up subscription's contract on the embedded store: history, caught-up, live
// events, every way to start and resume, filter checkpoints, fell-behind, stream deletion, the
// store closing and the push runner. How: real stores (memory: and file:), appends from the test
// thread or a second thread, messages checked one by one.
#include "cairn/subscription.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using namespace std::chrono_literals;
using Kind = SubscriptionMessage::Kind;

EventData Ev(std::string type, std::string data = "{}") {
  EventData e;
  e.type = std::move(type);
  e.data = std::move(data);
  return e;
}

// What a test saw: events as (stream, version, position, type), and the other messages by kind.
struct Seen {
  Kind kind;
  std::string stream;
  StreamVersion version = 0;
  Position position;
  std::string type;
  Position checkpoint;
  StreamVersion next_version = 0;
};

class SubscriptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open("memory:");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }

  AppendResult Append(const std::string& stream, std::vector<EventData> events) {
    auto r = store_->Append(stream, ExpectedVersion::Any(), events);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : AppendResult{};
  }

  // The next message within `timeout`, or nullopt (and a failure) when there is none.
  static std::optional<Seen> NextMessage(Subscription& sub, std::chrono::milliseconds timeout = 5s) {
    if (!sub.Next(timeout)) {
      ADD_FAILURE() << "no message; done=" << sub.done() << " status=" << sub.status().ToString();
      return std::nullopt;
    }
    const SubscriptionMessage& m = sub.message();
    Seen s{m.kind, std::string(m.event.stream), m.event.version, m.event.position, std::string(m.event.type),
           m.checkpoint, m.next_version};
    return s;
  }

  static void ExpectEvent(Subscription& sub, const std::string& stream, StreamVersion version,
                          const std::string& type = "") {
    auto m = NextMessage(sub);
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ(m->kind, Kind::kEvent);
    EXPECT_EQ(m->stream, stream);
    EXPECT_EQ(m->version, version);
    if (!type.empty()) {
      EXPECT_EQ(m->type, type);
    }
  }

  static void ExpectKind(Subscription& sub, Kind kind) {
    auto m = NextMessage(sub);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(static_cast<int>(m->kind), static_cast<int>(kind));
  }

  std::unique_ptr<Store> store_;
};

TEST_F(SubscriptionTest, AllDeliversHistoryThenCaughtUpThenLive) {
  Append("a-1", {Ev("A"), Ev("B")});
  Append("b-1", {Ev("C")});
  auto sub = SubscribeToAll(*store_);
  ASSERT_TRUE(sub.ok());
  ExpectEvent(**sub, "a-1", 0, "A");
  ExpectEvent(**sub, "a-1", 1, "B");
  ExpectEvent(**sub, "b-1", 0, "C");
  ExpectKind(**sub, Kind::kCaughtUp);
  EXPECT_TRUE((*sub)->live());
  // Nothing new: a timeout, not the end.
  EXPECT_FALSE((*sub)->Next(20ms));
  EXPECT_FALSE((*sub)->done());
  // Live: an append from another thread wakes the waiting subscriber.
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    Append("a-1", {Ev("D")});
  });
  ExpectEvent(**sub, "a-1", 2, "D");
  writer.join();
}

TEST_F(SubscriptionTest, EmptyStoreIsCaughtUpAtOnce) {
  auto sub = SubscribeToAll(*store_);
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  Append("x-1", {Ev("A")});
  ExpectEvent(**sub, "x-1", 0);
}

TEST_F(SubscriptionTest, NowSkipsHistory) {
  Append("a-1", {Ev("Old")});
  auto sub = SubscribeToAll(*store_, {.from = AllFrom::Now()});
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  Append("a-1", {Ev("New")});
  ExpectEvent(**sub, "a-1", 1, "New");
}

TEST_F(SubscriptionTest, ResumesFromAnyMessageCheckpointWithoutGapOrDuplicate) {
  for (int i = 0; i < 20; ++i) Append(fmt::format("s-{}", i % 3), {Ev(fmt::format("E{}", i))});
  std::vector<Seen> all;
  {
    auto sub = SubscribeToAll(*store_);
    ASSERT_TRUE(sub.ok());
    for (int i = 0; i < 20; ++i) {
      auto m = NextMessage(**sub);
      ASSERT_TRUE(m && m->kind == Kind::kEvent);
      all.push_back(*m);
    }
  }
  for (size_t k = 0; k < all.size(); ++k) {
    // From the checkpoint of message k: exactly the events after k.
    auto sub = SubscribeToAll(*store_, {.from = AllFrom::Checkpoint(all[k].checkpoint)});
    ASSERT_TRUE(sub.ok());
    for (size_t j = k + 1; j < all.size(); ++j) {
      auto m = NextMessage(**sub);
      ASSERT_TRUE(m && m->kind == Kind::kEvent);
      EXPECT_EQ(m->position, all[j].position) << "from checkpoint " << k;
    }
    ExpectKind(**sub, Kind::kCaughtUp);
    // From the event's own position: the same.
    auto after = SubscribeToAll(*store_, {.from = AllFrom::After(all[k].position)});
    ASSERT_TRUE(after.ok());
    for (size_t j = k + 1; j < all.size(); ++j) {
      auto m = NextMessage(**after);
      ASSERT_TRUE(m && m->kind == Kind::kEvent);
      EXPECT_EQ(m->position, all[j].position) << "after event " << k;
    }
    ExpectKind(**after, Kind::kCaughtUp);
  }
}

TEST_F(SubscriptionTest, AfterAPositionThatIsNotAnEventFails) {
  auto r = Append("a-1", {Ev("A"), Ev("B")});
  auto sub = SubscribeToAll(*store_, {.from = AllFrom::After(Position(r.position.value() + 1))});
  ASSERT_TRUE(sub.ok());
  EXPECT_FALSE((*sub)->Next(1s));
  EXPECT_TRUE((*sub)->done());
  EXPECT_TRUE((*sub)->status().IsInvalidArgument()) << (*sub)->status().ToString();
}

TEST_F(SubscriptionTest, FilteredSubscriptionReportsCheckpointsWhenFewEventsMatch) {
  // 1 matching event among 100; a checkpoint every 10 skipped events.
  for (int i = 0; i < 100; ++i) Append(i == 50 ? "order-1" : fmt::format("noise-{}", i), {Ev("X")});
  SubscribeToAllOptions o;
  o.filter.stream_prefixes = {"order-"};
  o.checkpoint_interval_events = 10;
  auto sub = SubscribeToAll(*store_, o);
  ASSERT_TRUE(sub.ok());
  int checkpoints_before = 0, checkpoints_after = 0, events = 0;
  Position last = Position::Start();
  for (;;) {
    auto m = NextMessage(**sub);
    ASSERT_TRUE(m.has_value());
    EXPECT_GE(m->checkpoint, last) << "checkpoints never go back";
    last = m->checkpoint;
    if (m->kind == Kind::kCaughtUp) break;
    if (m->kind == Kind::kEvent) {
      EXPECT_EQ(m->stream, "order-1");
      ++events;
    } else {
      ASSERT_EQ(m->kind, Kind::kCheckpoint);
      (events == 0 ? checkpoints_before : checkpoints_after)++;
    }
  }
  EXPECT_EQ(events, 1);
  EXPECT_EQ(checkpoints_before, 5);  // 50 skipped before the match
  EXPECT_EQ(checkpoints_after, 4);   // 49 after it
  // The last checkpoint resumes past everything: nothing is delivered again.
  auto resumed = SubscribeToAll(*store_, {.from = AllFrom::Checkpoint(last), .filter = o.filter});
  ASSERT_TRUE(resumed.ok());
  ExpectKind(**resumed, Kind::kCaughtUp);
}

TEST_F(SubscriptionTest, FilterByEventTypeAndCategory) {
  Append("order-1", {Ev("Placed"), Ev("Paid")});
  Append("customer-1", {Ev("Placed")});
  SubscribeToAllOptions o;
  o.filter.categories = {"order"};
  o.filter.event_types = {"Placed"};
  auto sub = SubscribeToAll(*store_, o);
  ASSERT_TRUE(sub.ok());
  ExpectEvent(**sub, "order-1", 0, "Placed");
  ExpectKind(**sub, Kind::kCaughtUp);
}

TEST_F(SubscriptionTest, SlowConsumerIsToldItFellBehindAndCatchesUpFromTheLog) {
  SubscribeToAllOptions o;
  o.fell_behind_after_events = 10;
  auto sub = SubscribeToAll(*store_, o);
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  // Within the distance: live stays live.
  for (int i = 0; i < 10; ++i) Append("a-1", {Ev("E")});
  for (int i = 0; i < 10; ++i) ExpectEvent(**sub, "a-1", static_cast<StreamVersion>(i));
  // 25 events while the consumer does not read: it hears so after the 10th, then gets all 25 in order.
  for (int i = 10; i < 35; ++i) Append("a-1", {Ev("E")});
  StreamVersion next = 10;
  int fell_behind = 0;
  for (;;) {
    auto m = NextMessage(**sub);
    ASSERT_TRUE(m.has_value());
    if (m->kind == Kind::kFellBehind) {
      ++fell_behind;
      EXPECT_EQ(next, 20u) << "told after the 10th event past the head it knew";
      EXPECT_FALSE((*sub)->live());
      continue;
    }
    if (m->kind == Kind::kCaughtUp) break;
    ASSERT_EQ(m->kind, Kind::kEvent);
    EXPECT_EQ(m->version, next++);
  }
  EXPECT_EQ(fell_behind, 1);
  EXPECT_EQ(next, 35u);
  EXPECT_TRUE((*sub)->live());
}

TEST_F(SubscriptionTest, FellBehindCheckpointResumesAtTheHeldEvent) {
  SubscribeToAllOptions o;
  o.fell_behind_after_events = 2;
  auto sub = SubscribeToAll(*store_, o);
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  for (int i = 0; i < 5; ++i) Append("a-1", {Ev("E")});
  ExpectEvent(**sub, "a-1", 0);
  ExpectEvent(**sub, "a-1", 1);
  auto m = NextMessage(**sub);
  ASSERT_TRUE(m && m->kind == Kind::kFellBehind);
  auto resumed = SubscribeToAll(*store_, {.from = AllFrom::Checkpoint(m->checkpoint)});
  ASSERT_TRUE(resumed.ok());
  ExpectEvent(**resumed, "a-1", 2);
  ExpectEvent(**sub, "a-1", 2);
}

TEST_F(SubscriptionTest, StreamSubscriptionFromStartVersionAndNow) {
  Append("acc-1", {Ev("A"), Ev("B"), Ev("C")});
  Append("acc-2", {Ev("Other")});
  {
    auto sub = SubscribeToStream(*store_, "acc-1");
    ASSERT_TRUE(sub.ok());
    ExpectEvent(**sub, "acc-1", 0);
    ExpectEvent(**sub, "acc-1", 1);
    ExpectEvent(**sub, "acc-1", 2);
    auto m = NextMessage(**sub);
    ASSERT_TRUE(m && m->kind == Kind::kCaughtUp);
    EXPECT_EQ(m->next_version, 3u);
    Append("acc-2", {Ev("Other")});
    Append("acc-1", {Ev("D")});
    ExpectEvent(**sub, "acc-1", 3, "D");
  }
  {
    auto sub = SubscribeToStream(*store_, "acc-1", {.from = StreamFrom::After(1)});
    ASSERT_TRUE(sub.ok());
    ExpectEvent(**sub, "acc-1", 2);
    ExpectEvent(**sub, "acc-1", 3);
    ExpectKind(**sub, Kind::kCaughtUp);
  }
  {
    auto sub = SubscribeToStream(*store_, "acc-1", {.from = StreamFrom::Now()});
    ASSERT_TRUE(sub.ok());
    ExpectKind(**sub, Kind::kCaughtUp);
    Append("acc-1", {Ev("E")});
    ExpectEvent(**sub, "acc-1", 4, "E");
  }
}

TEST_F(SubscriptionTest, StreamSubscriptionWaitsForAStreamNotYetWritten) {
  auto sub = SubscribeToStream(*store_, "later-1");
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  Append("other-1", {Ev("X")});
  EXPECT_FALSE((*sub)->Next(30ms));
  Append("later-1", {Ev("A")});
  ExpectEvent(**sub, "later-1", 0);
}

TEST_F(SubscriptionTest, StreamSubscriptionContinuesAcrossSoftDeleteAndEndsAtTombstone) {
  Append("acc-1", {Ev("A"), Ev("B")});
  auto sub = SubscribeToStream(*store_, "acc-1");
  ASSERT_TRUE(sub.ok());
  ExpectEvent(**sub, "acc-1", 0);
  ExpectEvent(**sub, "acc-1", 1);
  ExpectKind(**sub, Kind::kCaughtUp);
  ASSERT_TRUE(store_->DeleteStream("acc-1", ExpectedVersion::Any()).ok());
  EXPECT_FALSE((*sub)->Next(30ms));
  EXPECT_FALSE((*sub)->done()) << "a soft-deleted stream can come back";
  // Re-opened: it continues with version 2, and 0 and 1 are not delivered again.
  Append("acc-1", {Ev("C")});
  ExpectEvent(**sub, "acc-1", 2, "C");
  // A subscription made after the delete starts at the re-opened stream's first visible event.
  auto late = SubscribeToStream(*store_, "acc-1");
  ASSERT_TRUE(late.ok());
  ExpectEvent(**late, "acc-1", 2, "C");
  ASSERT_TRUE(store_->TombstoneStream("acc-1", ExpectedVersion::Any()).ok());
  EXPECT_FALSE((*sub)->Next(1s));
  EXPECT_TRUE((*sub)->done());
  EXPECT_TRUE((*sub)->status().IsNotFound());
  EXPECT_EQ((*sub)->status().detail(), ErrorDetail::kStreamDeleted);
  auto gone = SubscribeToStream(*store_, "acc-1");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().detail(), ErrorDetail::kStreamDeleted);
}

TEST_F(SubscriptionTest, BadOptionsNameTheField) {
  auto sub = SubscribeToAll(*store_, {.fell_behind_after_events = 0});
  ASSERT_FALSE(sub.ok());
  EXPECT_TRUE(sub.status().IsInvalidArgument());
  EXPECT_NE(sub.status().message().find("fell_behind_after_events"), std::string::npos);
  auto bad_name = SubscribeToStream(*store_, "");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_TRUE(bad_name.status().IsInvalidArgument());
}

TEST_F(SubscriptionTest, StopEndsABlockedNextFromAnotherThread) {
  auto sub = SubscribeToAll(*store_);
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  std::thread stopper([&] {
    std::this_thread::sleep_for(30ms);
    (*sub)->Stop();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE((*sub)->Next());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE((*sub)->done());
  EXPECT_TRUE((*sub)->status().ok());
  stopper.join();
}

TEST_F(SubscriptionTest, StoreCloseEndsTheSubscription) {
  auto sub = SubscribeToAll(*store_);
  ASSERT_TRUE(sub.ok());
  ExpectKind(**sub, Kind::kCaughtUp);
  ASSERT_TRUE(store_->Close().ok());
  EXPECT_FALSE((*sub)->Next(5s));
  EXPECT_TRUE((*sub)->done());
  EXPECT_EQ((*sub)->status().code(), StatusCode::kFailedPrecondition) << (*sub)->status().ToString();
}

TEST_F(SubscriptionTest, RunnerDeliversInOrderAndStopsOnHandlerError) {
  for (int i = 0; i < 5; ++i) Append("r-1", {Ev("E")});
  std::vector<StreamVersion> got;
  std::atomic<bool> caught_up{false};
  {
    auto sub = SubscribeToAll(*store_);
    ASSERT_TRUE(sub.ok());
    SubscriptionRunner runner(std::move(*sub), [&](const SubscriptionMessage& m) {
      if (m.kind == Kind::kEvent) got.push_back(m.event.version);
      if (m.kind == Kind::kCaughtUp) caught_up = true;
      return Status::Ok();
    });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!caught_up && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(runner.Stop().ok());
  }
  EXPECT_EQ(got, (std::vector<StreamVersion>{0, 1, 2, 3, 4}));

  // A handler that throws at version 2 stops the runner; the error names what it threw.
  got.clear();
  auto sub = SubscribeToAll(*store_);
  ASSERT_TRUE(sub.ok());
  SubscriptionRunner runner(std::move(*sub), [&](const SubscriptionMessage& m) -> Status {
    if (m.kind != Kind::kEvent) return Status::Ok();
    if (m.event.version == 2) throw std::runtime_error("bad event");
    got.push_back(m.event.version);
    return Status::Ok();
  });
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!runner.done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(runner.done());
  Status s = runner.Stop();
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("bad event"), std::string::npos) << s.ToString();
  EXPECT_EQ(got, (std::vector<StreamVersion>{0, 1}));
}

}  // namespace
}  // namespace cairn

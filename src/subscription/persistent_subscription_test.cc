// Proves the persistent-subscription contract (include/cairn/persistent_subscription.h): group
// management and its errors, competing consumers with each strategy, ack / nack (retry, park,
// skip, stop), max retry count, parked replay, message timeout, and at-least-once resumption from
// the checkpoint. How: real stores (memory: and file:), real consumers, every delivery checked.
#include "cairn/persistent_subscription.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using namespace std::chrono_literals;

class PersistentSubscriptionTest : public ::testing::Test {
 protected:
  void SetUp() override { Open("memory:"); }

  void Open(const std::string& url) {
    subs_.reset();
    store_.reset();
    auto store = Store::Open(url);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto subs = PersistentSubscriptions::Open(*store_);
    ASSERT_TRUE(subs.ok()) << subs.status().ToString();
    subs_ = std::move(*subs);
  }

  void ReopenSubs() {
    subs_.reset();
    auto subs = PersistentSubscriptions::Open(*store_);
    ASSERT_TRUE(subs.ok()) << subs.status().ToString();
    subs_ = std::move(*subs);
  }

  void Append(const std::string& stream, int count, const std::string& type = "Happened") {
    for (int i = 0; i < count; ++i) {
      EventData e;
      e.type = type;
      e.data = fmt::format(R"({{"n":{}}})", i);
      ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), {&e, 1}).ok());
    }
  }

  static PersistentSubscriptionSettings FromStart() {
    PersistentSubscriptionSettings s;
    s.start_from = PersistentStart::Start();
    return s;
  }

  std::unique_ptr<PersistentConsumer> Connect(const std::string& source, const std::string& group, int64_t buffer = 10) {
    ConsumerOptions o;
    o.buffer_size = buffer;
    auto c = subs_->Connect(source, group, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // The next event, or a failure.
  static std::optional<PersistentEvent> Take(PersistentConsumer& c, std::chrono::milliseconds timeout = 5s) {
    if (!c.Next(timeout)) {
      ADD_FAILURE() << "no event; done=" << c.done() << " status=" << c.status().ToString();
      return std::nullopt;
    }
    return c.event();
  }

  static void Ack(PersistentConsumer& c, const PersistentEvent& e) { ASSERT_TRUE(c.Ack({&e.event.id, 1}).ok()); }
  static void Nack(PersistentConsumer& c, const PersistentEvent& e, NackAction a) {
    ASSERT_TRUE(c.Nack({&e.event.id, 1}, a, "test").ok());
  }

  uint64_t Parked(const std::string& source, const std::string& group) {
    auto info = subs_->GetInfo(source, group);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? info->parked : 0;
  }

  // Waits until the group reports `count` parked events (parking is asynchronous).
  void WaitParked(const std::string& source, const std::string& group, uint64_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (Parked(source, group) != count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(Parked(source, group), count);
  }

  std::unique_ptr<Store> store_;
  std::unique_ptr<PersistentSubscriptions> subs_;
};

TEST_F(PersistentSubscriptionTest, CreateListGetInfoDelete) {
  ASSERT_TRUE(subs_->Create("orders", "billing", FromStart()).ok());
  PersistentSubscriptionSettings s;
  s.consumer_strategy = ConsumerStrategy::kPinned;
  s.filter.categories = {"order"};
  ASSERT_TRUE(subs_->Create("$all", "audit", s).ok());

  auto all = subs_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  auto one = subs_->List("orders");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].group, "billing");

  auto info = subs_->GetInfo("$all", "audit");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->settings.consumer_strategy, ConsumerStrategy::kPinned);
  EXPECT_EQ(info->settings.filter.categories, std::vector<std::string>{"order"});
  EXPECT_EQ(info->status, "NotReady");

  // The list and the settings live in the store: a new manager sees them.
  ReopenSubs();
  all = subs_->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);

  ASSERT_TRUE(subs_->Delete("orders", "billing").ok());
  all = subs_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].group, "audit");
  // A deleted group can be created again.
  EXPECT_TRUE(subs_->Create("orders", "billing", FromStart()).ok());
}

TEST_F(PersistentSubscriptionTest, DuplicateCreateIsAlreadyExists) {
  ASSERT_TRUE(subs_->Create("orders", "g", {}).ok());
  Status s = subs_->Create("orders", "g", {});
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
}

TEST_F(PersistentSubscriptionTest, UnknownGroupIsNotFound) {
  EXPECT_EQ(subs_->Update("orders", "nope", {}).code(), StatusCode::kNotFound);
  EXPECT_EQ(subs_->Delete("orders", "nope").code(), StatusCode::kNotFound);
  EXPECT_EQ(subs_->GetInfo("orders", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(subs_->Connect("orders", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(subs_->ReplayParked("orders", "nope").code(), StatusCode::kNotFound);
  EXPECT_NE(subs_->Connect("orders", "nope").status().message().find("nope"), std::string::npos);
}

TEST_F(PersistentSubscriptionTest, InvalidSettingsNameTheFieldAndTheLimit) {
  struct Case {
    std::function<void(PersistentSubscriptionSettings&)> set;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[](auto& s) { s.live_buffer_size = 0; }, "live_buffer_size: 0 is outside 1..100000"},
      {[](auto& s) { s.history_buffer_size = -1; }, "history_buffer_size: -1 is outside 1..100000"},
      {[](auto& s) { s.read_batch_size = 600; }, "read_batch_size: 600 is outside 1..500"},
      {[](auto& s) { s.message_timeout_ms = -5; }, "message_timeout_ms: -5 is outside 0..86400000"},
      {[](auto& s) { s.max_retry_count = -1; }, "max_retry_count: -1 is outside 0..1000000"},
      {[](auto& s) { s.min_checkpoint_count = 20, s.max_checkpoint_count = 10; }, "min_checkpoint_count: 20 is outside 0..10"},
      {[](auto& s) { s.max_checkpoint_count = 0; }, "max_checkpoint_count: 0 is outside 1..10000000"},
      {[](auto& s) { s.max_subscriber_count = 20000; }, "max_subscriber_count: 20000 is outside 0..10000"},
      {[](auto& s) { s.filter.event_types = {"X"}; }, "filter: only a group on $all can have a filter"},
  };
  for (const Case& c : cases) {
    PersistentSubscriptionSettings s;
    c.set(s);
    Status st = subs_->Create("orders", "g", s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.want;
    EXPECT_EQ(st.message(), c.want);
  }
  ASSERT_TRUE(subs_->Create("orders", "g", {}).ok());
  PersistentSubscriptionSettings bad;
  bad.live_buffer_size = 0;
  EXPECT_EQ(subs_->Update("orders", "g", bad).code(), StatusCode::kInvalidArgument);
}

TEST_F(PersistentSubscriptionTest, InvalidNamesAndBufferSize) {
  EXPECT_EQ(subs_->Create("orders", "", {}).message(), "group: empty");
  EXPECT_EQ(subs_->Create("orders", std::string(201, 'g'), {}).message(), "group: 201 bytes, the limit is 200");
  EXPECT_EQ(subs_->Create("", "g", {}).code(), StatusCode::kInvalidArgument);
  Status long_stream = subs_->Create(std::string(990, 's'), "g", {});
  EXPECT_EQ(long_stream.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(long_stream.message().find("the limit is 1000"), std::string::npos) << long_stream.message();
  ASSERT_TRUE(subs_->Create("orders", "g", {}).ok());
  ConsumerOptions o;
  o.buffer_size = 0;
  EXPECT_EQ(subs_->Connect("orders", "g", o).status().message(), "buffer_size: 0 is outside 1..10000");
}

TEST_F(PersistentSubscriptionTest, StartFromStartDeliversHistoryAndThenLiveEvents) {
  Append("orders", 3);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto c = Connect("orders", "g");
  for (StreamVersion v = 0; v < 3; ++v) {
    auto e = Take(*c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->event.version, v);
    EXPECT_EQ(e->retry_count, 0u);
    Ack(*c, *e);
  }
  Append("orders", 1);
  auto e = Take(*c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event.version, 3u);
}

TEST_F(PersistentSubscriptionTest, StartFromEndDeliversOnlyEventsAfterCreate) {
  Append("orders", 3);
  ASSERT_TRUE(subs_->Create("orders", "g", {}).ok());  // default: end
  Append("orders", 1);
  auto c = Connect("orders", "g");
  auto e = Take(*c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event.version, 3u);
  PersistentSubscriptionSettings at;
  at.start_from = PersistentStart::At(1);
  ASSERT_TRUE(subs_->Create("orders", "from1", at).ok());
  auto c1 = Connect("orders", "from1");
  e = Take(*c1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event.version, 1u);
}

TEST_F(PersistentSubscriptionTest, RoundRobinSharesEventsBetweenCompetingConsumers) {
  Append("orders", 20);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto a = Connect("orders", "g", 5);
  auto b = Connect("orders", "g", 5);
  std::set<StreamVersion> seen;
  int from_a = 0;
  int from_b = 0;
  while (seen.size() < 20) {
    for (auto* c : {a.get(), b.get()}) {
      if (!c->Next(50ms)) continue;
      PersistentEvent e = c->event();
      EXPECT_TRUE(seen.insert(e.event.version).second) << "delivered twice: " << e.event.version;
      (c == a.get() ? from_a : from_b)++;
      Ack(*c, e);
    }
  }
  EXPECT_GT(from_a, 0);
  EXPECT_GT(from_b, 0);
  EXPECT_FALSE(a->Next(100ms));
  EXPECT_FALSE(b->Next(10ms));
}

TEST_F(PersistentSubscriptionTest, DispatchToSingleFillsTheFirstConsumerFirst) {
  Append("orders", 3);
  PersistentSubscriptionSettings s = FromStart();
  s.consumer_strategy = ConsumerStrategy::kDispatchToSingle;
  ASSERT_TRUE(subs_->Create("orders", "g", s).ok());
  auto a = Connect("orders", "g", 10);
  auto b = Connect("orders", "g", 10);
  for (int i = 0; i < 3; ++i) {
    auto e = Take(*a);
    ASSERT_TRUE(e);
  }
  EXPECT_FALSE(b->Next(200ms));
}

TEST_F(PersistentSubscriptionTest, PinnedSendsOneStreamToOneConsumer) {
  PersistentSubscriptionSettings s = FromStart();
  s.consumer_strategy = ConsumerStrategy::kPinned;
  ASSERT_TRUE(subs_->Create("$all", "g", s).ok());
  auto a = Connect("$all", "g", 100);
  auto b = Connect("$all", "g", 100);
  for (int i = 0; i < 8; ++i) Append(fmt::format("s-{}", i), 5);
  std::map<std::string, std::set<PersistentConsumer*>> owners;
  std::map<std::string, std::vector<StreamVersion>> order;
  int got = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got < 40 && std::chrono::steady_clock::now() < deadline) {
    for (auto* c : {a.get(), b.get()}) {
      if (!c->Next(20ms)) continue;
      PersistentEvent e = c->event();
      owners[e.event.stream].insert(c);
      order[e.event.stream].push_back(e.event.version);
      ++got;
      Ack(*c, e);
    }
  }
  ASSERT_EQ(got, 40);
  std::set<PersistentConsumer*> used;
  for (const auto& [stream, who] : owners) {
    EXPECT_EQ(who.size(), 1u) << stream << " went to two consumers";
    used.insert(*who.begin());
    EXPECT_EQ(order[stream], (std::vector<StreamVersion>{0, 1, 2, 3, 4})) << stream;
  }
  EXPECT_EQ(used.size(), 2u) << "8 streams all hashed to one consumer";
}

TEST_F(PersistentSubscriptionTest, NackRetryRedeliversThenParksAfterMaxRetryCount) {
  Append("orders", 1);
  PersistentSubscriptionSettings s = FromStart();
  s.max_retry_count = 2;
  ASSERT_TRUE(subs_->Create("orders", "g", s).ok());
  auto c = Connect("orders", "g");
  for (uint32_t retry = 0; retry <= 2; ++retry) {
    auto e = Take(*c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->event.version, 0u);
    EXPECT_EQ(e->retry_count, retry);
    Nack(*c, *e, NackAction::kRetry);
  }
  // The third retry is over the limit: parked, not delivered again.
  EXPECT_FALSE(c->Next(200ms));
  WaitParked("orders", "g", 1);
  auto parked = store_->ReadStream(PersistentParkedStream("orders", "g"));
  ASSERT_TRUE(parked.ok());
  ASSERT_TRUE(parked->Next());
  EXPECT_EQ(parked->event().type, "$>");
  EXPECT_EQ(parked->event().data, "0@orders");
  EXPECT_NE(parked->event().metadata.find("max_retry_count 2 reached"), std::string::npos);
}

TEST_F(PersistentSubscriptionTest, ParkThenReplayParkedDeliversAgain) {
  Append("orders", 3);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto c = Connect("orders", "g");
  auto e0 = Take(*c);
  ASSERT_TRUE(e0);
  Nack(*c, *e0, NackAction::kPark);
  for (int i = 0; i < 2; ++i) {
    auto e = Take(*c);
    ASSERT_TRUE(e);
    Ack(*c, *e);
  }
  WaitParked("orders", "g", 1);
  ASSERT_TRUE(subs_->ReplayParked("orders", "g").ok());
  auto again = Take(*c);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->event.id, e0->event.id);
  EXPECT_EQ(again->event.version, 0u);
  Ack(*c, *again);
  // Done again: it leaves the parked stream.
  WaitParked("orders", "g", 0);
  EXPECT_FALSE(c->Next(100ms));
}

TEST_F(PersistentSubscriptionTest, ReplayParkedStopAtReplaysOnlyTheOldest) {
  Append("orders", 3);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto c = Connect("orders", "g");
  for (int i = 0; i < 3; ++i) {
    auto e = Take(*c);
    ASSERT_TRUE(e);
    Nack(*c, *e, NackAction::kPark);
  }
  WaitParked("orders", "g", 3);
  ASSERT_TRUE(subs_->ReplayParked("orders", "g", 2).ok());
  for (StreamVersion v = 0; v < 2; ++v) {
    auto e = Take(*c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->event.version, v);
    Ack(*c, *e);
  }
  EXPECT_FALSE(c->Next(100ms));
  WaitParked("orders", "g", 1);
}

TEST_F(PersistentSubscriptionTest, NackSkipIsDoneWithoutRedelivery) {
  Append("orders", 2);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto c = Connect("orders", "g");
  auto e = Take(*c);
  ASSERT_TRUE(e);
  Nack(*c, *e, NackAction::kSkip);
  auto next = Take(*c);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->event.version, 1u);
  Ack(*c, *next);
  EXPECT_FALSE(c->Next(100ms));
  EXPECT_EQ(Parked("orders", "g"), 0u);
}

TEST_F(PersistentSubscriptionTest, NackStopEndsTheConsumerAndTheEventGoesToAnother) {
  Append("orders", 1);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto a = Connect("orders", "g");
  auto e = Take(*a);
  ASSERT_TRUE(e);
  auto b = Connect("orders", "g");
  Nack(*a, *e, NackAction::kStop);
  EXPECT_FALSE(a->Next(10ms));
  EXPECT_TRUE(a->done());
  auto again = Take(*b);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->event.id, e->event.id);
  EXPECT_EQ(again->retry_count, 0u);
}

TEST_F(PersistentSubscriptionTest, MessageTimeoutRedeliversToAnotherConsumer) {
  Append("orders", 1);
  PersistentSubscriptionSettings s = FromStart();
  s.message_timeout_ms = 200;
  ASSERT_TRUE(subs_->Create("orders", "g", s).ok());
  auto a = Connect("orders", "g");
  auto e = Take(*a);
  ASSERT_TRUE(e);
  auto b = Connect("orders", "g");
  // a never answers: after the timeout the event goes out again (b or a, whoever has room next
  // in turn), with its retry count up.
  std::optional<PersistentEvent> again;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!again && std::chrono::steady_clock::now() < deadline) {
    for (auto* c : {b.get(), a.get()}) {
      if (c->Next(20ms)) again = c->event();
    }
  }
  ASSERT_TRUE(again);
  EXPECT_EQ(again->event.id, e->event.id);
  EXPECT_EQ(again->retry_count, 1u);
  // A late ack from a for the old delivery is ignored (no error).
  EXPECT_TRUE(a->Ack({&e->event.id, 1}).ok());
}

TEST_F(PersistentSubscriptionTest, ConsumerLeavingGivesItsEventsBack) {
  Append("orders", 1);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  auto a = Connect("orders", "g");
  auto e = Take(*a);
  ASSERT_TRUE(e);
  a.reset();
  auto b = Connect("orders", "g");
  auto again = Take(*b);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->event.id, e->event.id);
  EXPECT_EQ(again->retry_count, 1u);
}

TEST_F(PersistentSubscriptionTest, CheckpointStopsAtTheOldestUnackedEvent) {
  Append("orders", 5);
  PersistentSubscriptionSettings s = FromStart();
  s.min_checkpoint_count = 1;
  s.max_checkpoint_count = 1;
  ASSERT_TRUE(subs_->Create("orders", "g", s).ok());
  {
    auto c = Connect("orders", "g");
    std::vector<PersistentEvent> got;
    for (int i = 0; i < 5; ++i) got.push_back(*Take(*c));
    // Everything but version 1 is acknowledged.
    for (const auto& e : got) {
      if (e.event.version != 1) Ack(*c, e);
    }
    std::this_thread::sleep_for(200ms);  // the pump writes its checkpoint
  }
  // A "crash": the live state is dropped (a new manager on the same store) without answers.
  ReopenSubs();
  auto info = subs_->GetInfo("orders", "g");
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->checkpoint);
  EXPECT_EQ(*info->checkpoint, 1u);  // resume at version 1: nothing skipped
  auto c = Connect("orders", "g");
  std::vector<StreamVersion> again;
  while (c->Next(200ms)) {
    again.push_back(c->event().event.version);
    Ack(*c, c->event());
  }
  // At least once: 1 again, and the acked ones after it.
  EXPECT_EQ(again, (std::vector<StreamVersion>{1, 2, 3, 4}));
}

TEST_F(PersistentSubscriptionTest, AckedEventsAreNotRedeliveredAfterACleanClose) {
  Append("orders", 5);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  {
    auto c = Connect("orders", "g");
    for (int i = 0; i < 5; ++i) Ack(*c, *Take(*c));
  }
  ASSERT_TRUE(subs_->Close().ok());
  EXPECT_EQ(subs_->List().status().code(), StatusCode::kFailedPrecondition);
  ReopenSubs();
  auto c = Connect("orders", "g");
  EXPECT_FALSE(c->Next(200ms));
  Append("orders", 1);
  auto e = Take(*c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event.version, 5u);
}

TEST_F(PersistentSubscriptionTest, MaxSubscriberCountRefusesTheNextConsumer) {
  PersistentSubscriptionSettings s;
  s.max_subscriber_count = 1;
  ASSERT_TRUE(subs_->Create("orders", "g", s).ok());
  auto a = Connect("orders", "g");
  auto b = subs_->Connect("orders", "g");
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(b.status().message().find("max_subscriber_count"), std::string::npos);
}

TEST_F(PersistentSubscriptionTest, UpdateAndDeleteEndConnectedConsumers) {
  ASSERT_TRUE(subs_->Create("orders", "u", {}).ok());
  ASSERT_TRUE(subs_->Create("orders", "d", {}).ok());
  auto u = Connect("orders", "u");
  auto d = Connect("orders", "d");
  PersistentSubscriptionSettings s;
  s.max_retry_count = 3;
  ASSERT_TRUE(subs_->Update("orders", "u", s).ok());
  EXPECT_FALSE(u->Next(10ms));
  EXPECT_EQ(u->status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(subs_->GetInfo("orders", "u")->settings.max_retry_count, 3);
  ASSERT_TRUE(subs_->Delete("orders", "d").ok());
  EXPECT_FALSE(d->Next(10ms));
  EXPECT_EQ(d->status().code(), StatusCode::kNotFound);
}

TEST_F(PersistentSubscriptionTest, AllGroupWithFilterDeliversOnlyMatchingEvents) {
  PersistentSubscriptionSettings s = FromStart();
  s.filter.categories = {"order"};
  ASSERT_TRUE(subs_->Create("$all", "g", s).ok());
  Append("order-1", 2);
  Append("quote-1", 3);
  Append("order-2", 1);
  auto c = Connect("$all", "g");
  std::vector<std::string> got;
  while (c->Next(300ms)) {
    got.push_back(fmt::format("{}@{}", c->event().event.version, c->event().event.stream));
    Ack(*c, c->event());
  }
  EXPECT_EQ(got, (std::vector<std::string>{"0@order-1", "1@order-1", "0@order-2"}));
}

TEST_F(PersistentSubscriptionTest, AllGroupNeverDeliversGroupSystemStreams) {
  PersistentSubscriptionSettings s = FromStart();
  s.min_checkpoint_count = 1;
  s.max_checkpoint_count = 1;
  ASSERT_TRUE(subs_->Create("$all", "g", s).ok());
  Append("a", 1);
  auto c = Connect("$all", "g");
  auto e = Take(*c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event.stream, "a");
  Ack(*c, *e);
  // Its checkpoint writes are events in $all too; they must not come back as deliveries.
  EXPECT_FALSE(c->Next(300ms)) << c->event().event.stream;
}

TEST_F(PersistentSubscriptionTest, GroupsSurviveAFileStoreReopen) {
  testing::TempDir dir;
  Open("file:" + dir.Sub("data") + "?sync=none");
  Append("orders", 2);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  {
    auto c = Connect("orders", "g");
    Ack(*c, *Take(*c));
  }
  Open("file:" + dir.Sub("data") + "?sync=none");
  auto list = subs_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  auto c = Connect("orders", "g");
  auto e = Take(*c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event.version, 1u);
}

TEST_F(PersistentSubscriptionTest, GetInfoReportsConnectionsAndCounts) {
  Append("orders", 3);
  ASSERT_TRUE(subs_->Create("orders", "g", FromStart()).ok());
  ConsumerOptions o;
  o.buffer_size = 2;
  o.name = "worker-1";
  auto c = subs_->Connect("orders", "g", o);
  ASSERT_TRUE(c.ok());
  auto e = Take(**c);
  ASSERT_TRUE(e);
  std::this_thread::sleep_for(100ms);
  auto info = subs_->GetInfo("orders", "g");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->connections.size(), 1u);
  EXPECT_EQ(info->connections[0].name, "worker-1");
  EXPECT_EQ(info->connections[0].in_flight, 2u);
  EXPECT_EQ(info->connections[0].available_slots, 0u);
  EXPECT_EQ(info->in_flight, 2u);
  EXPECT_EQ(info->buffered, 1u);
  EXPECT_NE(info->status, "NotReady");
}

}  // namespace
}  // namespace cairn

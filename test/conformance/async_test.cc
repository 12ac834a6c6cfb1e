// Proves AppendAsync (one callback per call, in call order, errors too, events copied at the call
// or, through the vector overload, taken)
// and WaitForAppend (wakes on an append or on Close, else times out), with threads and a latch.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Collects AppendAsync results; Wait() returns once `expected` callbacks ran (or 30 s passed).
class Callbacks {
 public:
  explicit Callbacks(size_t expected) : expected_(expected), counts_(expected, 0), results_(expected) {}

  Store::AppendCallback For(size_t index) {
    return [this, index](Result<AppendResult> r) {
      std::lock_guard lock(mu_);
      ++counts_[index];
      order_.push_back(index);
      results_[index].emplace(std::move(r));
      cv_.notify_all();
    };
  }
  bool Wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return order_.size() >= expected_; });
  }
  std::vector<size_t> order() {
    std::lock_guard lock(mu_);
    return order_;
  }
  std::vector<int> counts() {
    std::lock_guard lock(mu_);
    return counts_;
  }
  Result<AppendResult> result(size_t index) {
    std::lock_guard lock(mu_);
    return *results_[index];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t expected_;
  std::vector<int> counts_;
  std::vector<size_t> order_;
  std::vector<std::optional<Result<AppendResult>>> results_;
};

TEST_P(ConformanceTest, AppendAsyncCallsBackOncePerCallInCallOrder) {
  constexpr size_t kCalls = 60;
  Callbacks callbacks(kCalls);
  std::vector<std::vector<EventData>> sent;
  for (size_t i = 0; i < kCalls; ++i) {
    sent.push_back(NewEvents(1 + i % 3));
    // Two streams, alternating, batches of 1 to 3 events.
    if (i % 2 == 0) {
      store().AppendAsync("async-a", ExpectedVersion::Any(), sent.back(), callbacks.For(i));
    } else {
      store().AppendAsync("async-b", ExpectedVersion::Any(), sent.back(), callbacks.For(i));
    }
  }
  ASSERT_TRUE(callbacks.Wait());
  std::vector<size_t> expected_order(kCalls);
  for (size_t i = 0; i < kCalls; ++i) expected_order[i] = i;
  EXPECT_EQ(callbacks.order(), expected_order);

  // In call order means versions and positions in call order too.
  StreamVersion next_a = 0, next_b = 0;
  Position last = Position::Start();
  for (size_t i = 0; i < kCalls; ++i) {
    Result<AppendResult> r = callbacks.result(i);
    ASSERT_OK(r);
    StreamVersion& next = i % 2 == 0 ? next_a : next_b;
    EXPECT_EQ(r->first_version, next) << "call " << i;
    next += sent[i].size();
    EXPECT_EQ(r->next_version, next) << "call " << i;
    if (i > 0) {
      EXPECT_GT(r->position, last) << "call " << i;
    }
    last = r->position;
  }
  ASSERT_OK_AND_ASSIGN(auto a, ReadStreamEvents(store(), "async-a"));
  EXPECT_EQ(a.size(), next_a);

  // Exactly once: nothing more arrives after the store closed.
  ASSERT_OK(store().Close());
  for (int c : callbacks.counts()) EXPECT_EQ(c, 1);
}

TEST_P(ConformanceTest, AppendAsyncPipelinesExactVersionsFromOneThread) {
  constexpr size_t kCalls = 40;
  Callbacks callbacks(kCalls);
  for (size_t i = 0; i < kCalls; ++i) {
    ExpectedVersion expected = i == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(i - 1);
    store().AppendAsync("chain-1", expected, NewEvents(1), callbacks.For(i));
  }
  ASSERT_TRUE(callbacks.Wait());
  for (size_t i = 0; i < kCalls; ++i) {
    Result<AppendResult> r = callbacks.result(i);
    ASSERT_OK(r);
    EXPECT_EQ(r->first_version, i);
  }
}

TEST_P(ConformanceTest, AppendAsyncCallsBackWithErrors) {
  ASSERT_OK(store().Append("async-a", ExpectedVersion::NoStream(), NewEvents(1)));
  Position head = store().HeadPosition();
  Callbacks callbacks(4);
  store().AppendAsync("", ExpectedVersion::Any(), NewEvents(1), callbacks.For(0));
  store().AppendAsync("async-a", ExpectedVersion::Any(), std::vector<EventData>{}, callbacks.For(1));
  store().AppendAsync("async-a", ExpectedVersion::NoStream(), NewEvents(1), callbacks.For(2));
  store().AppendAsync("async-a", ExpectedVersion::Exact(0), NewEvents(1), callbacks.For(3));
  ASSERT_TRUE(callbacks.Wait());
  EXPECT_TRUE(IsError(callbacks.result(0), kInvalidArgument));
  EXPECT_TRUE(IsError(callbacks.result(1), kInvalidArgument));
  EXPECT_TRUE(IsWrongExpectedVersion(callbacks.result(2), 0));
  ASSERT_OK(callbacks.result(3));
  EXPECT_EQ(callbacks.result(3)->first_version, 1u);
  EXPECT_GT(store().HeadPosition(), head);
  for (int c : callbacks.counts()) EXPECT_EQ(c, 1);
}

TEST_P(ConformanceTest, AppendAsyncCopiesTheEventsBeforeReturning) {
  Callbacks callbacks(1);
  std::vector<EventData> events = {NewEvent("Original", R"({"v":"original"})", "meta")};
  const EventData sent = events[0];
  {
    std::string stream = "async-copy-1";
    store().AppendAsync(stream, ExpectedVersion::NoStream(), events, callbacks.For(0));
    stream.assign(stream.size(), 'z');
  }
  events[0].type = "Changed";
  events[0].data.assign(events[0].data.size(), 'x');
  events[0].metadata = "changed";
  events.clear();
  events.shrink_to_fit();
  ASSERT_TRUE(callbacks.Wait());
  ASSERT_OK(callbacks.result(0));
  ASSERT_OK_AND_ASSIGN(auto read, ReadStreamEvents(store(), "async-copy-1"));
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].id, sent.id);
  EXPECT_EQ(read[0].type, sent.type);
  EXPECT_EQ(read[0].data, sent.data);
  EXPECT_EQ(read[0].metadata, sent.metadata);
}

// The vector overload takes the events (the server hands over what it read from the wire): what
// is stored is what was in the vector, 30 KB data included, and a bad append given that way is
// refused as through the span overload.
TEST_P(ConformanceTest, AppendAsyncTakingTheVectorStoresItsEvents) {
  Callbacks callbacks(2);
  // 30 KB: heap-held data, still under the limit of the small-segment store.
  std::vector<EventData> events = {NewEvent("Taken", R"({"v":"taken"})", "meta"),
                                   NewEvent("Large", R"({"pad":")" + std::string(30000, 'l') + R"("})", "")};
  const std::vector<EventData> sent = events;
  store().AppendAsync("async-take-1", ExpectedVersion::NoStream(), std::move(events), callbacks.For(0));
  std::vector<EventData> bad = {NewEvent("", "{}", "")};  // an empty type
  store().AppendAsync("async-take-1", ExpectedVersion::Any(), std::move(bad), callbacks.For(1));
  ASSERT_TRUE(callbacks.Wait());
  ASSERT_OK(callbacks.result(0));
  EXPECT_EQ(callbacks.result(0)->next_version, 2u);
  EXPECT_EQ(callbacks.result(1).status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(auto read, ReadStreamEvents(store(), "async-take-1"));
  ASSERT_EQ(read.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(read[i].id, sent[i].id);
    EXPECT_EQ(read[i].type, sent[i].type);
    EXPECT_EQ(read[i].data, sent[i].data);
    EXPECT_EQ(read[i].metadata, sent[i].metadata);
  }
}

TEST_P(ConformanceTest, WaitForAppendWakesWhenAnotherThreadAppends) {
  ASSERT_OK(store().Append("wait-1", ExpectedVersion::Any(), NewEvents(1)));
  const Position head = store().HeadPosition();
  std::thread appender([&] {
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_OK(store().Append("wait-1", ExpectedVersion::Any(), NewEvents(1)));
  });
  auto started = Clock::now();
  Position woke = store().WaitForAppend(head, milliseconds(20'000));
  auto waited = Clock::now() - started;
  appender.join();
  EXPECT_GT(woke, head);
  EXPECT_EQ(woke, store().HeadPosition());
  // Woken by the append, not by the timeout.
  EXPECT_LT(waited, milliseconds(10'000));
}

TEST_P(ConformanceTest, WaitForAppendTimesOutWithTheOldHead) {
  ASSERT_OK(store().Append("wait-1", ExpectedVersion::Any(), NewEvents(1)));
  const Position head = store().HeadPosition();
  auto started = Clock::now();
  Position woke = store().WaitForAppend(head, milliseconds(150));
  auto waited = Clock::now() - started;
  EXPECT_EQ(woke, head);
  EXPECT_GE(waited, milliseconds(140));
}

TEST_P(ConformanceTest, WaitForAppendReturnsAtOnceWhenTheHeadIsAlreadyPast) {
  const Position before = store().HeadPosition();
  ASSERT_OK(store().Append("wait-1", ExpectedVersion::Any(), NewEvents(1)));
  auto started = Clock::now();
  Position woke = store().WaitForAppend(before, milliseconds(20'000));
  EXPECT_EQ(woke, store().HeadPosition());
  EXPECT_GT(woke, before);
  EXPECT_LT(Clock::now() - started, milliseconds(10'000));
}

TEST_P(ConformanceTest, WaitForAppendReturnsWhenTheStoreCloses) {
  const Position head = store().HeadPosition();
  std::atomic<bool> returned{false};
  Position woke;
  std::thread waiter([&] {
    woke = store().WaitForAppend(head, milliseconds(20'000));
    returned.store(true);
  });
  std::this_thread::sleep_for(milliseconds(50));
  auto started = Clock::now();
  EXPECT_OK(store().Close());
  waiter.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(woke, head);
  EXPECT_LT(Clock::now() - started, milliseconds(10'000));
}

}  // namespace
}  // namespace cairn::conformance

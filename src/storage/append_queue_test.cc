// Proves what both stores rely on from AppendQueue: results reach the right caller (blocking and
// callback alike), callers block while the queue is over its byte budget and go on once the
// writer takes, a group respects its request and byte limits, and closing answers every caller
// (queued or still waiting for room) instead of leaving one blocked.
// How: a test thread plays the writer; timing is only used to let a blocked caller block.
#include "storage/append_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace cairn::storage {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<AppendRequest> Req(std::string stream, uint64_t bytes) {
  auto r = std::make_unique<AppendRequest>();
  r->stream = std::move(stream);
  r->bytes = bytes;
  return r;
}

TEST(AppendQueueTest, EachCallerGetsItsOwnResult) {
  AppendQueue q(1 << 20);
  std::vector<std::thread> callers;
  std::vector<uint64_t> got(4, 0);
  for (int i = 0; i < 4; ++i) {
    callers.emplace_back([&, i] {
      auto r = q.Submit(Req("s" + std::to_string(i), 10));
      ASSERT_TRUE(r.ok());
      got[i] = r->first_version;
    });
  }
  std::atomic<uint64_t> async_version{0};
  auto a = Req("async", 10);
  a->done = [&](Result<AppendResult> r) { async_version = r.ok() ? r->first_version : 999; };
  q.Enqueue(std::move(a));
  size_t answered = 0;
  while (answered < 5) {
    std::vector<std::unique_ptr<AppendRequest>> group;
    ASSERT_TRUE(q.Take(&group, {}));
    std::vector<Result<AppendResult>> results;
    for (auto& r : group) {
      // The result names the request: version = the stream's number (100 for the async one).
      const uint64_t v = r->stream == "async" ? 100 : std::stoull(r->stream.substr(1));
      results.push_back(AppendResult{v, v + 1, Position(1)});
    }
    answered += group.size();
    q.Complete(group, results);
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(got, (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(async_version.load(), 100u);
}

TEST(AppendQueueTest, GroupsRespectTheRequestAndByteLimitsButAlwaysTakeOne) {
  AppendQueue q(1 << 20);
  for (int i = 0; i < 5; ++i) q.Enqueue(Req("s", 100));
  q.Enqueue(Req("big", 10'000));
  std::vector<std::unique_ptr<AppendRequest>> group;
  AppendQueue::TakeLimits limits;
  limits.max_requests = 2;
  ASSERT_TRUE(q.Take(&group, limits));
  EXPECT_EQ(group.size(), 2u);
  group.clear();
  limits.max_requests = SIZE_MAX;
  limits.max_bytes = 250;
  ASSERT_TRUE(q.Take(&group, limits));
  EXPECT_EQ(group.size(), 2u);  // 100 + 100; a third would pass 250
  group.clear();
  ASSERT_TRUE(q.Take(&group, limits));
  ASSERT_EQ(group.size(), 1u);  // the last 100: the big one does not fit beside it
  group.clear();
  ASSERT_TRUE(q.Take(&group, limits));
  ASSERT_EQ(group.size(), 1u);  // the big one alone, over the limit
  EXPECT_EQ(group[0]->stream, "big");
  // Nothing left: a bounded wait returns an empty group, and true (not stopping).
  group.clear();
  limits.wait = 1ms;
  EXPECT_TRUE(q.Take(&group, limits));
  EXPECT_TRUE(group.empty());
}

TEST(AppendQueueTest, CallersBlockOverTheBudgetUntilTheWriterTakes) {
  AppendQueue q(1000);
  q.Enqueue(Req("first", 1000));  // the budget is used up
  std::atomic<bool> queued{false};
  std::thread caller([&] {
    q.Enqueue(Req("second", 10));
    queued = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(queued.load()) << "a caller over the budget must wait";
  std::vector<std::unique_ptr<AppendRequest>> group;
  AppendQueue::TakeLimits one;
  one.max_requests = 1;
  ASSERT_TRUE(q.Take(&group, one));
  caller.join();
  EXPECT_TRUE(queued.load());
  group.clear();
  ASSERT_TRUE(q.Take(&group, one));
  ASSERT_EQ(group.size(), 1u);
  EXPECT_EQ(group[0]->stream, "second");
}

TEST(AppendQueueTest, GatheringWaitsForTheTargetOrTheTimeout) {
  AppendQueue q(1 << 20);
  q.Enqueue(Req("a", 1));
  std::thread late([&] {
    std::this_thread::sleep_for(20ms);
    q.Enqueue(Req("b", 1));
  });
  std::vector<std::unique_ptr<AppendRequest>> group;
  AppendQueue::TakeLimits limits;
  limits.gather_target = 2;
  limits.gather_wait = 5s;  // ends as soon as the second request arrives
  ASSERT_TRUE(q.Take(&group, limits));
  late.join();
  EXPECT_EQ(group.size(), 2u);
  // With nobody coming, the wait ends at its timeout with what there is.
  group.clear();
  q.Enqueue(Req("c", 1));
  limits.gather_wait = 10ms;
  ASSERT_TRUE(q.Take(&group, limits));
  EXPECT_EQ(group.size(), 1u);
}

TEST(AppendQueueTest, StopAnswersEveryCallerAndEndsTheWriterOnceEmpty) {
  AppendQueue q(100);
  q.Enqueue(Req("queued", 100));  // over the budget from here on
  std::optional<Result<AppendResult>> waiting_for_room;
  std::thread blocked([&] { waiting_for_room = q.Submit(Req("blocked", 10)); });
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(q.Stop());
  blocked.join();
  ASSERT_TRUE(waiting_for_room.has_value());
  EXPECT_EQ(waiting_for_room->status().code(), StatusCode::kFailedPrecondition);
  // The writer still gets what was queued before the stop, then false.
  std::vector<std::unique_ptr<AppendRequest>> group;
  ASSERT_TRUE(q.Take(&group, {}));
  ASSERT_EQ(group.size(), 1u);
  EXPECT_EQ(group[0]->stream, "queued");
  group.clear();
  EXPECT_FALSE(q.Take(&group, {}));
  q.MarkClosed();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.Stop());
  // After closing, a callback request is answered at once on the caller's thread.
  Status seen;
  auto late = Req("late", 1);
  late->done = [&](Result<AppendResult> r) { seen = r.status(); };
  q.Enqueue(std::move(late));
  EXPECT_EQ(seen.code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace cairn::storage

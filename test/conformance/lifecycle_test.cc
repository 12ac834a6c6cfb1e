// Proves the store's life cycle: Close() stops appends, a reopened store holds everything and
// carries on (versions, idempotency, metadata, deletes), and Store::Open parses its URLs; by closing and reopening.
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "conformance/conformance.h"
#include "util/test_util.h"

namespace cairn::conformance {
namespace {

TEST_P(ConformanceTest, AppendAfterCloseIsFailedPrecondition) {
  ASSERT_OK(store().Append("life-1", ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK(store().Close());
  EXPECT_TRUE(IsError(store().Append("life-1", ExpectedVersion::Any(), NewEvents(1)), kFailedPrecondition));
  EXPECT_TRUE(IsError(store().Append("life-2", ExpectedVersion::NoStream(), NewEvents(1)), kFailedPrecondition));

  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> async_status;
  store().AppendAsync("life-1", ExpectedVersion::Any(), NewEvents(1), [&](Result<AppendResult> r) {
    std::lock_guard lock(mu);
    async_status = r.status();
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return async_status.has_value(); }));
  EXPECT_TRUE(IsError(*async_status, kFailedPrecondition));
}

TEST_P(ConformanceTest, CloseCompletesAppendsAlreadyAccepted) {
  constexpr int kCalls = 30;
  std::mutex mu;
  int ok = 0, failed = 0;
  for (int i = 0; i < kCalls; ++i) {
    store().AppendAsync("life-1", ExpectedVersion::Any(), NewEvents(2), [&](Result<AppendResult> r) {
      std::lock_guard lock(mu);
      ++(r.ok() ? ok : failed);
    });
  }
  ASSERT_OK(store().Close());
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(ok, kCalls);
    EXPECT_EQ(failed, 0);
  }
  if (!backend().persistent()) return;
  ASSERT_TRUE(CloseAndReopen());
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "life-1"));
  EXPECT_EQ(Versions(events), Range(0, 2 * kCalls));
}

TEST_P(ConformanceTest, ReopenedStoreHasEverythingAndCarriesOn) {
  CONF_REQUIRE_PERSISTENT();
  std::vector<EventData> keep1 = NewEvents(3);
  std::vector<EventData> keep2 = NewEvents(2);
  ASSERT_OK(store().Append("keep-1", ExpectedVersion::NoStream(), keep1));
  ASSERT_OK_AND_ASSIGN(auto keep2_result, store().Append("keep-2", ExpectedVersion::NoStream(), keep2));
  StreamMetadata md;
  md.truncate_before = 1;
  md.custom_json = R"({"owner":"bob"})";
  ASSERT_OK(store().SetStreamMetadata("keep-1", ExpectedVersion::NoStream(), md));
  ASSERT_OK(store().Append("gone-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().DeleteStream("gone-1", ExpectedVersion::Exact(1)));
  ASSERT_OK(store().Append("dead-1", ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK(store().TombstoneStream("dead-1", ExpectedVersion::Any()));
  LogState before = CaptureLog(store());
  ASSERT_OK_AND_ASSIGN(auto keep1_before, ReadStreamEvents(store(), "keep-1"));

  ASSERT_TRUE(CloseAndReopen());

  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK_AND_ASSIGN(auto keep1_after, ReadStreamEvents(store(), "keep-1"));
  EXPECT_TRUE(SameEvents(keep1_before, keep1_after));
  EXPECT_EQ(Versions(keep1_after), Range(1, 2));  // truncate-before survived

  ASSERT_OK_AND_ASSIGN(auto info1, store().GetStreamInfo("keep-1"));
  EXPECT_TRUE(info1.exists);
  EXPECT_EQ(info1.last_version, 2u);
  EXPECT_EQ(info1.metadata_version, 0u);
  EXPECT_EQ(info1.metadata.truncate_before, 1u);
  ASSERT_OK_AND_ASSIGN(auto gone, store().GetStreamInfo("gone-1"));
  EXPECT_TRUE(gone.deleted);
  EXPECT_FALSE(gone.exists);
  EXPECT_EQ(gone.last_version, 1u);
  EXPECT_TRUE(IsError(store().ReadStream("gone-1"), kNotFound, kStreamNotFound));
  ASSERT_OK_AND_ASSIGN(auto dead, store().GetStreamInfo("dead-1"));
  EXPECT_TRUE(dead.tombstoned);
  EXPECT_TRUE(IsError(store().Append("dead-1", ExpectedVersion::Any(), NewEvents(1)), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().ReadStream("dead-1"), kNotFound, kStreamDeleted));

  // Idempotency remembers recent ids across the reopen.
  ASSERT_OK_AND_ASSIGN(auto retry, store().Append("keep-2", ExpectedVersion::NoStream(), keep2));
  EXPECT_EQ(retry, keep2_result);
  EXPECT_TRUE(IsError(store().Append("keep-3", ExpectedVersion::Any(), keep2), kAlreadyExists, kDuplicateEventId));
  EXPECT_TRUE(LogUnchanged(before, store()));

  // Versions and positions carry on.
  ASSERT_OK_AND_ASSIGN(auto more, store().Append("keep-1", ExpectedVersion::Exact(2), NewEvents(1)));
  EXPECT_EQ(more.first_version, 3u);
  EXPECT_GE(more.position, before.head);
  EXPECT_GT(store().HeadPosition(), before.head);
  ASSERT_OK_AND_ASSIGN(auto reopened, store().Append("gone-1", ExpectedVersion::NoStream(), NewEvents(1)));
  EXPECT_EQ(reopened.first_version, 2u);
  EXPECT_TRUE(IsWrongExpectedVersion(store().SetStreamMetadata("keep-1", ExpectedVersion::NoStream(), md), 0));
  ASSERT_OK(store().SetStreamMetadata("keep-1", ExpectedVersion::Exact(0), md));

  // And what happened after the first reopen survives a second one.
  LogState again = CaptureLog(store());
  ASSERT_TRUE(CloseAndReopen());
  EXPECT_TRUE(LogUnchanged(again, store()));
  ASSERT_OK_AND_ASSIGN(auto gone_events, ReadStreamEvents(store(), "gone-1"));
  EXPECT_EQ(Versions(gone_events), Range(2, 1));
  ASSERT_OK_AND_ASSIGN(auto info1_again, store().GetStreamInfo("keep-1"));
  EXPECT_EQ(info1_again.metadata_version, 1u);
  EXPECT_EQ(info1_again.last_version, 3u);
}

TEST_P(ConformanceTest, IdempotencyWindowBoundaryHoldsAfterReopen) {
  CONF_REQUIRE_PERSISTENT();
  constexpr uint64_t kWindow = 10;
  Options options = BaseOptions();
  options.idempotency_window_events = kWindow;
  ASSERT_TRUE(OpenFresh(options));
  std::vector<EventData> old_one = {NewEvent("Old")};
  std::vector<EventData> recent = {NewEvent("Recent")};
  ASSERT_OK(store().Append("win-old", ExpectedVersion::Any(), old_one));
  ASSERT_OK_AND_ASSIGN(auto recent_result, store().Append("win-recent", ExpectedVersion::Any(), recent));
  for (uint64_t i = 0; i < kWindow - 2; ++i) {
    ASSERT_OK(store().Append("other-" + std::to_string(i), ExpectedVersion::Any(), NewEvents(1)));
  }
  // win-old is the 11th most recent event: out of the window; win-recent the 10th: in it.
  ASSERT_OK(store().Append("other-last", ExpectedVersion::Any(), NewEvents(1)));
  ASSERT_TRUE(CloseAndReopen(options));
  Position head = store().HeadPosition();
  ASSERT_OK_AND_ASSIGN(auto retry, store().Append("win-recent", ExpectedVersion::Any(), recent));
  EXPECT_EQ(retry, recent_result);
  EXPECT_EQ(store().HeadPosition(), head);
  ASSERT_OK_AND_ASSIGN(auto late, store().Append("win-old", ExpectedVersion::Any(), old_one));
  EXPECT_EQ(late.first_version, 1u);
}

TEST_P(ConformanceTest, TimeQueriesAnswerTheSameAfterReopen) {
  CONF_REQUIRE_PERSISTENT();
  CONF_REQUIRE_CLOCK();
  constexpr int64_t kSecond = 1'000'000'000;
  std::vector<Timestamp> times;
  for (int i = 1; i <= 6; ++i) {
    Timestamp t{kClockStart.nanos + i * 10 * kSecond};
    times.push_back(t);
    backend().SetClock(t);
    ASSERT_OK(store().Append("clock-" + std::to_string(i % 2), ExpectedVersion::Any(), NewEvents(2)));
  }
  std::vector<Position> before;
  for (const auto& t : times) {
    ASSERT_OK_AND_ASSIGN(auto p, store().PositionAtTime(Timestamp{t.nanos - 1}));
    before.push_back(p);
  }
  ReadStreamOptions as_of;
  as_of.as_of = times[3];
  ASSERT_OK_AND_ASSIGN(auto stream_before, ReadStreamEvents(store(), "clock-1", as_of));

  ASSERT_TRUE(CloseAndReopen());
  for (size_t i = 0; i < times.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(auto p, store().PositionAtTime(Timestamp{times[i].nanos - 1}));
    EXPECT_EQ(p, before[i]) << "time " << i;
  }
  ASSERT_OK_AND_ASSIGN(auto end, store().PositionAtTime(times.back()));
  EXPECT_EQ(end, Position::End());
  ASSERT_OK_AND_ASSIGN(auto stream_after, ReadStreamEvents(store(), "clock-1", as_of));
  EXPECT_TRUE(SameEvents(stream_before, stream_after));
  EXPECT_EQ(Versions(stream_after), Range(0, 4));
  // The clock is behind the last recorded time after reopen too: recorded_at does not go back.
  backend().SetClock(times[0]);
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("clock-9", ExpectedVersion::Any(), NewEvents(1)));
  ASSERT_OK_AND_ASSIGN(auto last, ReadAllEvents(store(), AllFrom(r.position)));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].recorded_at, times.back());
}

TEST_P(ConformanceTest, ManyEventsSurviveRepeatedReopens) {
  CONF_REQUIRE_PERSISTENT();
  // Close() syncs; the appends in between need not (this is about reopening, not durability).
  Options options = BaseOptions();
  options.sync = SyncMode::kNone;
  ASSERT_TRUE(OpenFresh(options));
  const std::string payload(3000, 'p');
  Position head_before = store().HeadPosition();
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) {
      ASSERT_OK(store().Append("bulk-" + std::to_string(i % 4), ExpectedVersion::Any(),
                               std::vector<EventData>{NewEvent("Bulk", payload), NewEvent("Bulk", payload)}));
    }
    LogState before = CaptureLog(store());
    ASSERT_TRUE(CloseAndReopen(options)) << "round " << round;
    EXPECT_TRUE(LogUnchanged(before, store())) << "round " << round;
  }
  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), AllFrom(head_before)));
  EXPECT_EQ(all.size(), 3u * 40 * 2);
  for (int s = 0; s < 4; ++s) {
    ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "bulk-" + std::to_string(s)));
    EXPECT_EQ(Versions(events), Range(0, 60));
  }
}

TEST_P(ConformanceTest, SecondOpenWhileOpenIsStoreLocked) {
  if (!backend().exclusive_open()) GTEST_SKIP() << "backend allows many openers";
  ASSERT_OK(store().Append("life-1", ExpectedVersion::NoStream(), NewEvents(1)));
  auto second = backend().Reopen(BaseOptions());
  EXPECT_TRUE(IsError(second, kUnavailable, kStoreLocked));
  // The first store is unharmed.
  ASSERT_OK(store().Append("life-1", ExpectedVersion::Exact(0), NewEvents(1)));
}

// ---- Store::Open and its URLs (no backend parameter: these are the embedded engine's URLs).

TEST(StoreUrlTest, MemoryUrlOpensAPrivateStore) {
  ASSERT_OK_AND_ASSIGN(auto a, Store::Open("memory:"));
  ASSERT_OK_AND_ASSIGN(auto b, Store::Open("memory:"));
  ASSERT_OK(a->Append("url-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(*a, "url-1"));
  EXPECT_EQ(Versions(events), Range(0, 2));
  EXPECT_TRUE(IsError(b->ReadStream("url-1"), kNotFound, kStreamNotFound));
  ASSERT_OK(b->Append("url-1", ExpectedVersion::NoStream(), NewEvents(1)));
}

TEST(StoreUrlTest, FileUrlOpensAndReopensADirectory) {
  testing::TempDir dir;
  const std::string url = "file:" + dir.Sub("data");
  std::vector<EventData> sent = NewEvents(3);
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(url));
    ASSERT_OK(store->Append("url-1", ExpectedVersion::NoStream(), sent));
    ASSERT_OK(store->Close());
  }
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(url));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(*store, "url-1"));
  EXPECT_EQ(Ids(events), Ids(sent));
  EXPECT_TRUE(IsError(Store::Open(url), kUnavailable, kStoreLocked));
}

TEST(StoreUrlTest, FileUrlAcceptsQueryOptions) {
  testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open("file:" + dir.Sub("data") + "?sync=none&segment_size=65536"));
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(store->Append("url-1", ExpectedVersion::Any(),
                            std::vector<EventData>{NewEvent("Big", std::string(20'000, 'q'))}));
  }
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(*store, "url-1"));
  EXPECT_EQ(events.size(), 10u);
  // The 64 KiB segment size took effect.
  EXPECT_TRUE(IsError(store->Append("url-1", ExpectedVersion::Any(),
                                    std::vector<EventData>{NewEvent("Huge", std::string(70'000, 'q'))}),
                      kInvalidArgument));
}

TEST(StoreUrlTest, BadUrlsAreInvalidArgument) {
  testing::TempDir dir;
  EXPECT_TRUE(IsError(Store::Open("nope:"), kInvalidArgument));
  EXPECT_TRUE(IsError(Store::Open("nope:/tmp/x"), kInvalidArgument));
  EXPECT_TRUE(IsError(Store::Open("file:"), kInvalidArgument));
  EXPECT_TRUE(IsError(Store::Open("file:" + dir.Sub("data") + "?sync=sometimes"), kInvalidArgument));
}

}  // namespace
}  // namespace cairn::conformance

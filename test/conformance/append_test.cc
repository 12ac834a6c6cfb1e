// Proves the append contract: the expected-version matrix, atomic ordered appends, idempotent
// retries (and the window's boundary) and stream info, by appending and reading back through the API.
#include <condition_variable>
#include <mutex>
#include <set>

#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

// ---- Expected version on a stream that was never written.

TEST_P(ConformanceTest, NoStreamOnNewStreamSucceeds) {
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  EXPECT_EQ(r.first_version, 0u);
  EXPECT_EQ(r.next_version, 3u);
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "order-1"));
  EXPECT_EQ(Versions(events), Range(0, 3));
}

TEST_P(ConformanceTest, AnyOnNewStreamSucceeds) {
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("order-1", ExpectedVersion::Any(), NewEvents(2)));
  EXPECT_EQ(r.first_version, 0u);
  EXPECT_EQ(r.next_version, 2u);
}

TEST_P(ConformanceTest, StreamExistsOnNewStreamConflictsWithoutActualVersion) {
  LogState before = CaptureLog(store());
  auto r = store().Append("order-1", ExpectedVersion::StreamExists(), NewEvents(1));
  EXPECT_TRUE(IsWrongExpectedVersion(r, std::nullopt));
  EXPECT_TRUE(LogUnchanged(before, store()));
  EXPECT_TRUE(IsError(store().ReadStream("order-1"), kNotFound, kStreamNotFound));
}

TEST_P(ConformanceTest, ExactZeroOnNewStreamConflictsWithoutActualVersion) {
  LogState before = CaptureLog(store());
  auto r = store().Append("order-1", ExpectedVersion::Exact(0), NewEvents(1));
  EXPECT_TRUE(IsWrongExpectedVersion(r, std::nullopt));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

// ---- Expected version on a stream whose last version is L = 2.

constexpr StreamVersion kLast = 2;

TEST_P(ConformanceTest, NoStreamOnExistingStreamConflictsWithActualVersion) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  LogState before = CaptureLog(store());
  auto r = store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(1));
  EXPECT_TRUE(IsWrongExpectedVersion(r, kLast));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, ExactLastVersionSucceeds) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("order-1", ExpectedVersion::Exact(kLast), NewEvents(2)));
  EXPECT_EQ(r.first_version, 3u);
  EXPECT_EQ(r.next_version, 5u);
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "order-1"));
  EXPECT_EQ(Versions(events), Range(0, 5));
}

TEST_P(ConformanceTest, ExactAboveLastVersionConflictsWithActualVersion) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  LogState before = CaptureLog(store());
  auto r = store().Append("order-1", ExpectedVersion::Exact(kLast + 1), NewEvents(1));
  EXPECT_TRUE(IsWrongExpectedVersion(r, kLast));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, ExactBelowLastVersionConflictsWithActualVersion) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  LogState before = CaptureLog(store());
  auto r = store().Append("order-1", ExpectedVersion::Exact(kLast - 1), NewEvents(1));
  EXPECT_TRUE(IsWrongExpectedVersion(r, kLast));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, StreamExistsOnExistingStreamSucceeds) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("order-1", ExpectedVersion::StreamExists(), NewEvents(1)));
  EXPECT_EQ(r.first_version, 3u);
  EXPECT_EQ(r.next_version, 4u);
}

TEST_P(ConformanceTest, AnyOnExistingStreamSucceeds) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("order-1", ExpectedVersion::Any(), NewEvents(1)));
  EXPECT_EQ(r.first_version, 3u);
  EXPECT_EQ(r.next_version, 4u);
}

TEST_P(ConformanceTest, ConflictWritesNothing) {
  ASSERT_OK(store().Append("order-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().Append("order-2", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK_AND_ASSIGN(auto stream_before, ReadStreamEvents(store(), "order-1"));
  LogState before = CaptureLog(store());

  for (ExpectedVersion wrong : {ExpectedVersion::NoStream(), ExpectedVersion::Exact(0), ExpectedVersion::Exact(5)}) {
    auto r = store().Append("order-1", wrong, NewEvents(4));
    EXPECT_TRUE(IsWrongExpectedVersion(r, 2)) << wrong.ToString();
  }
  EXPECT_TRUE(IsWrongExpectedVersion(store().Append("order-3", ExpectedVersion::StreamExists(), NewEvents(2)),
                                     std::nullopt));

  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK_AND_ASSIGN(auto stream_after, ReadStreamEvents(store(), "order-1"));
  EXPECT_TRUE(SameEvents(stream_before, stream_after));
  EXPECT_TRUE(IsError(store().ReadStream("order-3"), kNotFound, kStreamNotFound));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("order-1"));
  EXPECT_EQ(info.last_version, 2u);
}

// ---- Atomicity and order.

TEST_P(ConformanceTest, AppendStoresAllEventsInOrderWithIncreasingPositions) {
  Position head_before = store().HeadPosition();
  std::vector<EventData> batch1 = NewEvents(3, "First");
  std::vector<EventData> batch2 = NewEvents(2, "Second");
  std::vector<EventData> batch3 = NewEvents(4, "Third");
  ASSERT_OK_AND_ASSIGN(auto r1, store().Append("cart-1", ExpectedVersion::NoStream(), batch1));
  ASSERT_OK_AND_ASSIGN(auto r2, store().Append("cart-2", ExpectedVersion::NoStream(), batch2));
  ASSERT_OK_AND_ASSIGN(auto r3, store().Append("cart-1", ExpectedVersion::Exact(2), batch3));
  EXPECT_EQ(r1.first_version, 0u);
  EXPECT_EQ(r1.next_version, 3u);
  EXPECT_EQ(r2.first_version, 0u);
  EXPECT_EQ(r3.first_version, 3u);
  EXPECT_EQ(r3.next_version, 7u);
  EXPECT_GE(r1.position, head_before);
  EXPECT_LT(r1.position, r2.position);
  EXPECT_LT(r2.position, r3.position);

  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), AllFrom(head_before)));
  ASSERT_EQ(all.size(), 9u);
  std::vector<Uuid> expected_ids = Ids(batch1);
  for (const auto& id : Ids(batch2)) expected_ids.push_back(id);
  for (const auto& id : Ids(batch3)) expected_ids.push_back(id);
  EXPECT_EQ(Ids(all), expected_ids);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].position, all[i].position) << i;
  EXPECT_EQ(all[0].position, r1.position);
  EXPECT_EQ(all[3].position, r2.position);
  EXPECT_EQ(all[5].position, r3.position);
  for (const auto& e : all) EXPECT_LT(e.position, store().HeadPosition());

  ASSERT_OK_AND_ASSIGN(auto cart1, ReadStreamEvents(store(), "cart-1"));
  EXPECT_EQ(Versions(cart1), Range(0, 7));
  ASSERT_OK_AND_ASSIGN(auto cart2, ReadStreamEvents(store(), "cart-2"));
  EXPECT_EQ(Versions(cart2), Range(0, 2));
}

TEST_P(ConformanceTest, HeadPositionAdvancesPastEveryAppend) {
  Position head = store().HeadPosition();
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto r, store().Append("cart-1", ExpectedVersion::Any(), NewEvents(2)));
    EXPECT_GE(r.position, head);
    Position next = store().HeadPosition();
    EXPECT_GT(next, r.position);
    EXPECT_GT(next, head);
    head = next;
  }
}

// ---- Idempotency.

TEST_P(ConformanceTest, RetryWithSameIdsReturnsOriginalResultWhateverTheExpectedVersion) {
  std::vector<EventData> original = NewEvents(2);
  ASSERT_OK_AND_ASSIGN(auto first, store().Append("pay-1", ExpectedVersion::NoStream(), original));
  ASSERT_OK(store().Append("pay-1", ExpectedVersion::Exact(1), NewEvents(1)));
  ASSERT_OK(store().Append("pay-2", ExpectedVersion::NoStream(), NewEvents(1)));
  LogState before = CaptureLog(store());

  for (ExpectedVersion expected : {ExpectedVersion::NoStream(), ExpectedVersion::Any(), ExpectedVersion::Exact(0),
                                   ExpectedVersion::Exact(2), ExpectedVersion::Exact(7),
                                   ExpectedVersion::StreamExists()}) {
    auto retry = store().Append("pay-1", expected, original);
    ASSERT_OK(retry);
    EXPECT_EQ(*retry, first) << expected.ToString();
  }
  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "pay-1"));
  EXPECT_EQ(Versions(events), Range(0, 3));
}

TEST_P(ConformanceTest, RetryOfPartOfAnEarlierAppendIsAlreadyExists) {
  std::vector<EventData> original = NewEvents(2);
  ASSERT_OK(store().Append("pay-1", ExpectedVersion::NoStream(), original));
  LogState before = CaptureLog(store());

  std::vector<std::vector<EventData>> partial = {
      {original[0]},
      {original[1]},
      {original[0], original[1], NewEvent()},
      {NewEvent(), original[0]},
  };
  for (size_t i = 0; i < partial.size(); ++i) {
    EXPECT_TRUE(IsError(store().Append("pay-1", ExpectedVersion::Any(), partial[i]), kAlreadyExists,
                        kDuplicateEventId))
        << "case " << i;
  }
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, SameIdsOnAnotherStreamAreAlreadyExists) {
  std::vector<EventData> original = NewEvents(2);
  ASSERT_OK(store().Append("pay-1", ExpectedVersion::NoStream(), original));
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsError(store().Append("pay-2", ExpectedVersion::Any(), original), kAlreadyExists, kDuplicateEventId));
  EXPECT_TRUE(IsError(store().Append("pay-2", ExpectedVersion::NoStream(), std::vector<EventData>{original[1]}),
                      kAlreadyExists, kDuplicateEventId));
  EXPECT_TRUE(LogUnchanged(before, store()));
  EXPECT_TRUE(IsError(store().ReadStream("pay-2"), kNotFound, kStreamNotFound));
}

TEST_P(ConformanceTest, OneIdTwiceInABatchIsInvalidArgument) {
  LogState before = CaptureLog(store());
  EventData e = NewEvent();
  std::vector<EventData> batch = {e, NewEvent(), e};
  EXPECT_TRUE(IsError(store().Append("pay-1", ExpectedVersion::Any(), batch), kInvalidArgument, kDuplicateEventId));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, NilIdsGetGeneratedUuidV7s) {
  std::vector<EventData> batch = NewEvents(3);
  for (auto& e : batch) e.id = Uuid{};
  ASSERT_OK(store().Append("pay-1", ExpectedVersion::NoStream(), batch));
  ASSERT_OK(store().Append("pay-1", ExpectedVersion::Exact(2), batch));  // nil ids never match
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "pay-1"));
  ASSERT_EQ(events.size(), 6u);
  std::set<Uuid> distinct;
  for (const auto& e : events) {
    EXPECT_FALSE(e.id.IsNil());
    EXPECT_EQ(e.id.bytes[6] >> 4, 7) << "not a version 7 UUID: " << e.id.ToString();
    EXPECT_EQ(e.id.bytes[8] >> 6, 2) << "not an RFC 4122 variant: " << e.id.ToString();
    distinct.insert(e.id);
  }
  EXPECT_EQ(distinct.size(), 6u);
}

TEST_P(ConformanceTest, IdempotencyWindowRemembersExactlyTheLastWEvents) {
  constexpr uint64_t kWindow = 10;
  Options options = BaseOptions();
  options.idempotency_window_events = kWindow;
  ASSERT_TRUE(OpenFresh(options));

  std::vector<EventData> original = {NewEvent("Original")};
  ASSERT_OK_AND_ASSIGN(auto first, store().Append("win-1", ExpectedVersion::Any(), original));
  for (uint64_t i = 0; i < kWindow - 1; ++i) {
    ASSERT_OK(store().Append("other-" + std::to_string(i), ExpectedVersion::Any(), NewEvents(1)));
  }
  // The original is the W-th most recent event: still remembered.
  Position head = store().HeadPosition();
  ASSERT_OK_AND_ASSIGN(auto retry, store().Append("win-1", ExpectedVersion::Any(), original));
  EXPECT_EQ(retry, first);
  EXPECT_EQ(store().HeadPosition(), head);

  // One more event pushes it out of the window: the retry appends anew.
  ASSERT_OK(store().Append("other-last", ExpectedVersion::Any(), NewEvents(1)));
  ASSERT_OK_AND_ASSIGN(auto late, store().Append("win-1", ExpectedVersion::Any(), original));
  EXPECT_EQ(late.first_version, 1u);
  EXPECT_EQ(late.next_version, 2u);
  EXPECT_GT(late.position, first.position);
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "win-1"));
  EXPECT_EQ(Versions(events), Range(0, 2));
}

TEST_P(ConformanceTest, ManyStreamsEachKeepTheirOwnVersions) {
  constexpr int kStreams = 1000;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::string> errors;
  auto callback = [&](Result<AppendResult> r) {
    std::lock_guard lock(mu);
    if (!r.ok()) errors.push_back(r.status().ToString());
    ++done;
    cv.notify_all();
  };
  // Two rounds of one append per stream; the second expects the version the first left.
  for (int round = 0; round < 2; ++round) {
    for (int s = 0; s < kStreams; ++s) {
      ExpectedVersion expected = round == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(s % 3);
      store().AppendAsync("many-" + std::to_string(s), expected, NewEvents(1 + s % 3), callback);
    }
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == 2 * kStreams; }));
    ASSERT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  }
  for (int s = 0; s < kStreams; s += 37) {
    ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("many-" + std::to_string(s)));
    EXPECT_EQ(info.last_version, static_cast<StreamVersion>(2 * (1 + s % 3) - 1)) << s;
    ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "many-" + std::to_string(s)));
    EXPECT_EQ(Versions(events), Range(0, 2 * (1 + s % 3))) << s;
  }
  ReadAllOptions category;
  category.filter.categories = {"many"};
  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), category));
  EXPECT_EQ(all.size(), static_cast<size_t>(2 * (kStreams / 3 * 6 + 1)));
}

// ---- Stream info.

TEST_P(ConformanceTest, StreamInfoOfNeverWrittenStream) {
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("ghost-1"));
  EXPECT_FALSE(info.exists);
  EXPECT_FALSE(info.deleted);
  EXPECT_FALSE(info.tombstoned);
  EXPECT_EQ(info.last_version, std::nullopt);
  EXPECT_EQ(info.last_position, std::nullopt);
  EXPECT_EQ(info.metadata_version, std::nullopt);
  EXPECT_EQ(info.metadata, StreamMetadata{});
}

TEST_P(ConformanceTest, StreamInfoReportsLastVersionAndPosition) {
  ASSERT_OK(store().Append("acct-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().Append("acct-2", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("acct-1", ExpectedVersion::Exact(2), NewEvents(2)));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "acct-1"));
  ASSERT_EQ(events.size(), 5u);
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("acct-1"));
  EXPECT_TRUE(info.exists);
  EXPECT_FALSE(info.deleted);
  EXPECT_FALSE(info.tombstoned);
  EXPECT_EQ(info.last_version, 4u);
  EXPECT_EQ(info.last_position, events.back().position);
}

}  // namespace
}  // namespace cairn::conformance

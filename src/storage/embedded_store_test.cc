// Regression tests of the embedded engine, each named after what broke.
// How: stores on a MemEnv with small segments, driven through the public Store API.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "cairn/store.h"
#include "env/env.h"
#include "storage/engine.h"
#include "storage/log_format.h"

namespace cairn::storage {
namespace {

TEST(EmbeddedStoreTest, AppendAfterOneThatFilledASegmentExactlyRollsToTheNext) {
  auto env = env::NewMemEnv();
  Options o;
  o.segment_size_bytes = 64 << 10;
  // 8 records of 8184 bytes fill the 65472 bytes after the segment header exactly.
  const size_t data = 8184 - (kRecordHeaderSize + 2 + kRecordTrailerSize);
  ASSERT_EQ(RecordSize(1, 1, data, 0), 8184u);
  {
    auto store = OpenEmbedded(env.get(), "/db", o);
    ASSERT_TRUE(store.ok());
    for (int i = 0; i < 12; ++i) {
      std::vector<EventData> ev{{Uuid{}, "t", std::string(data, 'x'), "", ContentType::kBytes}};
      auto r = (*store)->Append("s", ExpectedVersion::Any(), ev);
      ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
      if (i == 8) {
        EXPECT_EQ(r->position.value(), o.segment_size_bytes + kSegmentHeaderSize);
      }
    }
  }
  auto store = OpenEmbedded(env.get(), "/db", o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto all = (*store)->ReadAll({})->Collect();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 12u);
  ReadAllOptions back;
  back.direction = ReadDirection::kBackward;
  back.from = Position::End();
  auto reversed = (*store)->ReadAll(back)->Collect();
  ASSERT_TRUE(reversed.ok());
  ASSERT_EQ(reversed->size(), 12u);
  EXPECT_EQ(reversed->front().version, 11u);
}

TEST(EmbeddedStoreTest, RetryOfPartOfAnEarlierAppendIsNotIdempotent) {
  auto store = Store::Open("memory:");
  ASSERT_TRUE(store.ok());
  std::vector<EventData> two{{Uuid::V7(), "a", "{}", "", ContentType::kJson}, {Uuid::V7(), "b", "{}", "", ContentType::kJson}};
  ASSERT_TRUE((*store)->Append("s-1", ExpectedVersion::NoStream(), two).ok());
  std::vector<EventData> tail{two[1]};
  auto r = (*store)->Append("s-1", ExpectedVersion::Any(), tail);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().detail(), ErrorDetail::kDuplicateEventId);
  std::vector<EventData> head{two[0]};
  r = (*store)->Append("s-1", ExpectedVersion::Any(), head);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().detail(), ErrorDetail::kDuplicateEventId);
  auto again = (*store)->Append("s-1", ExpectedVersion::NoStream(), two);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->first_version, 0u);
}

TEST(EmbeddedStoreTest, RetryOfAnAppendThatReopenedASoftDeletedStreamIsIdempotent) {
  auto store = Store::Open("memory:");
  ASSERT_TRUE(store.ok());
  std::vector<EventData> one{{Uuid::V7(), "a", "{}", "", ContentType::kJson}};
  ASSERT_TRUE((*store)->Append("s-1", ExpectedVersion::NoStream(), one).ok());
  ASSERT_TRUE((*store)->DeleteStream("s-1", ExpectedVersion::Any()).ok());
  std::vector<EventData> more{{Uuid::V7(), "b", "{}", "", ContentType::kJson}};
  auto first = (*store)->Append("s-1", ExpectedVersion::NoStream(), more);
  ASSERT_TRUE(first.ok());
  auto retry = (*store)->Append("s-1", ExpectedVersion::NoStream(), more);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*retry, *first);
}

}  // namespace
}  // namespace cairn::storage

namespace cairn::storage {
namespace {

TEST(EmbeddedStoreStatsTest, CountsAppendsConflictsCommitsFsyncsAndTotalsAcrossAReopen) {
  const std::string dir = ::testing::TempDir() + "/stats-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const std::string url = "file:" + dir;
  {
    auto store = Store::Open(url);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    StoreStats empty = (*store)->Stats();
    EXPECT_EQ(empty.appends, 0u);
    EXPECT_EQ(empty.total_events, 0u);
    std::vector<EventData> three{{Uuid::V7(), "a", "{}", "", ContentType::kJson},
                                 {Uuid::V7(), "b", "{}", "", ContentType::kJson},
                                 {Uuid::V7(), "c", "{}", "", ContentType::kJson}};
    ASSERT_TRUE((*store)->Append("s-1", ExpectedVersion::NoStream(), three).ok());
    std::vector<EventData> one{{Uuid::V7(), "d", "{}", "", ContentType::kJson}};
    ASSERT_TRUE((*store)->Append("s-2", ExpectedVersion::NoStream(), one).ok());
    EXPECT_TRUE((*store)->Append("s-2", ExpectedVersion::NoStream(), one).ok());  // a retry: idempotent
    std::vector<EventData> other{{Uuid::V7(), "e", "{}", "", ContentType::kJson}};
    auto conflict = (*store)->Append("s-2", ExpectedVersion::NoStream(), other);
    ASSERT_FALSE(conflict.ok());
    ASSERT_TRUE((*store)->ReadStream("s-1").ok());
    ASSERT_TRUE((*store)->ReadAll({}).ok());

    StoreStats s = (*store)->Stats();
    EXPECT_EQ(s.appends, 3u);  // two appends and the idempotent retry
    EXPECT_EQ(s.conflicts, 1u);
    EXPECT_EQ(s.append_errors, 1u);
    EXPECT_EQ(s.events_written, 4u);
    EXPECT_EQ(s.total_events, 4u);
    EXPECT_EQ(s.streams, 2u);
    EXPECT_EQ(s.reads, 2u);
    EXPECT_EQ(s.commits, 2u);
    EXPECT_GE(s.fsyncs, 2u);  // sync=always: at least one per group commit
    EXPECT_EQ(s.fsync_seconds.count, s.fsyncs);
    EXPECT_EQ(s.batch_events.count, s.commits);
    EXPECT_EQ(s.batch_events.sum, 4.0);
    EXPECT_EQ(s.batch_events.counts[0], 1u);  // the group of one event (bound 1)
    EXPECT_EQ(s.batch_events.counts[1], 1u);  // the group of three (bound 4)
    EXPECT_GT(s.bytes_written, 0u);
    EXPECT_EQ(s.head, (*store)->HeadPosition());
    EXPECT_GT(s.disk_bytes, s.bytes_written);
  }
  auto store = Store::Open(url);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  StoreStats s = (*store)->Stats();
  EXPECT_EQ(s.appends, 0u);  // since open
  EXPECT_EQ(s.total_events, 4u);  // of the store
  EXPECT_EQ(s.streams, 2u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cairn::storage

// Proves soft delete (hidden, re-opened by a later append that continues the versions) and
// tombstone (gone for good, marked in $all), by deleting streams and checking every call on them after.
#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

// ---- Soft delete.

TEST_P(ConformanceTest, DeleteStreamChecksExpectedVersion) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsWrongExpectedVersion(store().DeleteStream("doc-1", ExpectedVersion::Exact(1)), 2));
  EXPECT_TRUE(IsWrongExpectedVersion(store().DeleteStream("doc-1", ExpectedVersion::Exact(3)), 2));
  EXPECT_TRUE(IsWrongExpectedVersion(store().DeleteStream("doc-1", ExpectedVersion::NoStream()), 2));
  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-1"));
  EXPECT_TRUE(info.exists);
  EXPECT_FALSE(info.deleted);
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Exact(2)));
}

TEST_P(ConformanceTest, SoftDeletedStreamReadsAsNotFound) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Exact(2)));
  EXPECT_TRUE(IsError(store().ReadStream("doc-1"), kNotFound, kStreamNotFound));
  EXPECT_TRUE(IsError(store().ReadStream("doc-1", Backward()), kNotFound, kStreamNotFound));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-1"));
  EXPECT_FALSE(info.exists);
  EXPECT_TRUE(info.deleted);
  EXPECT_FALSE(info.tombstoned);
  EXPECT_EQ(info.last_version, 2u);
}

TEST_P(ConformanceTest, DeleteWithAnyAndStreamExistsWorks) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("doc-2", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Any()));
  ASSERT_OK(store().DeleteStream("doc-2", ExpectedVersion::StreamExists()));
  EXPECT_TRUE(IsError(store().ReadStream("doc-1"), kNotFound, kStreamNotFound));
  EXPECT_TRUE(IsError(store().ReadStream("doc-2"), kNotFound, kStreamNotFound));
}

TEST_P(ConformanceTest, AppendWithNoStreamReopensSoftDeletedStreamContinuingVersions) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Exact(2)));
  std::vector<EventData> fresh = NewEvents(2, "Reopened");
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("doc-1", ExpectedVersion::NoStream(), fresh));
  EXPECT_EQ(r.first_version, 3u);
  EXPECT_EQ(r.next_version, 5u);
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "doc-1"));
  EXPECT_EQ(Versions(events), Range(3, 2));
  EXPECT_EQ(Ids(events), Ids(fresh));
  ASSERT_OK_AND_ASSIGN(auto backward, ReadStreamEvents(store(), "doc-1", Backward()));
  EXPECT_EQ(Versions(backward), (std::vector<StreamVersion>{4, 3}));
  ReadStreamOptions from_zero;
  from_zero.from = 0;
  ASSERT_OK_AND_ASSIGN(auto from_start, ReadStreamEvents(store(), "doc-1", from_zero));
  EXPECT_EQ(Versions(from_start), Range(3, 2));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-1"));
  EXPECT_TRUE(info.exists);
  EXPECT_FALSE(info.deleted);
  EXPECT_EQ(info.last_version, 4u);
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::Exact(4), NewEvents(1)));
}

TEST_P(ConformanceTest, AppendWithAnyReopensSoftDeletedStream) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(4)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Any()));
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("doc-1", ExpectedVersion::Any(), NewEvents(1)));
  EXPECT_EQ(r.first_version, 4u);
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "doc-1"));
  EXPECT_EQ(Versions(events), Range(4, 1));
}

TEST_P(ConformanceTest, SoftDeletedStreamDoesNotExistForExpectedVersion) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Exact(2)));
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsWrongExpectedVersion(store().Append("doc-1", ExpectedVersion::StreamExists(), NewEvents(1)),
                                     std::nullopt));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, ReopenedStreamKeepsItsOtherMetadata) {
  StreamMetadata md;
  md.max_count = 2;
  md.custom_json = R"({"owner":"carol"})";
  ASSERT_OK(store().SetStreamMetadata("doc-1", ExpectedVersion::NoStream(), md));
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Exact(2)));
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "doc-1"));
  EXPECT_EQ(Versions(events), Range(4, 2));  // max-count still applies
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-1"));
  EXPECT_EQ(info.metadata.max_count, 2u);
  EXPECT_EQ(info.metadata.custom_json, md.custom_json);
  EXPECT_EQ(info.last_version, 5u);
}

TEST_P(ConformanceTest, DeletingANeverWrittenStreamIsNotFound) {
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsError(store().DeleteStream("doc-9", ExpectedVersion::Any()), kNotFound, kStreamNotFound));
  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-9"));
  EXPECT_FALSE(info.exists);
  EXPECT_FALSE(info.deleted);
}

// ---- Tombstone.

TEST_P(ConformanceTest, TombstoneChecksExpectedVersion) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsWrongExpectedVersion(store().TombstoneStream("doc-1", ExpectedVersion::Exact(0)), 2));
  EXPECT_TRUE(IsWrongExpectedVersion(store().TombstoneStream("doc-1", ExpectedVersion::NoStream()), 2));
  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-1"));
  EXPECT_FALSE(info.tombstoned);
}

TEST_P(ConformanceTest, TombstonedStreamRefusesEveryCall) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK(store().TombstoneStream("doc-1", ExpectedVersion::Exact(2)));
  LogState before = CaptureLog(store());

  EXPECT_TRUE(IsError(store().ReadStream("doc-1"), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().ReadStream("doc-1", Backward()), kNotFound, kStreamDeleted));
  for (ExpectedVersion expected : {ExpectedVersion::Any(), ExpectedVersion::NoStream(),
                                   ExpectedVersion::StreamExists(), ExpectedVersion::Exact(2),
                                   ExpectedVersion::Exact(3)}) {
    EXPECT_TRUE(IsError(store().Append("doc-1", expected, NewEvents(1)), kNotFound, kStreamDeleted))
        << expected.ToString();
  }
  StreamMetadata md;
  md.max_count = 5;
  EXPECT_TRUE(IsError(store().SetStreamMetadata("doc-1", ExpectedVersion::Any(), md), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().DeleteStream("doc-1", ExpectedVersion::Any()), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().TombstoneStream("doc-1", ExpectedVersion::Any()), kNotFound, kStreamDeleted));
  EXPECT_TRUE(LogUnchanged(before, store()));

  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-1"));
  EXPECT_TRUE(info.tombstoned);
  EXPECT_FALSE(info.exists);
}

TEST_P(ConformanceTest, TombstoningANeverWrittenStreamPreventsItsCreation) {
  ASSERT_OK(store().TombstoneStream("doc-2", ExpectedVersion::Any()));
  EXPECT_TRUE(IsError(store().Append("doc-2", ExpectedVersion::NoStream(), NewEvents(1)), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().Append("doc-2", ExpectedVersion::Any(), NewEvents(1)), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().ReadStream("doc-2"), kNotFound, kStreamDeleted));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("doc-2"));
  EXPECT_TRUE(info.tombstoned);
  EXPECT_FALSE(info.exists);
}

TEST_P(ConformanceTest, TombstoneOfSoftDeletedStreamMakesItGoneForGood) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Any()));
  ASSERT_OK(store().TombstoneStream("doc-1", ExpectedVersion::Any()));
  EXPECT_TRUE(IsError(store().ReadStream("doc-1"), kNotFound, kStreamDeleted));
  EXPECT_TRUE(IsError(store().Append("doc-1", ExpectedVersion::Any(), NewEvents(1)), kNotFound, kStreamDeleted));
}

bool IsTombstoneOf(const RecordedEvent& e, const std::string& stream) {
  return e.type == "$streamDeleted" && (e.stream == stream || e.stream == "$$" + stream);
}

TEST_P(ConformanceTest, TombstoneAppearsInAllAsSystemEvent) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(2)));
  Position head = store().HeadPosition();
  ASSERT_OK(store().TombstoneStream("doc-1", ExpectedVersion::Any()));
  EXPECT_GT(store().HeadPosition(), head);

  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store()));
  size_t marks = 0;
  for (const auto& e : all) marks += IsTombstoneOf(e, "doc-1") ? 1 : 0;
  EXPECT_EQ(marks, 1u);
  ASSERT_OK_AND_ASSIGN(auto tail, ReadAllEvents(store(), AllFrom(head)));
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_TRUE(IsTombstoneOf(tail[0], "doc-1")) << ::testing::PrintToString(tail[0]);

  ReadAllOptions no_system;
  no_system.filter.exclude_system_events = true;
  ASSERT_OK_AND_ASSIGN(auto user, ReadAllEvents(store(), no_system));
  for (const auto& e : user) EXPECT_NE(e.type, "$streamDeleted");
}

}  // namespace
}  // namespace cairn::conformance

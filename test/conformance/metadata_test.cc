// Proves stream metadata: it is versioned on the metastream, returned by GetStreamInfo, hides
// events from stream reads (max-count, truncate-before, max-age) but never from $all, by setting it and reading.
#include <nlohmann/json.hpp>

#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

using nlohmann::json;

// Equal field by field; the JSON texts compare as JSON values (key order and spacing may differ).
::testing::AssertionResult SameMetadata(const StreamMetadata& expected, const StreamMetadata& actual) {
  auto as_json = [](const std::string& text) { return text.empty() ? json() : json::parse(text, nullptr, false); };
  if (expected.max_age_seconds != actual.max_age_seconds || expected.max_count != actual.max_count ||
      expected.truncate_before != actual.truncate_before ||
      expected.cache_control_seconds != actual.cache_control_seconds ||
      as_json(expected.acl_json) != as_json(actual.acl_json) ||
      as_json(expected.custom_json) != as_json(actual.custom_json)) {
    return ::testing::AssertionFailure() << "expected " << expected.ToJson() << ", got " << actual.ToJson();
  }
  return ::testing::AssertionSuccess();
}

TEST_P(ConformanceTest, MetadataCanBeSetBeforeTheStreamExistsAndIsVersioned) {
  StreamMetadata md;
  md.max_count = 2;
  md.custom_json = R"({"owner":"alice"})";
  ASSERT_OK_AND_ASSIGN(auto r, store().SetStreamMetadata("meta-1", ExpectedVersion::NoStream(), md));
  EXPECT_EQ(r.first_version, 0u);
  EXPECT_EQ(r.next_version, 1u);
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("meta-1"));
  EXPECT_FALSE(info.exists);
  EXPECT_EQ(info.last_version, std::nullopt);
  EXPECT_EQ(info.metadata_version, 0u);
  EXPECT_TRUE(SameMetadata(md, info.metadata));

  StreamMetadata md2;
  md2.truncate_before = 1;
  ASSERT_OK_AND_ASSIGN(auto r2, store().SetStreamMetadata("meta-1", ExpectedVersion::Exact(0), md2));
  EXPECT_EQ(r2.first_version, 1u);
  ASSERT_OK_AND_ASSIGN(auto info2, store().GetStreamInfo("meta-1"));
  EXPECT_EQ(info2.metadata_version, 1u);
  EXPECT_TRUE(SameMetadata(md2, info2.metadata));

  // The latest metadata (truncate-before 1, no max-count) applies to events appended later.
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(4)));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(events), Range(1, 3));
}

TEST_P(ConformanceTest, MetadataWithWrongExpectedVersionConflicts) {
  StreamMetadata md;
  md.max_count = 3;
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::Any(), md));
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsWrongExpectedVersion(store().SetStreamMetadata("meta-1", ExpectedVersion::NoStream(), md), 0));
  EXPECT_TRUE(IsWrongExpectedVersion(store().SetStreamMetadata("meta-1", ExpectedVersion::Exact(4), md), 0));
  EXPECT_TRUE(IsWrongExpectedVersion(store().SetStreamMetadata("meta-2", ExpectedVersion::Exact(0), md),
                                     std::nullopt));
  EXPECT_TRUE(IsWrongExpectedVersion(store().SetStreamMetadata("meta-2", ExpectedVersion::StreamExists(), md),
                                     std::nullopt));
  EXPECT_TRUE(LogUnchanged(before, store()));
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::StreamExists(), md));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("meta-1"));
  EXPECT_EQ(info.metadata_version, 1u);
}

TEST_P(ConformanceTest, MaxCountHidesAllButTheNewestEventsFromStreamReads) {
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(5)));
  StreamMetadata md;
  md.max_count = 2;
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::Any(), md));

  ASSERT_OK_AND_ASSIGN(auto forward, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(forward), Range(3, 2));
  ASSERT_OK_AND_ASSIGN(auto backward, ReadStreamEvents(store(), "meta-1", Backward()));
  EXPECT_EQ(Versions(backward), (std::vector<StreamVersion>{4, 3}));
  ReadStreamOptions one;
  one.from = 0;
  one.max_count = 1;
  ASSERT_OK_AND_ASSIGN(auto first, ReadStreamEvents(store(), "meta-1", one));
  EXPECT_EQ(Versions(first), Range(3, 1));

  ASSERT_OK(store().Append("meta-1", ExpectedVersion::Exact(4), NewEvents(1)));
  ASSERT_OK_AND_ASSIGN(auto after, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(after), Range(4, 2));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("meta-1"));
  EXPECT_EQ(info.last_version, 5u);
}

// EventStoreDB's clients write metadata as a `$metadata` event appended to the metastream: it
// takes effect at once, the same as SetStreamMetadata and the same after a reopen; metadata that
// does not parse is stored but changes nothing.
TEST_P(ConformanceTest, MetadataAppendedToTheMetastreamAppliesAtOnce) {
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(5)));
  AppendOptions system;
  system.allow_system_stream = true;
  EventData md_event;
  md_event.type = "$metadata";
  md_event.data = R"({"$maxCount":2})";
  ASSERT_OK(store().Append("$$meta-1", ExpectedVersion::NoStream(), std::vector<EventData>{md_event}, system));
  auto check = [&] {
    ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("meta-1"));
    EXPECT_EQ(info.metadata.max_count, 2u);
    EXPECT_EQ(info.metadata_version, 0u);
    ASSERT_OK_AND_ASSIGN(auto forward, ReadStreamEvents(store(), "meta-1"));
    EXPECT_EQ(Versions(forward), Range(3, 2));
  };
  check();
  EventData junk = md_event;
  junk.data = R"({"$maxCount":"many"})";
  ASSERT_OK(store().Append("$$meta-1", ExpectedVersion::Exact(0), std::vector<EventData>{junk}, system));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("meta-1"));
  EXPECT_EQ(info.metadata.max_count, 2u);
  if (backend().persistent()) {
    ASSERT_TRUE(CloseAndReopen(BaseOptions()));
    ASSERT_OK_AND_ASSIGN(auto reopened, store().GetStreamInfo("meta-1"));
    EXPECT_EQ(reopened.metadata.max_count, 2u);
    ASSERT_OK_AND_ASSIGN(auto forward, ReadStreamEvents(store(), "meta-1"));
    EXPECT_EQ(Versions(forward), Range(3, 2));
  }
}

TEST_P(ConformanceTest, TruncateBeforeHidesLowerVersionsFromStreamReads) {
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(6)));
  StreamMetadata md;
  md.truncate_before = 3;
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::NoStream(), md));
  ASSERT_OK_AND_ASSIGN(auto forward, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(forward), Range(3, 3));
  ASSERT_OK_AND_ASSIGN(auto backward, ReadStreamEvents(store(), "meta-1", Backward()));
  EXPECT_EQ(Versions(backward), Reversed(Range(3, 3)));
  ASSERT_OK_AND_ASSIGN(auto below, ReadStreamEvents(store(), "meta-1", Backward(2)));
  EXPECT_TRUE(below.empty());
  ReadStreamOptions from_one;
  from_one.from = 1;
  ASSERT_OK_AND_ASSIGN(auto from_one_events, ReadStreamEvents(store(), "meta-1", from_one));
  EXPECT_EQ(Versions(from_one_events), Range(3, 3));
}

TEST_P(ConformanceTest, MaxAgeHidesOldEventsFromStreamReads) {
  CONF_REQUIRE_CLOCK();
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(3, "Old")));
  backend().AdvanceClock(std::chrono::seconds(100));
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::Exact(2), NewEvents(2, "New")));
  StreamMetadata md;
  md.max_age_seconds = 60;
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::NoStream(), md));
  ASSERT_OK_AND_ASSIGN(auto forward, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(forward), Range(3, 2));
  ASSERT_OK_AND_ASSIGN(auto backward, ReadStreamEvents(store(), "meta-1", Backward()));
  EXPECT_EQ(Versions(backward), (std::vector<StreamVersion>{4, 3}));

  // Age counts from the clock's now: 50 s later the new events are still young enough.
  backend().AdvanceClock(std::chrono::seconds(50));
  ASSERT_OK_AND_ASSIGN(auto later, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(later), Range(3, 2));
}

TEST_P(ConformanceTest, ReadAllIgnoresStreamMetadata) {
  CONF_REQUIRE_CLOCK();
  Position head = store().HeadPosition();
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(5)));
  ASSERT_OK(store().Append("meta-2", ExpectedVersion::NoStream(), NewEvents(5)));
  ASSERT_OK(store().Append("meta-3", ExpectedVersion::NoStream(), NewEvents(5)));
  StreamMetadata count;
  count.max_count = 1;
  StreamMetadata truncate;
  truncate.truncate_before = 4;
  StreamMetadata age;
  age.max_age_seconds = 1;
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::Any(), count));
  ASSERT_OK(store().SetStreamMetadata("meta-2", ExpectedVersion::Any(), truncate));
  ASSERT_OK(store().SetStreamMetadata("meta-3", ExpectedVersion::Any(), age));
  backend().AdvanceClock(std::chrono::seconds(10));

  ReadAllOptions options = AllFrom(head);
  options.filter.exclude_system_events = true;
  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), options));
  ASSERT_EQ(all.size(), 15u);
  for (const auto& stream : {"meta-1", "meta-2", "meta-3"}) {
    size_t n = 0;
    for (const auto& e : all) n += e.stream == stream ? 1 : 0;
    EXPECT_EQ(n, 5u) << stream;
  }
  options.direction = ReadDirection::kBackward;
  options.from = Position::End();
  ASSERT_OK_AND_ASSIGN(auto backward, ReadAllEvents(store(), options));
  EXPECT_TRUE(SameEvents(Reversed(all), backward));
  // While the stream reads honour it.
  ASSERT_OK_AND_ASSIGN(auto one, ReadStreamEvents(store(), "meta-1"));
  EXPECT_EQ(Versions(one), Range(4, 1));
}

TEST_P(ConformanceTest, MetastreamHoldsMetadataEventsAsJson) {
  StreamMetadata md;
  md.max_count = 7;
  md.max_age_seconds = 3600;
  md.truncate_before = 2;
  md.cache_control_seconds = 30;
  md.custom_json = R"({"owner":"alice"})";
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::NoStream(), md));
  StreamMetadata md2;
  md2.max_count = 9;
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::Exact(0), md2));

  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "$$meta-1"));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Versions(events), Range(0, 2));
  for (const auto& e : events) {
    EXPECT_EQ(e.stream, "$$meta-1");
    EXPECT_EQ(e.type, "$metadata");
    EXPECT_EQ(e.content_type, ContentType::kJson);
  }
  json first = json::parse(events[0].data, nullptr, false);
  ASSERT_TRUE(first.is_object()) << events[0].data;
  EXPECT_EQ(first.value("$maxCount", 0), 7);
  EXPECT_EQ(first.value("$maxAge", 0), 3600);
  EXPECT_EQ(first.value("$tb", 0), 2);
  EXPECT_EQ(first.value("$cacheControl", 0), 30);
  EXPECT_EQ(first.value("owner", ""), "alice");
  json second = json::parse(events[1].data, nullptr, false);
  ASSERT_TRUE(second.is_object()) << events[1].data;
  EXPECT_EQ(second.value("$maxCount", 0), 9);
  EXPECT_FALSE(second.contains("$tb"));
  EXPECT_FALSE(second.contains("owner"));
}

TEST_P(ConformanceTest, CustomAndAclMetadataRoundTrip) {
  StreamMetadata md;
  md.custom_json = R"({"owner":"alice","tags":["a","b"],"nested":{"x":1.5,"ok":true}})";
  md.acl_json = R"({"$r":"$all","$w":["alice"]})";
  ASSERT_OK(store().SetStreamMetadata("meta-1", ExpectedVersion::Any(), md));
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo("meta-1"));
  EXPECT_TRUE(SameMetadata(md, info.metadata));
  ASSERT_OK(store().Append("meta-1", ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK_AND_ASSIGN(auto info2, store().GetStreamInfo("meta-1"));
  EXPECT_TRUE(SameMetadata(md, info2.metadata));
  EXPECT_TRUE(info2.exists);
}

}  // namespace
}  // namespace cairn::conformance

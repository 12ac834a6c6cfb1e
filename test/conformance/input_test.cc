// Proves that bad input is refused with kInvalidArgument naming the field (and the limit) and
// changes nothing, and that input exactly at a limit is accepted, by sending each bad input once.
#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

const std::string kMaxVersionText = std::to_string(kMaxStreamVersion);

std::vector<EventData> One() { return {NewEvent()}; }

// Appends `events` to `stream`, expects kInvalidArgument naming `words`, and that nothing changed.
void ExpectRejected(Store& store, std::string_view stream, const std::vector<EventData>& events,
                    const std::vector<std::string>& words, ExpectedVersion expected = ExpectedVersion::Any()) {
  LogState before = CaptureLog(store);
  EXPECT_TRUE(IsInvalidArgumentNaming(store.Append(stream, expected, events), words));
  EXPECT_TRUE(LogUnchanged(before, store));
}

TEST_P(ConformanceTest, BadStreamNamesAreInvalidArgument) {
  ExpectRejected(store(), "", One(), {"stream"});
  ExpectRejected(store(), std::string(kMaxStreamNameBytes + 1, 'a'), One(), {"stream", "1000"});
  ExpectRejected(store(), "$custom-1", One(), {"stream"});
  ExpectRejected(store(), "bad-\xff\xfe", One(), {"stream"});
  ExpectRejected(store(), "bad-\xc3", One(), {"stream"});          // truncated sequence
  ExpectRejected(store(), "bad-\xc0\xaf", One(), {"stream"});      // overlong '/'
  ExpectRejected(store(), "bad-\xed\xa0\x80", One(), {"stream"});  // UTF-16 surrogate
  ExpectRejected(store(), std::string("bad-\0-1", 7), One(), {"stream"});
}

TEST_P(ConformanceTest, StreamNamesAtTheLimitAreAccepted) {
  std::string ascii(kMaxStreamNameBytes, 'a');
  ASSERT_OK(store().Append(ascii, ExpectedVersion::NoStream(), One()));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), ascii));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].stream, ascii);

  // The limit counts bytes, not characters: 500 two-byte characters fit, one byte more does not.
  std::string utf8;
  for (size_t i = 0; i < kMaxStreamNameBytes / 2; ++i) utf8 += "\xc3\xa9";
  ASSERT_EQ(utf8.size(), kMaxStreamNameBytes);
  ASSERT_OK(store().Append(utf8, ExpectedVersion::NoStream(), One()));
  ExpectRejected(store(), utf8 + "a", One(), {"stream", "1000"});
  ASSERT_OK(store().Append("café-ß-日本-🙂", ExpectedVersion::NoStream(), One()));
  ASSERT_OK_AND_ASSIGN(auto unicode, ReadStreamEvents(store(), "café-ß-日本-🙂"));
  EXPECT_EQ(unicode.size(), 1u);
}

TEST_P(ConformanceTest, SystemStreamNeedsAllowSystemStream) {
  AppendOptions system;
  system.allow_system_stream = true;
  ASSERT_OK(store().Append("$custom-1", ExpectedVersion::NoStream(), One(), system));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "$custom-1"));
  EXPECT_EQ(events.size(), 1u);
  // The other checks still apply.
  LogState before = CaptureLog(store());
  EXPECT_TRUE(IsInvalidArgumentNaming(store().Append("$bad-\xff", ExpectedVersion::Any(), One(), system), {"stream"}));
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, BadStreamNamesAreInvalidArgumentForEveryCall) {
  LogState before = CaptureLog(store());
  const std::string too_long(kMaxStreamNameBytes + 1, 'a');
  for (const std::string& name : {std::string(), too_long, std::string("bad-\xff"), std::string("a\0b", 3)}) {
    EXPECT_TRUE(IsError(store().ReadStream(name), kInvalidArgument));
    EXPECT_TRUE(IsError(store().GetStreamInfo(name), kInvalidArgument));
    EXPECT_TRUE(IsError(store().SetStreamMetadata(name, ExpectedVersion::Any(), StreamMetadata{}), kInvalidArgument));
    EXPECT_TRUE(IsError(store().DeleteStream(name, ExpectedVersion::Any()), kInvalidArgument));
    EXPECT_TRUE(IsError(store().TombstoneStream(name, ExpectedVersion::Any()), kInvalidArgument));
  }
  EXPECT_TRUE(LogUnchanged(before, store()));
}

TEST_P(ConformanceTest, BadEventTypesAreInvalidArgument) {
  ExpectRejected(store(), "ev-1", {NewEvent("")}, {"type"});
  ExpectRejected(store(), "ev-1", {NewEvent(std::string(kMaxEventTypeBytes + 1, 't'))}, {"type", "500"});
  ExpectRejected(store(), "ev-1", {NewEvent("Bad\xff")}, {"type"});
  // One bad event spoils the whole batch.
  ExpectRejected(store(), "ev-1", {NewEvent("Good"), NewEvent("")}, {"type"});
}

TEST_P(ConformanceTest, EventTypeAtTheLimitIsAccepted) {
  std::string type(kMaxEventTypeBytes, 't');
  ASSERT_OK(store().Append("ev-1", ExpectedVersion::NoStream(), std::vector<EventData>{NewEvent(type)}));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "ev-1"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, type);
}

TEST_P(ConformanceTest, EmptyBatchIsInvalidArgument) {
  ExpectRejected(store(), "ev-1", {}, {"event"});
  ExpectRejected(store(), "ev-1", {}, {"event"}, ExpectedVersion::NoStream());
}

TEST_P(ConformanceTest, TooManyEventsInOneAppendIsInvalidArgument) {
  Options options = BaseOptions();
  options.segment_size_bytes = Options{}.segment_size_bytes;  // so that the count, not the segment, binds
  ASSERT_TRUE(OpenFresh(options));
  std::vector<EventData> events(kMaxAppendEvents + 1);
  for (auto& e : events) e.type = "T";
  ExpectRejected(store(), "ev-1", events, {std::to_string(kMaxAppendEvents)});
}

// The byte limits are tested on the default segment size, so that they, not the segment, bind.
TEST_P(ConformanceTest, EventOverTheByteLimitIsInvalidArgument) {
  Options options = BaseOptions();
  options.segment_size_bytes = Options{}.segment_size_bytes;
  options.sync = SyncMode::kNone;
  ASSERT_TRUE(OpenFresh(options));

  EventData big = NewEvent("Big", std::string(kMaxEventBytes - 2, 'd'), "mmm");
  ExpectRejected(store(), "ev-1", {big}, {std::to_string(kMaxEventBytes)});
  EventData big_data = NewEvent("Big", std::string(kMaxEventBytes + 1, 'd'), "");
  ExpectRejected(store(), "ev-1", {NewEvent(), big_data}, {std::to_string(kMaxEventBytes)});

  // Exactly the limit (data plus metadata) is accepted.
  EventData fits = NewEvent("Big", std::string(kMaxEventBytes - 3, 'd'), "mmm");
  fits.content_type = ContentType::kBytes;
  ASSERT_OK(store().Append("ev-1", ExpectedVersion::NoStream(), std::vector<EventData>{fits}));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "ev-1"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data.size(), kMaxEventBytes - 3);
}

TEST_P(ConformanceTest, AppendOverTheTotalByteLimitIsInvalidArgument) {
  Options options = BaseOptions();
  options.segment_size_bytes = Options{}.segment_size_bytes;
  options.sync = SyncMode::kNone;
  ASSERT_TRUE(OpenFresh(options));
  std::vector<EventData> events;
  for (int i = 0; i < 5; ++i) events.push_back(NewEvent("Big", std::string(kMaxEventBytes - 1024, 'd')));
  ExpectRejected(store(), "ev-1", events, {std::to_string(kMaxAppendBytes)});
}

TEST_P(ConformanceTest, AppendLargerThanASegmentIsInvalidArgument) {
  Options options = BaseOptions();
  options.segment_size_bytes = kSmallSegmentBytes;
  ASSERT_TRUE(OpenFresh(options));
  ASSERT_OK(store().Append("seg-1", ExpectedVersion::NoStream(), std::vector<EventData>{NewEvent("Fits", std::string(20'000, 'x'))}));
  // The message names the limit: the segment (what bounds it here), whatever its exact usable size.
  ExpectRejected(store(), "seg-1", {NewEvent("Huge", std::string(kSmallSegmentBytes + 10, 'x'))}, {"segment"});
  std::vector<EventData> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(NewEvent("Part", std::string(30'000, 'x')));
  ExpectRejected(store(), "seg-1", batch, {"segment"});
  // The store goes on working.
  ASSERT_OK(store().Append("seg-1", ExpectedVersion::Exact(0), std::vector<EventData>{NewEvent("Fits", std::string(30'000, 'y'))}));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "seg-1"));
  EXPECT_EQ(Versions(events), Range(0, 2));
}

TEST_P(ConformanceTest, ExpectedVersionAboveTheMaximumIsInvalidArgument) {
  ExpectRejected(store(), "ev-1", One(), {"version", kMaxVersionText}, ExpectedVersion::Exact(kMaxStreamVersion + 1));
  ExpectRejected(store(), "ev-1", One(), {"version", kMaxVersionText},
                 ExpectedVersion::Exact(std::numeric_limits<uint64_t>::max()));
  // The maximum itself is a well-formed (here wrong) expectation.
  EXPECT_TRUE(IsWrongExpectedVersion(store().Append("ev-1", ExpectedVersion::Exact(kMaxStreamVersion), One()),
                                     std::nullopt));
}

TEST_P(ConformanceTest, ReadFromAboveTheMaximumVersionIsInvalidArgument) {
  ASSERT_OK(store().Append("ev-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ReadStreamOptions options;
  options.from = kMaxStreamVersion + 1;
  EXPECT_TRUE(IsInvalidArgumentNaming(store().ReadStream("ev-1", options), {kMaxVersionText}));
  EXPECT_TRUE(IsInvalidArgumentNaming(store().ReadStream("ev-1", Backward(kMaxStreamVersion + 1)), {kMaxVersionText}));
  options.from = kMaxStreamVersion;
  ASSERT_OK_AND_ASSIGN(auto none, ReadStreamEvents(store(), "ev-1", options));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace cairn::conformance

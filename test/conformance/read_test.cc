// Proves the read contract: stream reads forward and backward, $all reads from any position with
// filters and checkpoints, field round trips and view lifetimes, by appending known events and reading back.
#include <map>
#include <random>

#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

// ---- ReadStream.

TEST_P(ConformanceTest, ReadStreamForwardFromVersionHonoursMaxCount) {
  ASSERT_OK(store().Append("inv-1", ExpectedVersion::NoStream(), NewEvents(10)));
  ReadStreamOptions options;
  options.from = 3;
  options.max_count = 4;
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "inv-1", options));
  EXPECT_EQ(Versions(events), Range(3, 4));
  options.max_count = 100;
  ASSERT_OK_AND_ASSIGN(auto rest, ReadStreamEvents(store(), "inv-1", options));
  EXPECT_EQ(Versions(rest), Range(3, 7));
  ASSERT_OK_AND_ASSIGN(auto all, ReadStreamEvents(store(), "inv-1"));
  EXPECT_EQ(Versions(all), Range(0, 10));
}

TEST_P(ConformanceTest, ReadStreamBackwardFromTheEndAndFromAVersion) {
  ASSERT_OK(store().Append("inv-1", ExpectedVersion::NoStream(), NewEvents(10)));
  ASSERT_OK_AND_ASSIGN(auto from_end, ReadStreamEvents(store(), "inv-1", Backward()));
  EXPECT_EQ(Versions(from_end), Reversed(Range(0, 10)));
  ASSERT_OK_AND_ASSIGN(auto from_five, ReadStreamEvents(store(), "inv-1", Backward(5)));
  EXPECT_EQ(Versions(from_five), Reversed(Range(0, 6)));
  ReadStreamOptions two = Backward(5);
  two.max_count = 2;
  ASSERT_OK_AND_ASSIGN(auto two_events, ReadStreamEvents(store(), "inv-1", two));
  EXPECT_EQ(Versions(two_events), (std::vector<StreamVersion>{5, 4}));
  ReadStreamOptions last = Backward();
  last.max_count = 1;
  ASSERT_OK_AND_ASSIGN(auto last_event, ReadStreamEvents(store(), "inv-1", last));
  EXPECT_EQ(Versions(last_event), (std::vector<StreamVersion>{9}));
  ASSERT_OK_AND_ASSIGN(auto from_zero, ReadStreamEvents(store(), "inv-1", Backward(0)));
  EXPECT_EQ(Versions(from_zero), (std::vector<StreamVersion>{0}));
}

TEST_P(ConformanceTest, ReadStreamForwardPastTheEndIsEmpty) {
  ASSERT_OK(store().Append("inv-1", ExpectedVersion::NoStream(), NewEvents(3)));
  for (StreamVersion from : {StreamVersion{3}, StreamVersion{4}, StreamVersion{1000}}) {
    ReadStreamOptions options;
    options.from = from;
    ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "inv-1", options));
    EXPECT_TRUE(events.empty()) << "from " << from;
  }
}

TEST_P(ConformanceTest, ReadStreamOfUnknownStreamIsNotFound) {
  ASSERT_OK(store().Append("inv-1", ExpectedVersion::NoStream(), NewEvents(1)));
  EXPECT_TRUE(IsError(store().ReadStream("inv-2"), kNotFound, kStreamNotFound));
  EXPECT_TRUE(IsError(store().ReadStream("inv-2", Backward()), kNotFound, kStreamNotFound));
  EXPECT_TRUE(IsError(store().ReadStream("inv"), kNotFound, kStreamNotFound));
}

TEST_P(ConformanceTest, RecordedEventFieldsRoundTrip) {
  CONF_REQUIRE_CLOCK();
  backend().SetClock(Timestamp{kClockStart.nanos + 1'234'567'891});
  EventData json = NewEvent("Deposited", R"({"amount":42,"currency":"EUR"})", R"({"$correlationId":"c-1"})");
  EventData bytes = NewEvent("Blob", "raw bytes", "meta bytes");
  bytes.content_type = ContentType::kBytes;
  EventData empty = NewEvent("Empty", "", "");
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("acct-7", ExpectedVersion::NoStream(),
                                              std::vector<EventData>{json, bytes, empty}));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "acct-7"));
  ASSERT_EQ(events.size(), 3u);
  const EventData* sent[] = {&json, &bytes, &empty};
  for (size_t i = 0; i < 3; ++i) {
    const RecordedEvent& e = events[i];
    EXPECT_EQ(e.stream, "acct-7");
    EXPECT_EQ(e.version, i);
    EXPECT_EQ(e.id, sent[i]->id);
    EXPECT_EQ(e.type, sent[i]->type);
    EXPECT_EQ(e.data, sent[i]->data);
    EXPECT_EQ(e.metadata, sent[i]->metadata);
    EXPECT_EQ(e.content_type, sent[i]->content_type);
    EXPECT_EQ(e.recorded_at, backend().Now());
  }
  EXPECT_EQ(events[0].position, r.position);
  // $all gives the same events.
  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), AllFrom(r.position)));
  EXPECT_TRUE(SameEvents(events, all));
}

TEST_P(ConformanceTest, BinaryDataWithNulBytesRoundTrips) {
  std::string data;
  for (int i = 0; i < 512; ++i) data.push_back(static_cast<char>(i % 256));
  data += std::string("\0\0\0", 3);
  std::string metadata("\0meta\0\xff", 7);
  EventData e = NewEvent("Blob", data, metadata);
  e.content_type = ContentType::kBytes;
  ASSERT_OK(store().Append("blob-1", ExpectedVersion::NoStream(), std::vector<EventData>{e}));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "blob-1"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, data);
  EXPECT_EQ(events[0].data.size(), 515u);
  EXPECT_EQ(events[0].metadata, metadata);
  EXPECT_EQ(events[0].content_type, ContentType::kBytes);
}

// ---- ReadAll.

// Appends 8 events over three streams and returns them as read from $all.
std::vector<RecordedEvent> AppendMixed(Store& store) {
  Position head = store.HeadPosition();
  EXPECT_OK(store.Append("a-1", ExpectedVersion::Any(), NewEvents(3, "A")));
  EXPECT_OK(store.Append("b-1", ExpectedVersion::Any(), NewEvents(2, "B")));
  EXPECT_OK(store.Append("a-1", ExpectedVersion::Any(), NewEvents(1, "A")));
  EXPECT_OK(store.Append("c-1", ExpectedVersion::Any(), NewEvents(2, "C")));
  auto events = ReadAllEvents(store, AllFrom(head));
  EXPECT_OK(events);
  if (!events.ok()) return {};
  EXPECT_EQ(events->size(), 8u);
  return std::move(events).value();
}

TEST_P(ConformanceTest, ReadAllForwardFromAnEventsPositionStartsAtThatEvent) {
  std::vector<RecordedEvent> mixed = AppendMixed(store());
  ASSERT_EQ(mixed.size(), 8u);
  for (size_t k = 0; k < mixed.size(); ++k) {
    ASSERT_OK_AND_ASSIGN(auto events, ReadAllEvents(store(), AllFrom(mixed[k].position)));
    EXPECT_TRUE(SameEvents(std::vector<RecordedEvent>(mixed.begin() + k, mixed.end()), events)) << "k=" << k;
  }
}

TEST_P(ConformanceTest, ReadAllBackwardFromAnEventsPositionGivesEarlierEventsNewestFirst) {
  Position head_before = store().HeadPosition();
  std::vector<RecordedEvent> mixed = AppendMixed(store());
  ASSERT_EQ(mixed.size(), 8u);
  for (size_t k = 0; k < mixed.size(); ++k) {
    ASSERT_OK_AND_ASSIGN(auto events, ReadAllEvents(store(), AllFrom(mixed[k].position, ReadDirection::kBackward)));
    // Drop whatever the store held before this test's events.
    std::erase_if(events, [&](const RecordedEvent& e) { return e.position < head_before; });
    EXPECT_TRUE(SameEvents(Reversed(std::vector<RecordedEvent>(mixed.begin(), mixed.begin() + k)), events))
        << "k=" << k;
  }
}

TEST_P(ConformanceTest, ReadAllBackwardFromEndIsForwardReversed) {
  AppendMixed(store());
  ASSERT_OK_AND_ASSIGN(auto forward, ReadAllEvents(store()));
  ASSERT_OK_AND_ASSIGN(auto backward, ReadAllEvents(store(), AllFrom(Position::End(), ReadDirection::kBackward)));
  EXPECT_TRUE(SameEvents(Reversed(forward), backward));
  ASSERT_OK_AND_ASSIGN(auto from_head,
                       ReadAllEvents(store(), AllFrom(store().HeadPosition(), ReadDirection::kBackward)));
  EXPECT_TRUE(SameEvents(Reversed(forward), from_head));
  ASSERT_OK_AND_ASSIGN(auto past_end, ReadAllEvents(store(), AllFrom(Position::End())));
  EXPECT_TRUE(past_end.empty());
  ASSERT_OK_AND_ASSIGN(auto before_start, ReadAllEvents(store(), AllFrom(Position::Start(), ReadDirection::kBackward)));
  EXPECT_TRUE(before_start.empty());
}

TEST_P(ConformanceTest, ReadAllHonoursMaxCountInBothDirections) {
  std::vector<RecordedEvent> mixed = AppendMixed(store());
  ASSERT_EQ(mixed.size(), 8u);
  ReadAllOptions forward = AllFrom(mixed[2].position);
  forward.max_count = 3;
  ASSERT_OK_AND_ASSIGN(auto f, ReadAllEvents(store(), forward));
  EXPECT_TRUE(SameEvents(std::vector<RecordedEvent>(mixed.begin() + 2, mixed.begin() + 5), f));
  ReadAllOptions backward = AllFrom(Position::End(), ReadDirection::kBackward);
  backward.max_count = 3;
  ASSERT_OK_AND_ASSIGN(auto b, ReadAllEvents(store(), backward));
  EXPECT_TRUE(SameEvents(Reversed(std::vector<RecordedEvent>(mixed.begin() + 5, mixed.end())), b));
  forward.max_count = 0;
  ASSERT_OK_AND_ASSIGN(auto none, ReadAllEvents(store(), forward));
  EXPECT_TRUE(none.empty());
}

EventFilter Filter(std::vector<std::string> prefixes, std::vector<std::string> categories,
                   std::vector<std::string> types, bool exclude_system = false) {
  EventFilter f;
  f.stream_prefixes = std::move(prefixes);
  f.categories = std::move(categories);
  f.event_types = std::move(types);
  f.exclude_system_events = exclude_system;
  return f;
}

TEST_P(ConformanceTest, ReadAllFiltersByPrefixCategoryTypeAndSystemEvents) {
  ASSERT_OK(store().Append("account-1", ExpectedVersion::Any(),
                           std::vector<EventData>{NewEvent("Deposited"), NewEvent("Withdrawn")}));
  ASSERT_OK(store().Append("account-2", ExpectedVersion::Any(), std::vector<EventData>{NewEvent("Deposited")}));
  ASSERT_OK(store().Append("accounting-x", ExpectedVersion::Any(), std::vector<EventData>{NewEvent("Deposited")}));
  ASSERT_OK(store().Append("order-1", ExpectedVersion::Any(), std::vector<EventData>{NewEvent("Placed")}));
  ASSERT_OK(store().Append("orderline", ExpectedVersion::Any(), std::vector<EventData>{NewEvent("Placed")}));
  StreamMetadata md;
  md.max_count = 10;
  ASSERT_OK(store().SetStreamMetadata("account-1", ExpectedVersion::Any(), md));
  ASSERT_OK_AND_ASSIGN(auto everything, ReadAllEvents(store()));

  struct Case {
    EventFilter filter;
    std::vector<std::string> streams;  // of the expected events, in order
  };
  const std::vector<Case> cases = {
      {Filter({"account-"}, {}, {}), {"account-1", "account-1", "account-2"}},
      {Filter({"account"}, {}, {}), {"account-1", "account-1", "account-2", "accounting-x"}},
      {Filter({"order-", "account-2"}, {}, {}), {"account-2", "order-1"}},
      {Filter({}, {"account"}, {}), {"account-1", "account-1", "account-2"}},
      {Filter({}, {"order", "orderline"}, {}), {"order-1", "orderline"}},
      {Filter({}, {}, {"Deposited"}), {"account-1", "account-2", "accounting-x"}},
      {Filter({}, {}, {"Placed", "Withdrawn"}), {"account-1", "order-1", "orderline"}},
      {Filter({}, {}, {"$metadata"}), {"$$account-1"}},
      {Filter({"$$account"}, {}, {}), {"$$account-1"}},
      {Filter({}, {"account"}, {"Deposited"}), {"account-1", "account-2"}},
      {Filter({"account", "order-"}, {}, {"Placed", "Withdrawn"}), {"account-1", "order-1"}},
      {Filter({"account"}, {"accounting"}, {"Deposited"}), {"accounting-x"}},
      {Filter({}, {}, {"Nope"}), {}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    ReadAllOptions options;
    options.filter = cases[i].filter;
    ASSERT_OK_AND_ASSIGN(auto events, ReadAllEvents(store(), options));
    std::vector<std::string> streams;
    for (const auto& e : events) streams.push_back(e.stream);
    EXPECT_EQ(streams, cases[i].streams) << "case " << i;
    // The same as filtering the unfiltered read, forward and backward.
    std::vector<RecordedEvent> oracle;
    for (const auto& e : everything) {
      if (cases[i].filter.Matches(e.stream, e.type)) oracle.push_back(e);
    }
    EXPECT_TRUE(SameEvents(oracle, events)) << "case " << i;
    options.direction = ReadDirection::kBackward;
    options.from = Position::End();
    ASSERT_OK_AND_ASSIGN(auto backward, ReadAllEvents(store(), options));
    EXPECT_TRUE(SameEvents(Reversed(oracle), backward)) << "case " << i << " backward";
  }

  // exclude_system_events keeps every user event and drops "$metadata".
  ReadAllOptions no_system;
  no_system.filter.exclude_system_events = true;
  ASSERT_OK_AND_ASSIGN(auto user_events, ReadAllEvents(store(), no_system));
  for (const auto& e : user_events) EXPECT_NE(e.type.substr(0, 1), "$") << e.stream << " " << e.type;
  size_t user_count = 0;
  for (const auto& e : everything) user_count += e.type.starts_with("$") ? 0 : 1;
  EXPECT_EQ(user_events.size(), user_count);
  no_system.filter.categories = {"account"};
  ASSERT_OK_AND_ASSIGN(auto user_accounts, ReadAllEvents(store(), no_system));
  EXPECT_EQ(user_accounts.size(), 3u);
}

TEST_P(ConformanceTest, ReadAllFilteredHonoursMaxCount) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK(store().Append("noise-" + std::to_string(i), ExpectedVersion::Any(), NewEvents(2, "Noise")));
    ASSERT_OK(store().Append("sig-" + std::to_string(i), ExpectedVersion::Any(), NewEvents(1, "Signal")));
  }
  ReadAllOptions options;
  options.filter.event_types = {"Signal"};
  options.max_count = 3;
  ASSERT_OK_AND_ASSIGN(auto events, ReadAllEvents(store(), options));
  std::vector<std::string> streams;
  for (const auto& e : events) streams.push_back(e.stream);
  EXPECT_EQ(streams, (std::vector<std::string>{"sig-0", "sig-1", "sig-2"}));
}

TEST_P(ConformanceTest, ReadAllCheckpointNeverDecreasesAndResumesWithoutRepeats) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(store().Append("noise-" + std::to_string(i), ExpectedVersion::Any(), NewEvents(3, "Noise")));
    ASSERT_OK(store().Append("sig-" + std::to_string(i), ExpectedVersion::Any(), NewEvents(1, "Signal")));
  }
  ReadAllOptions options;
  options.filter.event_types = {"Signal"};
  ASSERT_OK_AND_ASSIGN(auto cursor, store().ReadAll(options));
  Position checkpoint = cursor.checkpoint();
  size_t count = 0;
  while (cursor.Next()) {
    ++count;
    EXPECT_GE(cursor.checkpoint(), checkpoint);
    checkpoint = cursor.checkpoint();
  }
  ASSERT_OK(cursor.status());
  EXPECT_EQ(count, 6u);
  EXPECT_GE(cursor.checkpoint(), checkpoint);
  checkpoint = cursor.checkpoint();

  // Resuming at the checkpoint repeats nothing and sees what came later.
  options.from = checkpoint;
  ASSERT_OK_AND_ASSIGN(auto nothing, ReadAllEvents(store(), options));
  EXPECT_TRUE(nothing.empty());
  ASSERT_OK(store().Append("noise-x", ExpectedVersion::Any(), NewEvents(2, "Noise")));
  ASSERT_OK_AND_ASSIGN(auto r, store().Append("sig-x", ExpectedVersion::Any(), NewEvents(1, "Signal")));
  ASSERT_OK_AND_ASSIGN(auto later, ReadAllEvents(store(), options));
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].position, r.position);
}

TEST_P(ConformanceTest, ReadAllCheckpointPassesEventsAFilterSkipped) {
  ASSERT_OK(store().Append("noise-1", ExpectedVersion::Any(), NewEvents(5, "Noise")));
  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store()));
  ASSERT_FALSE(all.empty());
  ReadAllOptions options;
  options.filter.event_types = {"Nope"};
  ASSERT_OK_AND_ASSIGN(auto cursor, store().ReadAll(options));
  EXPECT_FALSE(cursor.Next());
  ASSERT_OK(cursor.status());
  EXPECT_GT(cursor.checkpoint(), all.back().position);
}

TEST_P(ConformanceTest, CursorNeverReturnsEventsAppendedAfterItWasCreated) {
  ASSERT_OK(store().Append("snap-1", ExpectedVersion::NoStream(), NewEvents(3)));
  Position head = store().HeadPosition();
  ASSERT_OK_AND_ASSIGN(auto all_cursor, store().ReadAll(AllFrom(Position::Start())));
  ASSERT_OK_AND_ASSIGN(auto stream_cursor, store().ReadStream("snap-1"));
  ASSERT_OK(store().Append("snap-1", ExpectedVersion::Exact(2), NewEvents(2)));
  ASSERT_OK(store().Append("snap-2", ExpectedVersion::NoStream(), NewEvents(2)));

  size_t stream_count = 0;
  while (stream_cursor.Next()) ++stream_count;
  ASSERT_OK(stream_cursor.status());
  EXPECT_EQ(stream_count, 3u);
  while (all_cursor.Next()) EXPECT_LT(all_cursor.event().position, head) << all_cursor.event().stream;
  ASSERT_OK(all_cursor.status());
  // A new cursor sees the later events.
  ASSERT_OK_AND_ASSIGN(auto now, ReadStreamEvents(store(), "snap-1"));
  EXPECT_EQ(now.size(), 5u);
}

// ---- Views.

TEST_P(ConformanceTest, ViewStaysValidUntilNextAndToOwnedCopies) {
  std::vector<EventData> sent = {NewEvent("First", std::string(3000, 'x'), "m1"),
                                 NewEvent("Second", std::string(2000, 'y'), "m2")};
  ASSERT_OK(store().Append("view-1", ExpectedVersion::NoStream(), sent));
  ASSERT_OK_AND_ASSIGN(auto cursor, store().ReadStream("view-1"));
  ASSERT_TRUE(cursor.Next());
  RecordedEventView view = cursor.event();

  // Appending more (enough to fill a small segment) must not invalidate the current view.
  for (int i = 0; i < 8; ++i) {
    ASSERT_OK(store().Append("filler-1", ExpectedVersion::Any(),
                             std::vector<EventData>{NewEvent("Filler", std::string(10'000, 'f'))}));
  }
  EXPECT_EQ(view.stream, "view-1");
  EXPECT_EQ(view.type, "First");
  EXPECT_EQ(view.data, sent[0].data);
  EXPECT_EQ(view.metadata, "m1");
  RecordedEvent owned = view.ToOwned();

  ASSERT_TRUE(cursor.Next());
  EXPECT_EQ(cursor.event().type, "Second");
  EXPECT_EQ(cursor.event().data, sent[1].data);
  EXPECT_FALSE(cursor.Next());
  ASSERT_OK(cursor.status());
  cursor = EventCursor(nullptr);  // the owned copy outlives the cursor
  EXPECT_EQ(owned.stream, "view-1");
  EXPECT_EQ(owned.version, 0u);
  EXPECT_EQ(owned.id, sent[0].id);
  EXPECT_EQ(owned.type, "First");
  EXPECT_EQ(owned.data, sent[0].data);
  EXPECT_EQ(owned.metadata, "m1");
  RecordedEventView back = owned.View();
  EXPECT_EQ(back.data, sent[0].data);
  EXPECT_EQ(back.position, owned.position);
}

// ---- Volume: many appends of mixed sizes (on "file-small-segments" they cross many segments).

TEST_P(ConformanceTest, ManyAppendsOfMixedSizesReadBackWhole) {
  Options options = BaseOptions();
  options.sync = SyncMode::kNone;  // about layout across segments, not durability: keep it fast
  ASSERT_TRUE(OpenFresh(options));
  std::mt19937 rng(20261126);
  std::uniform_int_distribution<size_t> size(0, 12'000);
  std::uniform_int_distribution<int> per_append(1, 3);
  std::uniform_int_distribution<int> which(0, 3);
  Position head_before = store().HeadPosition();
  std::map<std::string, std::vector<EventData>> sent;
  std::vector<Uuid> order;
  uint64_t total_bytes = 0;
  for (int append = 0; append < 80; ++append) {
    std::string stream = "bulk-" + std::to_string(which(rng));
    std::vector<EventData> batch;
    int n = per_append(rng);
    for (int i = 0; i < n; ++i) {
      std::string data(size(rng), static_cast<char>('a' + append % 26));
      total_bytes += data.size();
      batch.push_back(NewEvent("Bulk", data));
      batch.back().content_type = ContentType::kBytes;
    }
    ASSERT_OK(store().Append(stream, ExpectedVersion::Any(), batch));
    for (auto& e : batch) {
      order.push_back(e.id);
      sent[stream].push_back(e);
    }
  }
  ASSERT_GT(total_bytes, 4 * kSmallSegmentBytes);

  ASSERT_OK_AND_ASSIGN(auto forward, ReadAllEvents(store(), AllFrom(head_before)));
  EXPECT_EQ(Ids(forward), order);
  for (size_t i = 1; i < forward.size(); ++i) ASSERT_LT(forward[i - 1].position, forward[i].position);
  ASSERT_OK_AND_ASSIGN(auto backward, ReadAllEvents(store(), AllFrom(Position::End(), ReadDirection::kBackward)));
  backward.resize(std::min(backward.size(), forward.size()));
  EXPECT_TRUE(SameEvents(Reversed(forward), backward));

  // Reads that start in the middle of the log, on either side of segment boundaries.
  for (size_t k = 0; k < forward.size(); k += 7) {
    ReadAllOptions next3 = AllFrom(forward[k].position);
    next3.max_count = 3;
    ASSERT_OK_AND_ASSIGN(auto f3, ReadAllEvents(store(), next3));
    const size_t end = std::min(forward.size(), k + 3);
    EXPECT_TRUE(SameEvents(std::vector<RecordedEvent>(forward.begin() + static_cast<ptrdiff_t>(k),
                                                      forward.begin() + static_cast<ptrdiff_t>(end)),
                           f3))
        << "forward from event " << k;
    ReadAllOptions prev3 = AllFrom(forward[k].position, ReadDirection::kBackward);
    prev3.max_count = 3;
    ASSERT_OK_AND_ASSIGN(auto b3, ReadAllEvents(store(), prev3));
    const size_t begin = k >= 3 ? k - 3 : 0;
    std::vector<RecordedEvent> expected(forward.begin() + static_cast<ptrdiff_t>(begin),
                                        forward.begin() + static_cast<ptrdiff_t>(k));
    if (b3.size() > expected.size()) b3.resize(expected.size());  // events from before this test
    EXPECT_TRUE(SameEvents(Reversed(expected), b3)) << "backward from event " << k;
  }

  for (const auto& [stream, events] : sent) {
    ASSERT_OK_AND_ASSIGN(auto read, ReadStreamEvents(store(), stream));
    ASSERT_EQ(read.size(), events.size()) << stream;
    EXPECT_EQ(Versions(read), Range(0, events.size())) << stream;
    for (size_t i = 0; i < read.size(); ++i) {
      EXPECT_EQ(read[i].id, events[i].id);
      EXPECT_EQ(read[i].data, events[i].data);
    }
    ASSERT_OK_AND_ASSIGN(auto back, ReadStreamEvents(store(), stream, Backward()));
    EXPECT_TRUE(SameEvents(Reversed(read), back)) << stream;
    ReadStreamOptions middle;
    middle.from = events.size() / 2;
    ASSERT_OK_AND_ASSIGN(auto tail, ReadStreamEvents(store(), stream, middle));
    EXPECT_TRUE(SameEvents(std::vector<RecordedEvent>(read.begin() + static_cast<ptrdiff_t>(events.size() / 2),
                                                      read.end()),
                           tail))
        << stream;
  }
}

}  // namespace
}  // namespace cairn::conformance

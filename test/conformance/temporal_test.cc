// Proves the temporal contract: recorded_at is the store clock's time and never decreases with
// position, PositionAtTime and as_of reads see the store as it was, by appending under a manual clock.
#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
const Timestamp kT1{kClockStart.nanos + 10 * kSecond};
const Timestamp kT2{kClockStart.nanos + 20 * kSecond};
const Timestamp kT3{kClockStart.nanos + 30 * kSecond};

TEST_P(ConformanceTest, RecordedAtIsTheClocksTimeAndNeverDecreases) {
  CONF_REQUIRE_CLOCK();
  Position head = store().HeadPosition();
  backend().SetClock(kT1);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::Any(), NewEvents(2)));
  backend().SetClock(kT2);
  ASSERT_OK(store().Append("time-2", ExpectedVersion::Any(), NewEvents(1)));
  backend().SetClock(kT3);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::Any(), NewEvents(1)));
  // The clock goes back: recorded_at stays at the latest time already recorded.
  backend().SetClock(Timestamp{kT1.nanos - 5 * kSecond});
  ASSERT_OK(store().Append("time-2", ExpectedVersion::Any(), NewEvents(2)));
  backend().SetClock(Timestamp{kT3.nanos + kSecond});
  ASSERT_OK(store().Append("time-3", ExpectedVersion::Any(), NewEvents(1)));

  ASSERT_OK_AND_ASSIGN(auto events, ReadAllEvents(store(), AllFrom(head)));
  ASSERT_EQ(events.size(), 7u);
  std::vector<Timestamp> expected = {kT1, kT1, kT2, kT3, kT3, kT3, Timestamp{kT3.nanos + kSecond}};
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].recorded_at, expected[i]) << "event " << i;

  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store()));
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LE(all[i - 1].recorded_at, all[i].recorded_at) << i;
  // Stream reads report the same times.
  ASSERT_OK_AND_ASSIGN(auto stream, ReadStreamEvents(store(), "time-2"));
  ASSERT_EQ(stream.size(), 3u);
  EXPECT_EQ(stream[0].recorded_at, kT2);
  EXPECT_EQ(stream[1].recorded_at, kT3);
  EXPECT_EQ(stream[2].recorded_at, kT3);
}

TEST_P(ConformanceTest, PositionAtTimeIsTheFirstEventRecordedAfterIt) {
  CONF_REQUIRE_CLOCK();
  backend().SetClock(kT1);
  ASSERT_OK_AND_ASSIGN(auto r1, store().Append("time-1", ExpectedVersion::Any(), NewEvents(2)));
  backend().SetClock(kT2);
  ASSERT_OK_AND_ASSIGN(auto r2, store().Append("time-2", ExpectedVersion::Any(), NewEvents(1)));
  backend().SetClock(kT3);
  ASSERT_OK_AND_ASSIGN(auto r3, store().Append("time-1", ExpectedVersion::Any(), NewEvents(1)));
  backend().SetClock(kT2);  // recorded at kT3 (the clock went back)
  ASSERT_OK(store().Append("time-3", ExpectedVersion::Any(), NewEvents(1)));

  auto at = [&](Timestamp t) {
    auto p = store().PositionAtTime(t);
    EXPECT_OK(p);
    return p.ok() ? *p : Position::Start();
  };
  EXPECT_EQ(at(Timestamp{kT1.nanos - 1}), r1.position);
  EXPECT_EQ(at(kT1), r2.position);
  EXPECT_EQ(at(Timestamp{kT1.nanos + kSecond}), r2.position);
  EXPECT_EQ(at(Timestamp{kT2.nanos - 1}), r2.position);
  EXPECT_EQ(at(kT2), r3.position);
  EXPECT_EQ(at(kT3), Position::End());
  EXPECT_EQ(at(Timestamp{kT3.nanos + 3600 * kSecond}), Position::End());

  // $all backward from it is the store as it was at that time.
  ASSERT_OK_AND_ASSIGN(auto before_t2, ReadAllEvents(store(), AllFrom(at(kT2), ReadDirection::kBackward)));
  ASSERT_GE(before_t2.size(), 3u);
  EXPECT_EQ(before_t2[0].position, r2.position);
  for (const auto& e : before_t2) EXPECT_LE(e.recorded_at, kT2);
}

TEST_P(ConformanceTest, ReadStreamAsOfSeesOnlyEventsRecordedByThen) {
  CONF_REQUIRE_CLOCK();
  backend().SetClock(kT1);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::NoStream(), NewEvents(2)));
  backend().SetClock(kT2);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::Exact(1), NewEvents(1)));
  ASSERT_OK(store().Append("time-2", ExpectedVersion::NoStream(), NewEvents(1)));
  backend().SetClock(kT3);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::Exact(2), NewEvents(2)));

  ReadStreamOptions forward;
  forward.as_of = kT2;
  ASSERT_OK_AND_ASSIGN(auto f, ReadStreamEvents(store(), "time-1", forward));
  EXPECT_EQ(Versions(f), Range(0, 3));
  ReadStreamOptions backward = Backward();
  backward.as_of = kT2;
  ASSERT_OK_AND_ASSIGN(auto b, ReadStreamEvents(store(), "time-1", backward));
  EXPECT_EQ(Versions(b), Reversed(Range(0, 3)));
  backward.from = 4;
  ASSERT_OK_AND_ASSIGN(auto b4, ReadStreamEvents(store(), "time-1", backward));
  EXPECT_EQ(Versions(b4), Reversed(Range(0, 3)));
  backward.from = 1;
  ASSERT_OK_AND_ASSIGN(auto b1, ReadStreamEvents(store(), "time-1", backward));
  EXPECT_EQ(Versions(b1), Reversed(Range(0, 2)));

  forward.as_of = Timestamp{kT2.nanos + kSecond};
  ASSERT_OK_AND_ASSIGN(auto between, ReadStreamEvents(store(), "time-1", forward));
  EXPECT_EQ(Versions(between), Range(0, 3));
  forward.as_of = kT1;
  ASSERT_OK_AND_ASSIGN(auto at_t1, ReadStreamEvents(store(), "time-1", forward));
  EXPECT_EQ(Versions(at_t1), Range(0, 2));
  forward.as_of = kT3;
  ASSERT_OK_AND_ASSIGN(auto at_t3, ReadStreamEvents(store(), "time-1", forward));
  EXPECT_EQ(Versions(at_t3), Range(0, 5));
  forward.as_of = kT2;
  forward.from = 1;
  forward.max_count = 1;
  ASSERT_OK_AND_ASSIGN(auto one, ReadStreamEvents(store(), "time-1", forward));
  EXPECT_EQ(Versions(one), Range(1, 1));
}

TEST_P(ConformanceTest, ReadAllAsOfSeesOnlyEventsRecordedByThen) {
  CONF_REQUIRE_CLOCK();
  Position head = store().HeadPosition();
  backend().SetClock(kT1);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::Any(), NewEvents(2)));
  backend().SetClock(kT2);
  ASSERT_OK(store().Append("time-2", ExpectedVersion::Any(), NewEvents(1)));
  backend().SetClock(kT3);
  ASSERT_OK(store().Append("time-1", ExpectedVersion::Any(), NewEvents(2)));
  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), AllFrom(head)));
  ASSERT_EQ(all.size(), 5u);

  ReadAllOptions forward = AllFrom(head);
  forward.as_of = kT2;
  ASSERT_OK_AND_ASSIGN(auto f, ReadAllEvents(store(), forward));
  EXPECT_TRUE(SameEvents(std::vector<RecordedEvent>(all.begin(), all.begin() + 3), f));

  ReadAllOptions backward = AllFrom(Position::End(), ReadDirection::kBackward);
  backward.as_of = kT2;
  ASSERT_OK_AND_ASSIGN(auto b, ReadAllEvents(store(), backward));
  ASSERT_GE(b.size(), 3u);
  b.resize(3);
  EXPECT_TRUE(SameEvents(Reversed(std::vector<RecordedEvent>(all.begin(), all.begin() + 3)), b));

  forward.as_of = kT1;
  forward.filter.stream_prefixes = {"time-"};
  ASSERT_OK_AND_ASSIGN(auto t1, ReadAllEvents(store(), forward));
  EXPECT_TRUE(SameEvents(std::vector<RecordedEvent>(all.begin(), all.begin() + 2), t1));
}

}  // namespace
}  // namespace cairn::conformance

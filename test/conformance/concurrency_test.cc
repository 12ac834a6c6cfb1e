// Proves the contract under concurrent writers: optimistic concurrency lets exactly one writer win
// each version, and $all never shows a gap to a live reader, by racing threads and checking what they saw.
#include <atomic>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

constexpr int kThreads = 16;

// Many single-event commits that must happen one after another: the version check is under test,
// not durability (the crash suite covers that), so skip the fdatasync to keep the test fast.
Options Unsynced(Options options) {
  options.sync = SyncMode::kNone;
  return options;
}

TEST_P(ConformanceTest, ContendedExactAppendsToOneStreamLandExactlyOnce) {
  constexpr int kAppendsPerThread = 200;
  ASSERT_TRUE(OpenFresh(Unsynced(BaseOptions())));
  const std::string stream = "counter-1";

  struct Ack {
    Uuid id;
    AppendResult result;
  };
  std::mutex mu;
  std::vector<Ack> acks;
  std::vector<std::string> errors;
  std::atomic<uint64_t> conflicts{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kAppendsPerThread; ++i) {
        EventData e = NewEvent("Ticked", R"({"thread":)" + std::to_string(t) + "}");
        while (true) {
          auto info = store().GetStreamInfo(stream);
          if (!info.ok()) {
            std::lock_guard lock(mu);
            errors.push_back(info.status().ToString());
            return;
          }
          ExpectedVersion expected =
              info->last_version ? ExpectedVersion::Exact(*info->last_version) : ExpectedVersion::NoStream();
          auto r = store().Append(stream, expected, std::vector<EventData>{e});
          if (r.ok()) {
            std::lock_guard lock(mu);
            acks.push_back({e.id, *r});
            break;
          }
          if (r.status().IsConflict()) {
            conflicts.fetch_add(1);
            continue;
          }
          std::lock_guard lock(mu);
          errors.push_back(r.status().ToString());
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();

  const size_t total = static_cast<size_t>(kThreads) * kAppendsPerThread;
  ASSERT_EQ(acks.size(), total);
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), stream));
  ASSERT_EQ(events.size(), total);
  EXPECT_EQ(Versions(events), Range(0, total));
  std::map<Uuid, size_t> seen;
  for (const auto& e : events) ++seen[e.id];
  for (const auto& ack : acks) {
    EXPECT_EQ(seen[ack.id], 1u) << ack.id.ToString();
    ASSERT_LT(ack.result.first_version, events.size());
    const RecordedEvent& at = events[ack.result.first_version];
    EXPECT_EQ(at.id, ack.id) << "version " << ack.result.first_version;
    EXPECT_EQ(at.position, ack.result.position) << "version " << ack.result.first_version;
    EXPECT_EQ(ack.result.next_version, ack.result.first_version + 1);
  }
  EXPECT_EQ(seen.size(), total);
  ASSERT_OK_AND_ASSIGN(auto info, store().GetStreamInfo(stream));
  EXPECT_EQ(info.last_version, total - 1);
}

TEST_P(ConformanceTest, RacingNoStreamAppendsHaveExactlyOneWinner) {
  for (int round = 0; round < 4; ++round) {
    const std::string stream = "race-" + std::to_string(round);
    std::latch start(kThreads);
    std::atomic<int> wins{0};
    std::atomic<int> conflicts{0};
    std::mutex mu;
    std::vector<std::string> others;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        std::vector<EventData> events = NewEvents(2, "Created");
        start.arrive_and_wait();
        auto r = store().Append(stream, ExpectedVersion::NoStream(), events);
        if (r.ok()) {
          wins.fetch_add(1);
        } else if (IsWrongExpectedVersion(r, 1)) {
          conflicts.fetch_add(1);
        } else {
          std::lock_guard lock(mu);
          others.push_back(r.status().ToString());
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    EXPECT_EQ(conflicts.load(), kThreads - 1) << "round " << round;
    EXPECT_TRUE(others.empty()) << others.front();
    ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), stream));
    EXPECT_EQ(Versions(events), Range(0, 2));
  }
}

TEST_P(ConformanceTest, ConcurrentWritersNeverShowALiveReaderAGap) {
  constexpr int kWriters = 8;
  constexpr int kAppendsPerWriter = 60;
  constexpr int kEventsPerAppend = 2;
  ASSERT_TRUE(OpenFresh(Unsynced(BaseOptions())));
  const Position head_before = store().HeadPosition();

  std::atomic<bool> writers_done{false};
  std::vector<RecordedEvent> tailed;
  std::vector<std::string> reader_errors;
  // Tails $all from where each read stopped; checks order as it goes.
  std::thread reader([&] {
    Position resume = head_before;
    std::map<std::string, StreamVersion> next_version;
    bool last_pass = false;
    while (true) {
      last_pass = writers_done.load();
      auto cursor = store().ReadAll(AllFrom(resume));
      if (!cursor.ok()) {
        reader_errors.push_back(cursor.status().ToString());
        return;
      }
      while (cursor->Next()) {
        RecordedEvent e = cursor->event().ToOwned();
        if (!tailed.empty() && e.position <= tailed.back().position) {
          reader_errors.push_back("position went back at " + e.stream);
          return;
        }
        StreamVersion& expected = next_version[e.stream];
        if (e.version != expected) {
          reader_errors.push_back("gap in " + e.stream + ": saw version " + std::to_string(e.version) +
                                  ", expected " + std::to_string(expected));
          return;
        }
        ++expected;
        tailed.push_back(std::move(e));
      }
      if (!cursor->status().ok()) {
        reader_errors.push_back(cursor->status().ToString());
        return;
      }
      resume = cursor->checkpoint();
      if (last_pass) return;
    }
  });

  std::latch start(kWriters);
  std::mutex mu;
  std::vector<std::string> writer_errors;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      const std::string stream = "writer-" + std::to_string(w);
      start.arrive_and_wait();
      for (int i = 0; i < kAppendsPerWriter; ++i) {
        ExpectedVersion expected =
            i == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(static_cast<StreamVersion>(i * kEventsPerAppend - 1));
        auto r = store().Append(stream, expected, NewEvents(kEventsPerAppend));
        if (!r.ok()) {
          std::lock_guard lock(mu);
          writer_errors.push_back(r.status().ToString());
          return;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  writers_done.store(true);
  reader.join();
  ASSERT_TRUE(writer_errors.empty()) << writer_errors.front();
  ASSERT_TRUE(reader_errors.empty()) << reader_errors.front();

  ASSERT_OK_AND_ASSIGN(auto all, ReadAllEvents(store(), AllFrom(head_before)));
  const size_t total = static_cast<size_t>(kWriters) * kAppendsPerWriter * kEventsPerAppend;
  ASSERT_EQ(all.size(), total);
  for (size_t i = 1; i < all.size(); ++i) ASSERT_LT(all[i - 1].position, all[i].position) << i;
  std::map<std::string, std::vector<StreamVersion>> versions;
  for (const auto& e : all) versions[e.stream].push_back(e.version);
  ASSERT_EQ(versions.size(), static_cast<size_t>(kWriters));
  for (const auto& [stream, v] : versions) {
    EXPECT_EQ(v, Range(0, kAppendsPerWriter * kEventsPerAppend)) << stream;
  }
  // The live reader saw exactly the final log: nothing skipped, nothing extra.
  EXPECT_TRUE(SameEvents(all, tailed));
}

TEST_P(ConformanceTest, ConcurrentReadersSeeConsistentStreams) {
  ASSERT_TRUE(OpenFresh(Unsynced(BaseOptions())));
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto events = ReadStreamEvents(store(), "shared-1", Backward());
        if (!events.ok()) {
          if (!IsError(events, kNotFound, kStreamNotFound)) bad.fetch_add(1);
          continue;
        }
        // Backward from the end: versions count down to 0 without a gap.
        for (size_t i = 0; i < events->size(); ++i) {
          if ((*events)[i].version != events->size() - 1 - i) bad.fetch_add(1);
        }
      }
    });
  }
  Status appended;
  for (int i = 0; i < 100 && appended.ok(); ++i) appended = store().Append("shared-1", ExpectedVersion::Any(), NewEvents(3)).status();
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_OK(appended);
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace cairn::conformance

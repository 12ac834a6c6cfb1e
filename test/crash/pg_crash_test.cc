// Proves that on PostgreSQL every acknowledged append survives a crash of the server: 10 rounds of
// `pg_ctl stop -m immediate` (no checkpoint, no clean shutdown) in the middle of durable appends,
// then a restart; every acknowledged event is there exactly once, positions stay dense and each
// stream's versions have no gap. How: a throwaway cluster of its own (test/postgres/pg_cluster.sh
// in a temporary directory, so that the shared test cluster is never killed), a writer thread
// appending through one Store that reconnects by itself, and a check after each restart.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "util/pg_test_util.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

testing::CommandResult Cluster(const std::string& command, const std::string& dir) {
  return testing::RunCommand({"/bin/bash", testing::PgClusterScript(), command, dir});
}

TEST(PgCrashTest, AcknowledgedAppendsSurviveImmediateStops) {
  constexpr int kRounds = 10;
  testing::TempDir tmp;
  // The server may run as the postgres user (when the test runs as root): it must reach the dir.
  ASSERT_EQ(chmod(tmp.path().c_str(), 0755), 0);
  const std::string dir = tmp.Sub("cluster");
  auto started = Cluster("start", dir);
  if (started.exit_code != 0) GTEST_SKIP() << "cannot start a PostgreSQL cluster: " << started.err;
  struct Destroy {
    std::string dir;
    ~Destroy() { (void)Cluster("destroy", dir); }
  } destroy{dir};
  std::string url = started.out.substr(0, started.out.find('\n'));
  url += "?schema=crash&connect_timeout=5";

  auto store = Store::Open(url);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::mt19937 rng(20261126);
  std::map<Uuid, std::pair<std::string, int>> acked;  // id -> (stream, round)
  uint64_t failures = 0;

  for (int round = 0; round < kRounds; ++round) {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> acked_after_restart{0};
    std::atomic<bool> restarted{false};
    std::mutex mu;
    std::thread writer([&] {
      std::mt19937 wrng(static_cast<unsigned>(round));
      uint64_t i = 0;
      while (!stop.load()) {
        const std::string stream = fmt::format("crash-{}", wrng() % 5);
        std::vector<EventData> batch;
        const int n = 1 + static_cast<int>(wrng() % 3);
        for (int k = 0; k < n; ++k) {
          EventData e;
          e.id = Uuid::V7();
          e.type = "Crashed";
          e.data = fmt::format(R"({{"round":{},"i":{}}})", round, i++);
          batch.push_back(std::move(e));
        }
        auto r = (*store)->Append(stream, ExpectedVersion::Any(), batch);
        std::lock_guard lock(mu);
        if (r.ok()) {
          for (const auto& e : batch) acked[e.id] = {stream, round};
          if (restarted.load()) acked_after_restart++;
        } else {
          // Not acknowledged: may or may not be stored (the crash may have come during COMMIT).
          failures++;
          std::this_thread::sleep_for(milliseconds(20));
        }
      }
    });
    std::this_thread::sleep_for(milliseconds(200 + rng() % 400));
    auto killed = Cluster("kill", dir);
    ASSERT_EQ(killed.exit_code, 0) << killed.err;
    std::this_thread::sleep_for(milliseconds(100));
    auto again = Cluster("restart", dir);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    restarted = true;
    // The store carries on by itself once the server is back.
    for (int wait = 0; wait < 600 && acked_after_restart.load() < 3; ++wait) std::this_thread::sleep_for(milliseconds(50));
    stop = true;
    writer.join();
    ASSERT_GE(acked_after_restart.load(), 3u) << "round " << round << ": no append succeeded after the restart";

    // Every acknowledged event so far is stored exactly once; positions are dense.
    auto cursor = (*store)->ReadAll({});
    ASSERT_TRUE(cursor.ok()) << cursor.status().ToString();
    auto all = cursor->Collect();
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    std::map<Uuid, int> count;
    std::map<std::string, StreamVersion> next;
    for (size_t k = 0; k < all->size(); ++k) {
      const RecordedEvent& e = (*all)[k];
      ASSERT_EQ(e.position.value(), k + 1) << "round " << round;
      count[e.id]++;
      ASSERT_EQ(e.version, next[e.stream]++) << e.stream << " round " << round;
    }
    std::lock_guard lock(mu);
    for (const auto& [id, where] : acked) {
      ASSERT_EQ(count[id], 1) << "acknowledged event " << id.ToString() << " of " << where.first << " (round "
                              << where.second << ") is missing after round " << round;
    }
  }
  EXPECT_GT(acked.size(), 0u);
  std::printf("crash test: %zu acknowledged events, %llu appends failed around %d crashes\n", acked.size(),
              static_cast<unsigned long long>(failures), kRounds);
}

}  // namespace
}  // namespace cairn

// Proves that a projection applies every event exactly once across kill -9: after 20 kills of
// `cairn project` at random moments (with new events appended between runs), the read model
// equals a fresh rebuild. How: a non-idempotent read model (per-customer counters and sums, so a
// double apply or a miss changes a number), a seeded loop of SIGKILLs, then a last run to the end
// and a from-scratch run into another file; both SQLite files are compared row by row.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "cairn/store.h"
#include "util/sqlite_dump.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kKills = 20;
constexpr int kInitialEvents = 20'000;
constexpr int kEventsPerCycle = 2'000;
constexpr int kCustomers = 50;

constexpr const char* kSpec = R"json({
  "name": "customer_totals",
  "tables": [
    {"name": "customer_totals",
     "create": "CREATE TABLE customer_totals (customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, total INTEGER NOT NULL, shipped INTEGER NOT NULL DEFAULT 0)"},
    {"name": "orders",
     "create": "CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL, status TEXT NOT NULL, position INTEGER NOT NULL)"}
  ],
  "filter": {"categories": ["order"]},
  "on": {
    "OrderPlaced": [
      {"sql": "INSERT INTO customer_totals (customer, orders, total) VALUES (?1, 1, ?2) ON CONFLICT(customer) DO UPDATE SET orders = orders + 1, total = total + excluded.total",
       "params": ["data.customer", "data.total"]},
      {"sql": "INSERT INTO orders VALUES (?1, ?2, 'placed', ?3)", "params": ["stream", "data.customer", "position"]}
    ],
    "OrderShipped": [
      {"sql": "UPDATE customer_totals SET shipped = shipped + 1 WHERE customer = ?1", "params": ["data.customer"]},
      {"sql": "UPDATE orders SET status = 'shipped' WHERE order_id = ?1", "params": ["stream"]}
    ]
  }
})json";

std::string Dump(const std::string& path, const std::string& query) { return testing::DumpSqlite(path, query); }

class ProjectionKillTest : public ::testing::Test {
 protected:
  std::string Db() const { return "file:" + dir_.Sub("data"); }

  // Appends `count` events: orders placed, some shipped, and noise the spec's filter skips.
  void AppendEvents(int count, std::mt19937_64& rng) {
    // Without fsync: the events only need to outlive this process, not the machine, and one
    // fsync per event would make the setup, not the kills, the slow part.
    auto store = Store::Open(Db() + "?sync=none");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < count; ++i) {
      EventData e;
      const uint64_t r = rng() % 10;
      std::string stream;
      if (r < 6 || placed_ == 0) {
        e.type = "OrderPlaced";
        stream = fmt::format("order-{}", placed_++);
        e.data = fmt::format(R"({{"customer":"c{}","total":{}}})", rng() % kCustomers, rng() % 1000);
      } else if (r < 8) {
        e.type = "OrderShipped";
        stream = fmt::format("order-{}", rng() % placed_);
        e.data = fmt::format(R"({{"customer":"c{}"}})", rng() % kCustomers);
      } else {
        e.type = "OrderPlaced";  // right type, wrong category: filtered out
        stream = fmt::format("quote-{}", rng() % 100);
        e.data = R"({"customer":"nobody","total":1})";
      }
      ASSERT_TRUE((*store)->Append(stream, ExpectedVersion::Any(), {&e, 1}).ok());
    }
    ASSERT_TRUE((*store)->Close().ok());
  }

  // Starts `cairn project` on `sink`; returns its pid.
  int StartProject(const std::string& sink, uint32_t batch) {
    const std::string err_path = dir_.Sub("project-stderr.txt");
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int pid = testing::SpawnProcess({testing::CliPath(), "project", "--db", Db(), "--spec", dir_.Sub("spec.json"),
                                     "--sink", "sqlite:" + sink, "--batch", std::to_string(batch)},
                                    null_fd, null_fd, err_fd);
    close(null_fd);
    close(err_fd);
    return pid;
  }

  static int Wait(int pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string Stderr() const {
    std::ifstream in(dir_.Sub("project-stderr.txt"));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  testing::TempDir dir_;
  int placed_ = 0;
};

TEST_F(ProjectionKillTest, ReadModelEqualsAFreshRebuildAfterKills) {
  uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("CAIRN_CRASH_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("projection kill seed: %llu (rerun with CAIRN_CRASH_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  {
    std::ofstream spec(dir_.Sub("spec.json"));
    spec << kSpec;
  }
  AppendEvents(kInitialEvents, rng);

  // How long a whole run takes here: the kills land within it.
  const std::string scratch = dir_.Sub("scratch.db");
  auto start = Clock::now();
  int pid = StartProject(scratch, 100);
  ASSERT_EQ(Wait(pid), 0) << Stderr();
  const auto full_run_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  std::printf("a full run over %d events: %lld ms\n", kInitialEvents, static_cast<long long>(full_run_ms));

  const std::string model = dir_.Sub("model.db");
  int killed = 0, finished = 0;
  for (int cycle = 0; cycle < kKills; ++cycle) {
    SCOPED_TRACE(fmt::format("cycle {} (seed {})", cycle, seed));
    if (cycle > 0) AppendEvents(kEventsPerCycle, rng);
    const uint32_t batch = 1 + static_cast<uint32_t>(rng() % 300);
    const auto delay = std::chrono::milliseconds(rng() % static_cast<uint64_t>(std::max<int64_t>(1, full_run_ms / 2)));
    pid = StartProject(model, batch);
    std::this_thread::sleep_for(delay);
    kill(pid, SIGKILL);
    const int code = Wait(pid);
    if (code == 128 + SIGKILL) {
      ++killed;
    } else {
      ASSERT_EQ(code, 0) << Stderr();
      ++finished;
    }
  }
  std::printf("%d runs killed, %d finished before their kill\n", killed, finished);
  EXPECT_GE(killed, kKills / 2) << "most kills should land mid-run";

  pid = StartProject(model, 50);
  ASSERT_EQ(Wait(pid), 0) << Stderr();
  const std::string fresh = dir_.Sub("fresh.db");
  pid = StartProject(fresh, 1000);
  ASSERT_EQ(Wait(pid), 0) << Stderr();

  for (const char* query : {"SELECT * FROM customer_totals ORDER BY customer", "SELECT * FROM orders ORDER BY order_id",
                            "SELECT checkpoint, events_handled, events_parked FROM cairn_projections"}) {
    const std::string a = Dump(model, query), b = Dump(fresh, query);
    ASSERT_FALSE(b.empty()) << query;
    EXPECT_EQ(a, b) << query;
  }
  // And the fresh rebuild is right: one row per order placed.
  EXPECT_EQ(Dump(fresh, "SELECT count(*) FROM orders"), fmt::format("{}\n", placed_));
}

}  // namespace
}  // namespace cairn

// Read-side benchmarks (docs/performance.md, "Subscriptions and projections"):
//   catch-up   events/s a $all subscription delivers from history, in process
//   live       latency from an acknowledged append to the subscriber's handler, at a set rate
//   project    events/s a declarative SQL projection applies into SQLite (batched transactions)
//
//   cairn_subscription_bench [--workload catch-up|live|project|all] [--events N] [--rate N]
//                            [--seconds S] [--dir DIR]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cairn/projection.h"
#include "cairn/store.h"
#include "cairn/subscription.h"

namespace {

using namespace cairn;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU seconds of this thread: the machine's cores are shared, so rates are also given per CPU second.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void Die(const Status& s) {
  std::fprintf(stderr, "bench: %s\n", s.ToString().c_str());
  std::exit(1);
}

// Fills a store with `n` order events (~100 bytes of JSON each) in appends of 100.
void Fill(Store& store, uint64_t n) {
  std::vector<EventData> batch(100);
  for (uint64_t i = 0; i < n; i += batch.size()) {
    const size_t count = std::min<uint64_t>(batch.size(), n - i);
    for (size_t k = 0; k < count; ++k) {
      const uint64_t id = i + k;
      batch[k].type = "OrderPlaced";
      batch[k].data = fmt::format(R"({{"order_id":"o-{}","customer":"c{}","total":{},"currency":"EUR"}})", id,
                                  id % 1000, id % 997);
    }
    auto r = store.Append(fmt::format("order-{}", i / 100), ExpectedVersion::Any(), std::span(batch.data(), count));
    if (!r.ok()) Die(r.status());
  }
}

void CatchUp(uint64_t events) {
  auto store = Store::Open("memory:?sync=none&segment_size=1073741824");
  if (!store.ok()) Die(store.status());
  Fill(**store, events);
  for (int run = 0; run < 3; ++run) {
    // The baseline: a plain $all cursor over the same events.
    {
      auto cursor = (*store)->ReadAll();
      if (!cursor.ok()) Die(cursor.status());
      uint64_t n = 0, bytes = 0;
      const auto start = Clock::now();
      const double cpu0 = ThreadCpuSeconds();
      while (cursor->Next()) {
        ++n;
        bytes += cursor->event().data.size();
      }
      const double s = Seconds(Clock::now() - start), cpu = ThreadCpuSeconds() - cpu0;
      std::printf("read $all run %d: %llu events in %.3f s = %.2f M events/s (%.2f M per CPU second)\n", run,
                  static_cast<unsigned long long>(n), s, n / s / 1e6, n / cpu / 1e6);
    }
    auto sub = SubscribeToAll(**store);
    if (!sub.ok()) Die(sub.status());
    uint64_t seen = 0, bytes = 0;
    const double cpu0 = ThreadCpuSeconds();
    const auto start = Clock::now();
    while ((*sub)->Next()) {
      const SubscriptionMessage& m = (*sub)->message();
      if (m.kind == SubscriptionMessage::Kind::kCaughtUp) break;
      ++seen;
      bytes += m.event.data.size();
    }
    const double s = Seconds(Clock::now() - start), cpu = ThreadCpuSeconds() - cpu0;
    if (seen != events) Die(Status::Internal(fmt::format("caught up after {} of {} events", seen, events)));
    std::printf("catch-up  run %d: %llu events in %.3f s = %.2f M events/s (%.2f M per CPU second, %.0f MB/s of data)\n",
                run, static_cast<unsigned long long>(seen), s, seen / s / 1e6, seen / cpu / 1e6, bytes / s / 1e6);
  }
}

void Live(const std::string& url, uint64_t rate, double seconds) {
  auto store = Store::Open(url);
  if (!store.ok()) Die(store.status());
  const uint64_t total = static_cast<uint64_t>(rate * seconds);
  std::vector<Clock::time_point> acked(total), handled(total);
  std::vector<std::atomic<bool>> ack_seen(total);
  std::atomic<uint64_t> handled_count{0};

  auto sub = SubscribeToAll(**store, {.from = AllFrom::Now()});
  if (!sub.ok()) Die(sub.status());
  SubscriptionRunner runner(std::move(*sub), [&](const SubscriptionMessage& m) {
    if (m.kind != SubscriptionMessage::Kind::kEvent) return Status::Ok();
    const auto now = Clock::now();
    // The event's data is its sequence number.
    const uint64_t seq = std::stoull(std::string(m.event.data));
    handled[seq] = now;
    handled_count.fetch_add(1, std::memory_order_release);
    return Status::Ok();
  });

  // One event per append, paced at `rate`, without waiting for each ack (AppendAsync), as many
  // independent clients would.
  const auto start = Clock::now();
  for (uint64_t i = 0; i < total; ++i) {
    const auto due = start + std::chrono::nanoseconds(static_cast<int64_t>(i * 1e9 / rate));
    while (Clock::now() < due) {
      if (due - Clock::now() > std::chrono::microseconds(200)) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    EventData e;
    e.type = "Tick";
    e.data = std::to_string(i);
    (*store)->AppendAsync("live-1", ExpectedVersion::Any(), {&e, 1}, [&, i](Result<AppendResult> r) {
      if (!r.ok()) Die(r.status());
      acked[i] = Clock::now();
      ack_seen[i].store(true, std::memory_order_release);
    });
  }
  while (handled_count.load(std::memory_order_acquire) < total) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (uint64_t i = 0; i < total; ++i) {
    while (!ack_seen[i].load(std::memory_order_acquire)) std::this_thread::yield();
  }
  (void)runner.Stop();
  const double elapsed = Seconds(Clock::now() - start);

  // Latency from the acknowledgement to the handler. The handler can run before the appender's
  // callback (the head is published before callers are completed): that counts as 0.
  std::vector<double> us(total);
  for (uint64_t i = 0; i < total; ++i) {
    us[i] = std::max(0.0, std::chrono::duration<double, std::micro>(handled[i] - acked[i]).count());
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min<size_t>(us.size() - 1, static_cast<size_t>(p * us.size()))]; };
  std::printf("live %s: %llu events at %llu/s (%.1f s): ack->handler p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
              url.c_str(), static_cast<unsigned long long>(total), static_cast<unsigned long long>(rate), elapsed,
              pct(0.50), pct(0.99), pct(0.999), us.back());
}

constexpr const char* kProjectSpec = R"json({
  "name": "customer_totals",
  "tables": [
    {"name": "customer_totals", "create": "CREATE TABLE customer_totals (customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, total INTEGER NOT NULL)"},
    {"name": "orders", "create": "CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL, total INTEGER NOT NULL, currency TEXT)"}
  ],
  "on": {
    "OrderPlaced": [
      {"sql": "INSERT INTO orders VALUES (?1, ?2, ?3, ?4)", "params": ["data.order_id", "data.customer", "data.total", "data.currency"]},
      {"sql": "INSERT INTO customer_totals VALUES (?1, 1, ?2) ON CONFLICT(customer) DO UPDATE SET orders = orders + 1, total = total + excluded.total",
       "params": ["data.customer", "data.total"]}
    ]
  }
})json";

void Project(uint64_t events, const std::string& dir) {
  auto store = Store::Open("memory:?sync=none&segment_size=1073741824");
  if (!store.ok()) Die(store.status());
  Fill(**store, events);
  for (uint32_t batch : {1000u, 10000u}) {
    const std::string path = fmt::format("{}/bench-projection-{}.db", dir, batch);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    auto projection = ProjectionFromSpec(kProjectSpec);
    if (!projection.ok()) Die(projection.status());
    auto runner = ProjectionRunner::Open(**store, std::move(*projection), path, {.batch_max_events = batch});
    if (!runner.ok()) Die(runner.status());
    const auto start = Clock::now();
    const double cpu0 = ThreadCpuSeconds();
    Status s = (*runner)->Run();
    if (!s.ok()) Die(s);
    const double sec = Seconds(Clock::now() - start), cpu = ThreadCpuSeconds() - cpu0;
    auto status = (*runner)->GetStatus();
    if (!status.ok() || status->events_handled != events) Die(Status::Internal("not every event was applied"));
    std::printf("project   batch %u: %llu events (2 statements each) in %.2f s = %.0f k events/s (%.0f k per CPU second)\n",
                batch, static_cast<unsigned long long>(events), sec, events / sec / 1e3, events / cpu / 1e3);
    runner->reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cairn read-side benchmarks: catch-up delivery, live latency, SQL projection"};
  std::string workload = "all";
  uint64_t events = 2'000'000;
  uint64_t project_events = 1'000'000;
  uint64_t rate = 10'000;
  double seconds = 5;
  std::string dir = std::filesystem::temp_directory_path().string();
  app.add_option("--workload", workload, "catch-up, live, project or all");
  app.add_option("--events", events, "Events for catch-up (default 2,000,000)");
  app.add_option("--project-events", project_events, "Events for project (default 1,000,000)");
  app.add_option("--rate", rate, "Events/s for live (default 10,000)");
  app.add_option("--seconds", seconds, "Duration of live (default 5)");
  app.add_option("--dir", dir, "Where files go (live's file store, the SQLite read model)");
  CLI11_PARSE(app, argc, argv);

  if (workload == "catch-up" || workload == "all") CatchUp(events);
  if (workload == "live" || workload == "all") {
    Live("memory:", rate, seconds);
    const std::string data = dir + "/bench-live-data";
    std::filesystem::remove_all(data);
    Live("file:" + data, rate, seconds);
    std::filesystem::remove_all(data);
  }
  if (workload == "project" || workload == "all") Project(project_events, dir);
  return 0;
}

// cairn_es_bench: the event-sourcing toolkit's benchmarks (docs/performance.md, "Toolkit").
// A benchmark, not a test: it prints figures and asserts nothing about time.
//
//   replay    rebuild one aggregate from --events events (no snapshot), and the same read in
//             stages (cursor only; + JSON parse; + decode into the typed event; + Apply) to show
//             where the time goes
//   snapshot  load an aggregate whose history is 1k / 100k / 1M events with a snapshot every 1,000
//             events: latency of Load right after a snapshot and with the longest tail (999)
//   execute   Execute round trips (load from snapshot + decide + durable save) on a file: store
//             with sync=always: p50 / p99 / max
//
//   cairn_es_bench --workload all --dir /tmp/es-bench [--events 1000000] [--executes 2000]
//                  [--encoding json|binary]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bank_account/bank_account.h"
#include "cairn/es/repository.h"
#include "cairn/store.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace cairn;

// The seed's bank account, as the example writes it (examples/bank_account/bank_account.h).
using Account = bank::BankAccount;
using bank::AccountCreated;
using bank::Deposited;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

[[noreturn]] void Die(const Status& s) {
  std::fprintf(stderr, "cairn_es_bench: %s\n", s.ToString().c_str());
  std::exit(1);
}

// Appends `count` events to the account's stream as the toolkit writes them (same metadata), in
// appends of up to 1,000 events. With `snapshots`, takes a snapshot after each 1,000 (what
// SnapshotPolicy::Every(1000) leaves behind).
void Fill(Store& store, const es::Repository<Account>& repo, const std::string& id, uint64_t count, bool snapshots,
          es::Encoding encoding = es::Encoding::kJson) {
  const std::string stream = repo.StreamOf(id);
  std::vector<EventData> batch;
  uint64_t written = 0;
  while (written < count) {
    batch.clear();
    const uint64_t n = std::min<uint64_t>(1000, count - written);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t v = written + i;
      Account::Event e = v == 0 ? Account::Event(AccountCreated{"bench"}) : Account::Event(Deposited{int64_t(v % 100)});
      auto encoded = es::EventCodec<Account::Event>::Encode(e, es::CommandContext{}, encoding);
      if (!encoded.ok()) Die(encoded.status());
      batch.push_back(std::move(*encoded));
    }
    auto r = store.Append(stream, written == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(written - 1), batch);
    if (!r.ok()) Die(r.status());
    written += n;
    if (snapshots && written % 1000 == 0) {
      Status s = repo.TakeSnapshot(id);
      if (!s.ok()) Die(s);
    }
  }
}

std::unique_ptr<Store> OpenStore(const std::string& url) {
  auto s = Store::Open(url);
  if (!s.ok()) Die(s.status());
  return std::move(*s);
}

void Replay(const std::string& dir, uint64_t events, int rounds) {
  auto store = OpenStore("file:" + dir + "/replay?sync=none");
  es::Repository<Account> repo(*store);
  es::EventCodec<Account::Event> codec;
  int64_t sink = 0;
  for (es::Encoding encoding : {es::Encoding::kJson, es::Encoding::kBinary}) {
    const bool json = encoding == es::Encoding::kJson;
    const std::string id = json ? "r-json" : "r-binary";
    auto t0 = Clock::now();
    Fill(*store, repo, id, events, false, encoding);
    std::printf("replay (%s): filled %llu events in %.2f s\n", json ? "JSON" : "binary",
                static_cast<unsigned long long>(events), Seconds(Clock::now() - t0));
    const std::string stream = repo.StreamOf(id);
    struct Stage {
      const char* name;
      double best = 1e9;
    };
    Stage stages[] = {{"cursor only (read + CRC)"},
                      {"+ JSON parse of data"},
                      {"+ decode to typed event (codec)"},
                      {"Repository::Load (decode + Apply)"}};
    for (int round = 0; round < rounds; ++round) {
      {
        auto start = Clock::now();
        auto c = store->ReadStream(stream);
        uint64_t n = 0;
        while (c->Next()) n += c->event().data.size();
        sink += static_cast<int64_t>(n);
        stages[0].best = std::min(stages[0].best, Seconds(Clock::now() - start));
      }
      if (json) {
        auto start = Clock::now();
        auto c = store->ReadStream(stream);
        while (c->Next()) sink += static_cast<int64_t>(es::Json::parse(c->event().data, nullptr, false).size());
        stages[1].best = std::min(stages[1].best, Seconds(Clock::now() - start));
      }
      {
        auto start = Clock::now();
        auto c = store->ReadStream(stream);
        while (c->Next()) sink += static_cast<int64_t>(codec.Decode(c->event())->index());
        stages[2].best = std::min(stages[2].best, Seconds(Clock::now() - start));
      }
      {
        auto start = Clock::now();
        auto a = repo.Load(id);
        if (!a.ok()) Die(a.status());
        sink += a->balance();
        stages[3].best = std::min(stages[3].best, Seconds(Clock::now() - start));
      }
    }
    for (const Stage& s : stages) {
      if (s.best == 1e9) continue;
      std::printf("replay (%s): %-36s %8.3f s  %12.0f events/s  %6.0f ns/event\n", json ? "JSON" : "binary", s.name,
                  s.best, static_cast<double>(events) / s.best, s.best * 1e9 / static_cast<double>(events));
    }
  }
  std::printf("(sink %lld)\n", static_cast<long long>(sink));
}

void Percentiles(const char* label, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double p) { return us[std::min(us.size() - 1, static_cast<size_t>(p * static_cast<double>(us.size())))]; };
  std::printf("%s: n=%zu p50 %.1f us  p99 %.1f us  max %.1f us\n", label, us.size(), at(0.50), at(0.99), us.back());
}

void SnapshotLoads(const std::string& dir, uint64_t max_events, int loads, es::Encoding encoding) {
  auto store = OpenStore("file:" + dir + "/snapshot?sync=none");
  es::Repository<Account> repo(*store);
  for (uint64_t history : {uint64_t{1000}, uint64_t{100'000}, uint64_t{1'000'000}}) {
    if (history > max_events) break;
    const std::string id = fmt::format("h{}", history);
    auto t0 = Clock::now();
    Fill(*store, repo, id, history, true, encoding);
    std::printf("snapshot: filled %llu events with a snapshot each 1,000 in %.2f s\n",
                static_cast<unsigned long long>(history), Seconds(Clock::now() - t0));
    for (int tail : {0, 999}) {
      std::vector<double> us;
      const std::string tail_id = tail == 0 ? id : id + "-tail";
      if (tail > 0) {
        Fill(*store, repo, tail_id, history + 999, true, encoding);  // snapshot at history-1, then 999 events
      }
      es::LoadStats stats;
      for (int i = 0; i < loads; ++i) {
        auto start = Clock::now();
        auto a = repo.LoadWithStats(tail_id);
        us.push_back(Micros(Clock::now() - start));
        if (!a.ok()) Die(a.status());
        stats = a->stats;
      }
      Percentiles(fmt::format("snapshot: load, history {:>7}, snapshot at {}, {} events replayed", history + tail,
                              stats.snapshot_version.value_or(0), stats.events_replayed)
                      .c_str(),
                  us);
    }
  }
}

void Executes(const std::string& dir, int executes, uint64_t history, es::Encoding encoding) {
  auto store = OpenStore("file:" + dir + "/execute");  // sync=always: every save is durable
  es::RepositoryOptions options;
  options.snapshots = es::SnapshotPolicy::Every(1000);
  options.encoding = encoding;
  es::Repository<Account> repo(*store, options);
  Fill(*store, repo, "x", history, true, encoding);
  std::vector<double> us;
  int snapshots = 0;
  for (int i = 0; i < executes; ++i) {
    auto start = Clock::now();
    auto r = repo.Execute("x", [](Account& a) { a.Deposit(1); });
    us.push_back(Micros(Clock::now() - start));
    if (!r.ok()) Die(r.status());
    snapshots += r->snapshot_taken;
  }
  // The floor: one durable append of one event to the same store, without the toolkit.
  std::vector<double> raw;
  for (int i = 0; i < std::max(100, executes / 4); ++i) {
    auto e = es::EventCodec<Account::Event>::Encode(Deposited{1}, {}, encoding);
    auto start = Clock::now();
    auto r = store->Append("raw-1", ExpectedVersion::Any(), std::span(&*e, 1));
    raw.push_back(Micros(Clock::now() - start));
    if (!r.ok()) Die(r.status());
  }
  Percentiles("execute: baseline, Store::Append of one event, durable", raw);
  Percentiles(fmt::format("execute: durable round trip (load from snapshot + decide + fdatasync'd append), "
                          "history {}+, {} snapshots taken on the way",
                          history, snapshots)
                  .c_str(),
              us);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("cairn_es_bench: the event-sourcing toolkit's benchmarks");
  std::string workload = "all", dir;
  uint64_t events = 1'000'000;
  int executes = 2000, rounds = 3, loads = 1000;
  app.add_option("--workload", workload, "replay, snapshot, execute or all");
  app.add_option("--dir", dir, "directory for the stores (created; removed afterwards)")->required();
  app.add_option("--events", events, "events to replay, and the longest snapshot history");
  app.add_option("--rounds", rounds, "replay rounds (the best is reported)");
  app.add_option("--loads", loads, "loads per snapshot history");
  app.add_option("--executes", executes, "Execute round trips");
  std::string encoding_name = "json";
  app.add_option("--encoding", encoding_name, "snapshot and execute workloads: json or binary");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  if (workload == "replay" || workload == "all") Replay(dir, events, rounds);
  const es::Encoding encoding = encoding_name == "binary" ? es::Encoding::kBinary : es::Encoding::kJson;
  std::printf("encoding of the snapshot and execute workloads: %s\n", encoding_name.c_str());
  if (workload == "snapshot" || workload == "all") SnapshotLoads(dir, events, loads, encoding);
  if (workload == "execute" || workload == "all") Executes(dir, executes, 10'000, encoding);
  std::filesystem::remove_all(dir);
  return 0;
}

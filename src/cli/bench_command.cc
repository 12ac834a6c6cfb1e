// `cairn bench`: throughput and latency of the embedded store through the public API, one
// workload per run (append, fill, read-all, read-stream, open) or a whole suite. A benchmark, not
// a test: nothing here asserts a time. docs/performance.md has the figures and how to read them.
//
// The event shape is fixed (cli/bench_report.h generates it, for bench/sqlite_baseline.cc too,
// which measures SQLite on the same events): type "Deposited" or "Withdrawn", 200 bytes of JSON
// data, 100 bytes of JSON metadata, streams "account-<k>" for k uniform in [0, --streams). Events
// are generated before the clock starts; ids are left nil so that the store makes UUIDv7s, as
// most callers let it.
//
// The suite runs each workload in a child process (this same binary), so that each row's memory
// figures (VmRSS, RssAnon, VmHWM from /proc/self/status) are that workload's alone, and so that
// "open" really opens a store another process closed cleanly.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cairn/store.h"
#include "cli/bench_report.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "server/client.h"
#include "server/server.h"

namespace cairn::cli {
namespace {

using Clock = std::chrono::steady_clock;

using bench::CpuSeconds;
using bench::kHotStream;
using bench::Percentile;
using bench::Row;
using bench::SetMemory;
using Workload = bench::Workload<EventData>;

struct BenchFlags {
  std::string workload = "append";
  std::string suite;
  uint32_t writers = 1;
  uint32_t batch = 1;
  uint64_t events = 100'000;
  uint64_t write_events = 0;  // suite only: events of each append workload (0: the suite's default)
  uint64_t streams = 100'000;
  uint64_t stream_events = 10'000;
  std::string sync = "always";
  double max_seconds = 0;
  double min_seconds = 2;
  uint64_t seed = 1;
  bool tsv = false;
  bool keep = false;
  bool server = false;  // go through the gRPC protocol (a server in this process, clients over loopback)
  uint32_t connections = 0;  // --server: client connections the writers share (0: one per writer)
  bool async = false;  // the writers are callers with one AppendAsync in flight each, not threads
  std::string transport = "h2";  // --server: who serves the protocol (server::ServerOptions::transport)
  std::string connect;  // go through the gRPC protocol to a server already running there (no store here)
  std::string client_api = "h2";  // --server: how the client's appends travel (server::ClientOptions::appends)
  CLI::Option* events_option = nullptr;
  CLI::Option* max_seconds_option = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Events

EventData ToEventData(bench::EventText t) {
  EventData e;
  e.type = std::move(t.type);
  e.data = std::move(t.data);
  e.metadata = std::move(t.metadata);
  e.content_type = ContentType::kJson;
  return e;
}

EventData MakeEvent(std::mt19937_64& rng, uint64_t i, uint64_t streams) {
  return ToEventData(bench::MakeEventText(rng, i, streams));
}

Workload MakeWorkload(uint64_t appends, uint32_t batch, uint64_t streams, uint64_t seed) {
  return bench::MakeWorkload<EventData>(appends, batch, streams, seed, ToEventData);
}

// ---------------------------------------------------------------------------------------------
// Workloads

Result<SyncMode> ParseSync(std::string_view s) {
  if (s == "always") return SyncMode::kAlways;
  if (s == "interval") return SyncMode::kInterval;
  if (s == "none") return SyncMode::kNone;
  return Status::InvalidArgument(fmt::format("--sync: '{}' is not always, interval or none", s));
}

// For --server: a Server on a free loopback port over `store`, and `count` clients of it, each
// with its own connection.
struct Remote {
  std::unique_ptr<server::Server> server;
  std::vector<std::unique_ptr<server::Client>> clients;
};

// With --connect HOST:PORT, no server here: the clients connect to that one.
Result<Remote> StartRemote(Store* store, uint32_t count, const std::string& connect, const std::string& transport,
                           const std::string& client_api = "h2") {
  server::ClientOptions client_options;
  if (client_api == "h2") {
    client_options.appends = server::AppendTransport::kH2;
  } else if (client_api == "grpc") {
    client_options.appends = server::AppendTransport::kGrpc;
  } else {
    return Status::InvalidArgument(fmt::format("--client-api: '{}' is not h2 or grpc", client_api));
  }
  Remote r;
  std::string address = connect;
  if (address.empty()) {
    server::ServerOptions options;
    options.grpc_address = "127.0.0.1:0";
    options.transport = transport;
    CAIRN_ASSIGN_OR_RETURN(r.server, server::Server::Start(store, options));
    address = fmt::format("127.0.0.1:{}", r.server->grpc_port());
  }
  for (uint32_t i = 0; i < count; ++i) {
    CAIRN_ASSIGN_OR_RETURN(auto client, server::Client::Connect(address, client_options));
    r.clients.push_back(std::move(client));
  }
  return r;
}

Result<Row> RunAppend(const BenchFlags& f, const std::string& db) {
  CAIRN_ASSIGN_OR_RETURN(SyncMode sync, ParseSync(f.sync));
  if (f.writers == 0 || f.batch == 0 || f.batch > kMaxAppendEvents) {
    return Status::InvalidArgument(fmt::format("--writers must be at least 1 and --batch between 1 and {}", kMaxAppendEvents));
  }
  if (f.async && f.server) return Status::InvalidArgument("--async: the embedded store only, not with --server or --connect");
  const uint64_t appends = (f.events + f.batch - 1) / f.batch;
  const Workload w = MakeWorkload(appends, f.batch, f.streams, f.seed);
  Options options;
  options.sync = sync;
  std::unique_ptr<Store> store;
  if (f.connect.empty()) {
    CAIRN_ASSIGN_OR_RETURN(store, OpenStore(db, options));
  }
  Remote remote;
  if (f.server) {
    const uint32_t connections = f.connections == 0 ? f.writers : std::min(f.connections, f.writers);
    CAIRN_ASSIGN_OR_RETURN(remote, StartRemote(store.get(), connections, f.connect, f.transport, f.client_api));
  }

  std::atomic<uint64_t> next{0};
  std::atomic<bool> go{false};
  std::atomic<bool> failed{false};
  std::vector<std::vector<uint64_t>> latencies(f.writers);
  std::vector<uint64_t> done_events(f.writers, 0), done_bytes(f.writers, 0);
  std::vector<Status> errors(f.writers);
  const auto budget = std::chrono::duration<double>(f.max_seconds);
  Clock::time_point start;

  // Over the protocol, a writer is an append in flight, not a thread: each next append starts
  // from the previous one's answer (on the clients' loop thread, or gRPC's with --client-api grpc),
  // so the bench's client costs no thread hand-off per append. An append counts once the server acknowledged it.
  std::mutex idle_mu;
  std::condition_variable idle_cv;
  uint32_t active = f.writers;
  std::function<void(uint32_t)> issue = [&](uint32_t t) {
    const uint64_t j = next.fetch_add(1, std::memory_order_relaxed);
    const auto t0 = Clock::now();
    if (j >= appends || failed.load(std::memory_order_relaxed) || (f.max_seconds > 0 && t0 - start > budget)) {
      std::lock_guard lock(idle_mu);
      if (--active == 0) idle_cv.notify_all();
      return;
    }
    remote.clients[t % remote.clients.size()]->AppendAsync(
        w.StreamOf(j), ExpectedVersion::Any(), w.EventsOf(j), [&, t, j, t0](Result<AppendResult> r) {
          const auto t1 = Clock::now();
          if (!r.ok()) {
            errors[t] = r.status();
            failed = true;
          } else {
            latencies[t].push_back(
                static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
            done_events[t] += f.batch;
            done_bytes[t] += w.PayloadBytes(j);
          }
          issue(t);
        });
  };

  std::vector<std::thread> threads;
  if (f.async) {
    // --async: f.writers concurrent writers, as a server's clients are: each has one append in
    // flight through Store::AppendAsync and sends its next only once that one is acknowledged.
    // The callbacks (on the store's thread) only mark their writer free; one driver thread sends
    // every free writer's next append.
    threads.emplace_back([&] {
      std::mutex mu;
      std::condition_variable cv;
      std::vector<uint32_t> free_writers, ready;
      std::vector<Clock::time_point> sent(f.writers);
      uint32_t in_flight = 0;
      for (uint32_t t = 0; t < f.writers; ++t) free_writers.push_back(t);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::unique_lock lock(mu);
      bool stop = false;  // no more appends to send: wait for those in flight
      for (;;) {
        cv.wait(lock, [&] { return !free_writers.empty() || (stop && in_flight == 0); });
        if (stop && in_flight == 0) break;
        ready.swap(free_writers);
        lock.unlock();
        for (uint32_t t : ready) {
          if (stop) continue;
          const auto t0 = Clock::now();
          const uint64_t j = next.fetch_add(1, std::memory_order_relaxed);
          if (j >= appends || failed.load(std::memory_order_relaxed) || (f.max_seconds > 0 && t0 - start > budget)) {
            stop = true;
            continue;
          }
          sent[t] = t0;
          {
            std::lock_guard l(mu);
            in_flight++;
          }
          store->AppendAsync(w.StreamOf(j), ExpectedVersion::Any(), w.EventsOf(j), [&, t, j](Result<AppendResult> r) {
            const auto t1 = Clock::now();
            std::lock_guard l(mu);
            if (!r.ok()) {
              if (errors[t].ok()) errors[t] = r.status();
              failed = true;
            } else {
              latencies[t].push_back(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - sent[t]).count()));
              done_events[t] += f.batch;
              done_bytes[t] += w.PayloadBytes(j);
            }
            in_flight--;
            free_writers.push_back(t);
            cv.notify_one();
          });
        }
        ready.clear();
        lock.lock();
      }
    });
  }
  for (uint32_t t = 0; t < (f.async || f.server ? 0 : f.writers); ++t) {
    threads.emplace_back([&, t] {
      latencies[t].reserve(appends / f.writers + 1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (;;) {
        const uint64_t j = next.fetch_add(1, std::memory_order_relaxed);
        if (j >= appends || failed.load(std::memory_order_relaxed)) break;
        const auto t0 = Clock::now();
        if (f.max_seconds > 0 && t0 - start > budget) break;
        auto r = store->Append(w.StreamOf(j), ExpectedVersion::Any(), w.EventsOf(j));
        const auto t1 = Clock::now();
        if (!r.ok()) {
          errors[t] = r.status();
          failed = true;
          break;
        }
        latencies[t].push_back(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
        done_events[t] += f.batch;
        done_bytes[t] += w.PayloadBytes(j);
      }
    });
  }
  if (f.server) {
    for (uint32_t t = 0; t < f.writers; ++t) latencies[t].reserve(appends / f.writers + 1);
  }
  const double cpu_start = CpuSeconds();
  start = Clock::now();
  go.store(true, std::memory_order_release);
  if (f.server) {
    for (uint32_t t = 0; t < f.writers; ++t) issue(t);
    std::unique_lock lock(idle_mu);
    idle_cv.wait(lock, [&] { return active == 0; });
  }
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = CpuSeconds() - cpu_start;
  for (const Status& s : errors) CAIRN_RETURN_IF_ERROR(s);

  Row row;
  row.name = f.sync == "none" ? fmt::format("append-{}x{}-nosync", f.writers, f.batch)
                              : fmt::format("append-{}x{}-{}", f.writers, f.batch, f.sync == "always" ? "durable" : f.sync);
  std::vector<uint64_t> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  for (uint32_t t = 0; t < f.writers; ++t) {
    row.events += done_events[t];
    row.mb_per_second += static_cast<double>(done_bytes[t]);
  }
  row.seconds = seconds;
  row.cpu_seconds = cpu_seconds;
  row.events_per_second = static_cast<double>(row.events) / seconds;
  row.mb_per_second = row.mb_per_second / seconds / 1e6;
  row.p50_us = Percentile(all, 0.50);
  row.p99_us = Percentile(all, 0.99);
  if (f.async) row.name += "-async";
  if (f.server) {
    row.name = f.transport + "-" + row.name;  // h2-... (the front) or grpc-... (gRPC's library)
    if (f.connections > 0 && f.connections < f.writers) row.name += fmt::format("-{}conn", f.connections);
    if (f.client_api != "h2") row.name += "-" + f.client_api + "client";  // h2-append-16x1-durable-grpcclient
  }
  if (row.events < f.events) row.note = fmt::format("stopped by --max-seconds after {} events", row.events);
  SetMemory(&row);
  remote.clients.clear();  // their calls end now, not at the server's shutdown grace deadline
  if (remote.server) remote.server->Shutdown();
  if (store) CAIRN_RETURN_IF_ERROR(store->Close());
  return row;
}

// Writes --events events over --streams streams, 100 per append, without fsync, and between
// them --stream-events single-event appends to kHotStream. Timed too, but it is setup.
Result<Row> RunFill(const BenchFlags& f, Store* store) {
  constexpr uint32_t kBatch = 100;
  const uint64_t appends = (f.events + kBatch - 1) / kBatch;
  const Workload w = MakeWorkload(appends, kBatch, f.streams, f.seed);
  std::mt19937_64 rng(f.seed + 1);
  std::vector<EventData> hot;
  for (uint64_t i = 0; i < std::min<uint64_t>(f.stream_events, bench::kHotPoolEvents); ++i) hot.push_back(MakeEvent(rng, i, f.streams));
  uint64_t hot_done = 0, events = 0, bytes = 0;
  const double cpu_start = CpuSeconds();
  const auto start = Clock::now();
  for (uint64_t j = 0; j < appends; ++j) {
    CAIRN_RETURN_IF_ERROR(store->Append(w.StreamOf(j), ExpectedVersion::Any(), w.EventsOf(j)).status());
    events += kBatch;
    bytes += w.PayloadBytes(j);
    while (bench::HotEventDue(hot_done, f.stream_events, j, appends)) {
      const EventData& e = hot[hot_done % hot.size()];
      CAIRN_RETURN_IF_ERROR(store->Append(kHotStream, ExpectedVersion::Any(), std::span<const EventData>(&e, 1)).status());
      hot_done++;
      events++;
      bytes += kHotStream.size() + e.type.size() + e.data.size() + e.metadata.size();
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  Row row;
  row.name = "fill";
  row.events = events;
  row.seconds = seconds;
  row.cpu_seconds = CpuSeconds() - cpu_start;
  row.events_per_second = static_cast<double>(events) / seconds;
  row.mb_per_second = static_cast<double>(bytes) / seconds / 1e6;
  row.note = fmt::format("setup: {} events over {} streams + {} in {}, 100 per append, sync=none", f.events,
                         f.streams, hot_done, kHotStream);
  SetMemory(&row);
  return row;
}

// Whether the store holds no event.
Result<bool> Empty(Store* store) {
  ReadAllOptions o;
  o.max_count = 1;
  CAIRN_ASSIGN_OR_RETURN(EventCursor c, store->ReadAll(o));
  const bool any = c.Next();
  CAIRN_RETURN_IF_ERROR(c.status());
  return !any;
}

// Opens the store for a read workload, filling it first (untimed) when it is empty.
Result<std::unique_ptr<Store>> OpenForRead(const BenchFlags& f, const std::string& db, std::string* note) {
  Options options;
  options.sync = SyncMode::kNone;
  CAIRN_ASSIGN_OR_RETURN(auto store, OpenStore(db, options));
  CAIRN_ASSIGN_OR_RETURN(bool empty, Empty(store.get()));
  if (empty) {
    CAIRN_RETURN_IF_ERROR(RunFill(f, store.get()).status());
    *note = "filled first in this process (RSS includes the fill)";
  }
  return store;
}

// Reads with `read` once to warm the page cache, then again until --min-seconds have passed.
template <typename ReadFn>
Result<Row> TimedReads(const BenchFlags& f, ReadFn read) {
  uint64_t events = 0, bytes = 0;
  CAIRN_RETURN_IF_ERROR(read(&events, &bytes));
  events = bytes = 0;
  uint64_t passes = 0;
  const double cpu_start = CpuSeconds();
  const auto start = Clock::now();
  double seconds = 0;
  do {
    CAIRN_RETURN_IF_ERROR(read(&events, &bytes));
    passes++;
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
  } while (seconds < f.min_seconds);
  Row row;
  row.events = events;
  row.seconds = seconds;
  row.cpu_seconds = CpuSeconds() - cpu_start;
  row.events_per_second = static_cast<double>(events) / seconds;
  row.mb_per_second = static_cast<double>(bytes) / seconds / 1e6;
  row.note = fmt::format("{} events per pass, {} warm passes after one warm-up", events / passes, passes);
  return row;
}

// Adds up what a consumer would look at, so that the reads cannot be optimized away.
Status Drain(EventCursor& c, uint64_t* events, uint64_t* bytes) {
  uint64_t n = 0, b = 0;
  while (c.Next()) {
    const RecordedEventView& e = c.event();
    n++;
    b += e.stream.size() + e.type.size() + e.data.size() + e.metadata.size();
  }
  *events += n;
  *bytes += b;
  return c.status();
}

Result<Row> RunReadAll(const BenchFlags& f, const std::string& db) {
  std::string note;
  std::unique_ptr<Store> store;
  if (f.connect.empty()) {
    CAIRN_ASSIGN_OR_RETURN(store, OpenForRead(f, db, &note));
  }
  Remote remote;
  if (f.server) {
    CAIRN_ASSIGN_OR_RETURN(remote, StartRemote(store.get(), 1, f.connect, f.transport));
  }
  CAIRN_ASSIGN_OR_RETURN(Row row, TimedReads(f, [&](uint64_t* events, uint64_t* bytes) -> Status {
    if (f.server) {
      uint64_t n = 0, b = 0;
      CAIRN_RETURN_IF_ERROR(remote.clients[0]->ReadAll(std::numeric_limits<uint64_t>::max(), [&](const RecordedEventView& e) {
        n++;
        b += e.stream.size() + e.type.size() + e.data.size() + e.metadata.size();
      }));
      *events += n;
      *bytes += b;
      return Status::Ok();
    }
    CAIRN_ASSIGN_OR_RETURN(EventCursor c, store->ReadAll({}));
    return Drain(c, events, bytes);
  }));
  row.name = f.server ? f.transport + "-read-all" : "read-all";
  if (!note.empty()) row.note += "; " + note;
  SetMemory(&row);
  remote.clients.clear();  // their calls end now, not at the server's shutdown grace deadline
  if (remote.server) remote.server->Shutdown();
  if (store) CAIRN_RETURN_IF_ERROR(store->Close());
  return row;
}

Result<Row> RunReadStream(const BenchFlags& f, const std::string& db) {
  std::string note;
  CAIRN_ASSIGN_OR_RETURN(auto store, OpenForRead(f, db, &note));
  CAIRN_ASSIGN_OR_RETURN(Row row, TimedReads(f, [&](uint64_t* events, uint64_t* bytes) -> Status {
    CAIRN_ASSIGN_OR_RETURN(EventCursor c, store->ReadStream(kHotStream, {}));
    return Drain(c, events, bytes);
  }));
  row.name = "read-stream";
  if (!note.empty()) row.note += "; " + note;
  SetMemory(&row);
  CAIRN_RETURN_IF_ERROR(store->Close());
  return row;
}

// Times Store::Open of an existing store and takes the memory figures right after it; then
// counts the events (untimed) to report the open rate.
Result<Row> RunOpen(const BenchFlags& f, const std::string& db) {
  std::string note;
  {
    Options options;
    options.create_if_missing = false;
    auto probe = OpenStore(db, options);
    bool empty = !probe.ok();
    if (probe.ok()) {
      CAIRN_ASSIGN_OR_RETURN(empty, Empty(probe->get()));
      if (empty) {
        CAIRN_RETURN_IF_ERROR(RunFill(f, probe->get()).status());
        note = "filled first in this process (memory figures include the fill)";
      }
      CAIRN_RETURN_IF_ERROR((*probe)->Close());
    } else if (probe.status().IsNotFound()) {
      CAIRN_ASSIGN_OR_RETURN(auto store, OpenStore(db, {}));
      CAIRN_RETURN_IF_ERROR(RunFill(f, store.get()).status());
      CAIRN_RETURN_IF_ERROR(store->Close());
      note = "filled first in this process (memory figures include the fill)";
    } else {
      return probe.status();
    }
  }
  Options options;
  options.create_if_missing = false;
  const double cpu_start = CpuSeconds();
  const auto start = Clock::now();
  CAIRN_ASSIGN_OR_RETURN(auto store, OpenStore(db, options));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  Row row;
  row.name = "open";
  row.cpu_seconds = CpuSeconds() - cpu_start;
  SetMemory(&row);
  row.seconds = seconds;
  uint64_t events = 0, bytes = 0;
  CAIRN_ASSIGN_OR_RETURN(EventCursor c, store->ReadAll({}));
  CAIRN_RETURN_IF_ERROR(Drain(c, &events, &bytes));
  row.events = events;
  row.events_per_second = static_cast<double>(events) / seconds;
  row.mb_per_second = static_cast<double>(bytes) / seconds / 1e6;
  row.note = note.empty() ? "store closed cleanly by an earlier process; page cache warm" : note;
  CAIRN_RETURN_IF_ERROR(store->Close());
  return row;
}

// ---------------------------------------------------------------------------------------------
// Output

using bench::PrintTable;
using bench::PrintTsv;

// The command line that reproduces one workload run.
std::vector<std::string> WorkloadArgs(const BenchFlags& f, const std::string& db) {
  std::vector<std::string> a = {"bench", "--db", db, "--workload", f.workload};
  auto add = [&](std::string flag, std::string value) {
    a.push_back(std::move(flag));
    a.push_back(std::move(value));
  };
  if (f.workload == "append") {
    add("--writers", std::to_string(f.writers));
    add("--batch", std::to_string(f.batch));
    add("--events", std::to_string(f.events));
    add("--sync", f.sync);
    add("--streams", std::to_string(f.streams));
    if (f.max_seconds > 0) add("--max-seconds", fmt::format("{}", f.max_seconds));
  } else {
    add("--events", std::to_string(f.events));
    add("--streams", std::to_string(f.streams));
    add("--stream-events", std::to_string(f.stream_events));
    if (f.workload != "open" && f.workload != "fill") add("--min-seconds", fmt::format("{}", f.min_seconds));
  }
  if (f.seed != 1) add("--seed", std::to_string(f.seed));
  if (f.server) a.push_back("--server");
  if (f.async) a.push_back("--async");
  if (f.connections > 0) add("--connections", std::to_string(f.connections));
  if (f.server) add("--transport", f.transport);
  if (f.server && f.client_api != "h2") add("--client-api", f.client_api);
  if (!f.connect.empty()) {
    a.push_back("--connect");
    a.push_back(f.connect);
  }
  return a;
}

std::string CommandText(const std::vector<std::string>& args) {
  std::string s = "cairn";
  for (const auto& a : args) {
    const bool plain = a.find_first_of(" \t'\"$&|;<>()*?\\`") == std::string::npos && !a.empty();
    s += " " + (plain ? a : "'" + a + "'");
  }
  return s;
}

// Runs one workload in a child process of this binary and parses its TSV row.
Result<Row> RunChild(const std::vector<std::string>& args) {
  std::vector<std::string> full = {"cairn"};
  full.insert(full.end(), args.begin(), args.end());
  full.push_back("--tsv");
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return Status::IOError(fmt::format("pipe: {}", std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) return Status::IOError(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return Status::Internal(fmt::format("{} failed (exit status {})", CommandText(args), wstatus));
  }
  // The last line is the row: the fields of bench::Cells(), then note and command.
  std::vector<std::string> lines;
  for (size_t at = 0; at < out.size();) {
    size_t nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    if (nl > at) lines.push_back(out.substr(at, nl - at));
    at = nl + 1;
  }
  if (lines.size() < 2) return Status::Internal(fmt::format("{} printed no result", CommandText(args)));
  Row r;
  if (!bench::ParseTsvRow(lines.back(), &r)) {
    return Status::Internal(fmt::format("{}: bad result line", CommandText(args)));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Suite

Result<std::vector<Row>> RunSuite(const BenchFlags& flags, const std::string& db) {
  const bool full = flags.suite == "full";
  const bool server_suite = flags.suite == "server";
  if (!full && !server_suite && flags.suite != "quick") {
    return Status::InvalidArgument(fmt::format("--suite: '{}' is not quick, full or server", flags.suite));
  }
  std::string url = NormalizeDbUrl(db);
  if (!url.starts_with("file:") || url.find('?') != std::string::npos) {
    return Status::InvalidArgument("--suite needs --db file:DIR (a scratch directory, without query parameters)");
  }
  const std::filesystem::path base(url.substr(5));
  std::error_code ec;
  std::filesystem::create_directories(base, ec);
  if (ec) return Status::IOError(fmt::format("create {}: {}", base.string(), ec.message()));

  const uint64_t read_events = flags.events_option->count() > 0 ? flags.events : (full ? 10'000'000 : 200'000);
  const uint64_t write_events = flags.write_events > 0 ? flags.write_events : (full ? 1'000'000 : 100'000);
  const double durable_cap = flags.max_seconds_option->count() > 0 ? flags.max_seconds : (full ? 20 : 5);

  struct Step {
    std::string dir;
    BenchFlags f;
  };
  std::vector<Step> steps;
  auto append = [&](uint32_t writers, uint32_t batch, std::string sync, bool async = false) {
    BenchFlags f = flags;
    f.workload = "append";
    f.writers = writers;
    f.batch = batch;
    f.sync = sync;
    f.async = async;
    f.events = write_events;
    f.max_seconds = sync == "always" ? durable_cap : 0;
    steps.push_back({fmt::format("append-{}x{}-{}{}", writers, batch, sync, async ? "-async" : ""), f});
  };
  if (server_suite) {
    // Each workload embedded and then through the protocol, served by gRPC's library and by the
    // h2 front, for the ratio (docs/performance.md).
    for (const char* how : {"embedded", "grpc", "h2"}) {
      const bool remote = std::string_view(how) != "embedded";
      BenchFlags f = flags;
      f.server = remote;
      if (remote) f.transport = how;
      for (auto [writers, batch] : {std::pair<uint32_t, uint32_t>{16, 1}, {1, 100}}) {
        f.workload = "append";
        f.writers = writers;
        f.batch = batch;
        f.sync = "always";
        f.events = write_events;
        f.max_seconds = durable_cap;
        steps.push_back({fmt::format("{}append-{}x{}", remote ? std::string(how) + "-" : "", writers, batch), f});
      }
    }
    {
      // The 16 x 1 over the h2 front once more with gRPC's C++ library as the client, for the
      // client's share (docs/performance.md, the server's sixth run).
      BenchFlags f = flags;
      f.server = true;
      f.transport = "h2";
      f.client_api = "grpc";
      f.workload = "append";
      f.writers = 16;
      f.batch = 1;
      f.sync = "always";
      f.events = write_events;
      f.max_seconds = durable_cap;
      steps.push_back({"h2-append-16x1-grpcclient", f});
    }
    for (const char* w : {"fill", "read-all", "read-all-grpc", "read-all-h2"}) {
      BenchFlags f = flags;
      const std::string_view name(w);
      f.workload = name.starts_with("read-all") ? "read-all" : w;
      f.server = name.starts_with("read-all-");
      if (f.server) f.transport = std::string(name.substr(9));
      f.events = read_events;
      steps.push_back({"reads", f});
    }
  } else {
    append(1, 1, "always");
    append(64, 1, "always");
    append(64, 1, "always", true);  // 64 writers as a server's clients are: one append in flight each
    append(1, 100, "always");
    append(1, 100, "none");
    append(4, 100, "none", true);
    for (const char* w : {"fill", "read-all", "read-stream", "open"}) {
      BenchFlags f = flags;
      f.workload = w;
      f.events = read_events;
      steps.push_back({"reads", f});
    }
  }

  std::vector<Row> rows;
  std::string previous_dir;
  for (const Step& s : steps) {
    const std::filesystem::path dir = base / s.dir;
    if (s.dir != previous_dir && std::filesystem::exists(dir)) {
      return Status::AlreadyExists(fmt::format("{} exists: give an empty scratch directory", dir.string()));
    }
    auto args = WorkloadArgs(s.f, "file:" + dir.string());
    std::fprintf(stderr, "cairn bench: %s\n", CommandText(args).c_str());
    CAIRN_ASSIGN_OR_RETURN(Row row, RunChild(args));
    rows.push_back(std::move(row));
    const bool last_use = &s == &steps.back() || (&s + 1)->dir != s.dir;
    if (last_use && !flags.keep) std::filesystem::remove_all(dir, ec);
    previous_dir = s.dir;
  }
  return rows;
}

int RunBench(const BenchFlags& flags, const std::string& db) {
  std::vector<Row> rows;
  if (!flags.suite.empty()) {
    auto suite = RunSuite(flags, db);
    if (!suite.ok()) return ReportError(suite.status());
    rows = std::move(suite).value();
  } else {
    Result<Row> row = Status::InvalidArgument(
        fmt::format("--workload: '{}' is not append, fill, read-all, read-stream or open", flags.workload));
    if (flags.workload == "append") {
      row = RunAppend(flags, db);
    } else if (flags.workload == "fill") {
      auto store = OpenStore(db, Options{.sync = SyncMode::kNone});
      row = store.ok() ? RunFill(flags, store->get()) : Result<Row>(store.status());
      if (store.ok() && row.ok()) {
        SetMemory(&row.value());
        Status s = (*store)->Close();
        if (!s.ok()) row = s;
      }
    } else if (flags.workload == "read-all") {
      row = RunReadAll(flags, db);
    } else if (flags.workload == "read-stream") {
      row = RunReadStream(flags, db);
    } else if (flags.workload == "open") {
      row = RunOpen(flags, db);
    }
    if (!row.ok()) return ReportError(row.status());
    row->command = CommandText(WorkloadArgs(flags, db));
    rows.push_back(std::move(row).value());
  }
  if (flags.tsv) {
    PrintTsv(rows, true);
  } else {
    PrintTable(rows);
  }
  return kExitOk;
}

}  // namespace

Command AddBenchCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("bench", "Measure append and read throughput of the embedded store");
  app->footer(
      "Workloads (events: 200 B JSON data + 100 B JSON metadata, over --streams streams \"account-<k>\"):\n"
      "  append       --writers threads call Store::Append, --batch events each, --sync mode\n"
      "  fill         writes --events (100 per append, sync=none) plus --stream-events to account-hot\n"
      "  read-all     reads $all (checksums verified), warm; fills the store first when it is empty\n"
      "  read-stream  reads account-hot, warm; fills first when empty\n"
      "  open         times opening the store (closed cleanly) and reports memory right after\n"
      "--server runs append or read-all through `cairn serve`'s gRPC protocol over loopback.\n"
      "--suite quick|full runs them all, each in a child process, in subdirectories of --db\n"
      "(which must be a scratch directory) and prints one table. A benchmark, not a test:\n"
      "see docs/performance.md. It writes to the store: never point it at real data.");
  auto flags = std::make_shared<BenchFlags>();
  AddDbOption(app, db);
  app->add_option("--workload", flags->workload, "append, fill, read-all, read-stream or open. Default: append");
  app->add_option("--suite", flags->suite,
                  "quick or full: run every workload and print one table; server: the server workloads, "
                  "embedded, over gRPC's library and over the h2 front (the client over nghttp2, and once over gRPC's "
                  "library)");
  app->add_flag("--server", flags->server,
                "append and read-all: go through the gRPC protocol (a server in this process on a loopback "
                "port; one client connection per writer unless --connections)");
  app->add_option("--connect", flags->connect,
                  "With --server: HOST:PORT of a `cairn serve` already running (its own process, its own "
                  "store; --db is then not opened) instead of a server in this process");
  app->add_option("--transport", flags->transport,
                  "With --server: h2 (cairn's own HTTP/2 front) or grpc (gRPC's C++ library) serves the protocol. "
                  "Default: h2");
  app->add_option("--client-api", flags->client_api,
                  "With --server: how the client's appends travel: h2 (nghttp2, one loop thread for all connections) or "
                  "grpc (gRPC's C++ library). Rows of grpc end in -grpcclient. Default: h2");
  app->add_option("--connections", flags->connections,
                  "With --server: client connections the writers share, each with one BatchAppend call that "
                  "carries the appends of all its writers at once, as the official clients do. Default: one "
                  "per writer");
  app->add_option("--writers", flags->writers, "Appending threads (with --async: concurrent writers). Default: 1");
  app->add_flag("--async", flags->async,
                "append, embedded: the --writers are concurrent writers with one Store::AppendAsync in flight "
                "each (as a server's clients are), sent by one thread, instead of threads blocked in Append");
  app->add_option("--batch", flags->batch, "Events per append. Default: 1");
  flags->events_option = app->add_option("--events", flags->events,
                                         "Events to append or fill (suite: of the read store). Default: 100000");
  app->add_option("--write-events", flags->write_events, "Suite: events of each append workload");
  app->add_option("--streams", flags->streams, "Streams the events spread over. Default: 100000");
  app->add_option("--stream-events", flags->stream_events, "Events of account-hot (read-stream). Default: 10000");
  app->add_option("--sync", flags->sync, "always, interval or none. Default: always");
  flags->max_seconds_option =
      app->add_option("--max-seconds", flags->max_seconds, "Stop appending after this long (0: never). Default: 0");
  app->add_option("--min-seconds", flags->min_seconds, "Reads: repeat warm passes for at least this long. Default: 2");
  app->add_option("--seed", flags->seed, "Seed of the generated events. Default: 1");
  app->add_flag("--tsv", flags->tsv, "Print tab-separated values (for scripts)");
  app->add_flag("--keep", flags->keep, "Suite: keep the stores it wrote");
  return Command{app, [app, flags, db] {
                   const CLI::App* root = app->get_parent();
                   if (app->get_option("--db")->count() == 0 && root->get_option("--db")->count() == 0) {
                     std::fprintf(stderr, "cairn: bench writes to the store: give --db (a scratch directory)\n");
                     return kExitUsage;
                   }
                   if (!flags->connect.empty()) flags->server = true;
                   return RunBench(*flags, *db);
                 }};
}

}  // namespace cairn::cli

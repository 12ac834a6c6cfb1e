// cairn_sqlite_bench: the SQLite baseline of `cairn bench` (src/cli/bench_command.cc). The same
// events (200 B JSON data, 100 B JSON metadata, streams "account-<k>") in a table shaped like the
// seed's `events` table, WAL, synchronous=FULL, one transaction per append, and the same output
// format (a table, or --tsv): both come from src/cli/bench_report.h. A benchmark, not a test;
// docs/performance.md has the figures.
//
// An append is what an event store on SQLite does: BEGIN IMMEDIATE, read the stream's last
// version (the optimistic-concurrency check; the UNIQUE index makes it a point lookup), insert
// the events with the next versions, COMMIT (which fsyncs the WAL). Event ids are made by the
// client, inside the timed loop, as cairn makes them inside its writer. There is no index on
// event_id: cairn's idempotency check is in memory, and an index would only slow SQLite down.
//
// Reads step a prepared statement and look at every column (zero-copy, as cairn's cursors), but
// SQLite has no checksums to verify: cairn's read figures include CRC32C over every record.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/bench_report.h"

namespace {

using Clock = std::chrono::steady_clock;

using cairn::bench::CpuSeconds;
using cairn::bench::kHotStream;
using cairn::bench::Percentile;
using cairn::bench::Row;
using cairn::bench::SetMemory;
using Event = cairn::bench::EventText;
using Workload = cairn::bench::Workload<Event>;

struct Flags {
  std::string dir;
  std::string workload = "append";
  std::string suite;
  uint32_t batch = 1;
  uint64_t events = 100'000;
  uint64_t write_events = 0;
  uint64_t streams = 100'000;
  uint64_t stream_events = 10'000;
  double max_seconds = 0;
  double min_seconds = 2;
  uint64_t seed = 1;
  bool tsv = false;
  bool keep = false;
  CLI::Option* events_option = nullptr;
  CLI::Option* max_seconds_option = nullptr;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "cairn_sqlite_bench: %s\n", message.c_str());
  std::exit(1);
}

Workload MakeWorkload(uint64_t appends, uint32_t batch, uint64_t streams, uint64_t seed) {
  return cairn::bench::MakeWorkload<Event>(appends, batch, streams, seed, [](Event e) { return e; });
}

// ---------------------------------------------------------------------------------------------
// SQLite

class Db {
 public:
  Db(const std::string& path, bool durable) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) Die(fmt::format("open {}: {}", path, sqlite3_errmsg(db_)));
    Exec("PRAGMA journal_mode=WAL");
    Exec(durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF");
    Exec("CREATE TABLE IF NOT EXISTS events ("
         " position INTEGER PRIMARY KEY,"
         " stream TEXT NOT NULL,"
         " version INTEGER NOT NULL,"
         " event_id BLOB NOT NULL,"
         " type TEXT NOT NULL,"
         " data BLOB NOT NULL,"
         " metadata BLOB,"
         " recorded_at INTEGER NOT NULL,"
         " UNIQUE (stream, version))");
    last_ = Prepare("SELECT max(version) FROM events WHERE stream = ?1");
    insert_ = Prepare(
        "INSERT INTO events (stream, version, event_id, type, data, metadata, recorded_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  }
  ~Db() {
    sqlite3_finalize(last_);
    sqlite3_finalize(insert_);
    if (sqlite3_close(db_) != SQLITE_OK) Die(fmt::format("close: {}", sqlite3_errmsg(db_)));
  }

  void Exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) Die(fmt::format("{}: {}", sql, error));
  }
  sqlite3_stmt* Prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      Die(fmt::format("prepare {}: {}", sql, sqlite3_errmsg(db_)));
    }
    return s;
  }
  void Check(int rc, int want, const char* what) {
    if (rc != want) Die(fmt::format("{}: {}", what, sqlite3_errmsg(db_)));
  }

  // Appends `n` events to `stream` (no transaction of its own: the caller's).
  void Insert(std::mt19937_64& rng, const std::string& stream, const Event* events, uint32_t n) {
    sqlite3_bind_text(last_, 1, stream.data(), static_cast<int>(stream.size()), SQLITE_STATIC);
    Check(sqlite3_step(last_), SQLITE_ROW, "select last version");
    const int64_t next = sqlite3_column_type(last_, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(last_, 0) + 1;
    sqlite3_reset(last_);
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t id[2] = {rng(), rng()};
      sqlite3_bind_text(insert_, 1, stream.data(), static_cast<int>(stream.size()), SQLITE_STATIC);
      sqlite3_bind_int64(insert_, 2, next + i);
      sqlite3_bind_blob(insert_, 3, id, sizeof id, SQLITE_TRANSIENT);
      sqlite3_bind_text(insert_, 4, events[i].type.data(), static_cast<int>(events[i].type.size()), SQLITE_STATIC);
      sqlite3_bind_blob(insert_, 5, events[i].data.data(), static_cast<int>(events[i].data.size()), SQLITE_STATIC);
      sqlite3_bind_blob(insert_, 6, events[i].metadata.data(), static_cast<int>(events[i].metadata.size()), SQLITE_STATIC);
      sqlite3_bind_int64(insert_, 7, now);
      Check(sqlite3_step(insert_), SQLITE_DONE, "insert");
      sqlite3_reset(insert_);
    }
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* last_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
};

std::string DbPath(const Flags& f) {
  std::filesystem::create_directories(f.dir);
  return f.dir + "/events.db";
}

Row RunAppend(const Flags& f) {
  const uint64_t appends = (f.events + f.batch - 1) / f.batch;
  const Workload w = MakeWorkload(appends, f.batch, f.streams, f.seed);
  Db db(DbPath(f), /*durable=*/true);
  std::mt19937_64 rng(f.seed + 2);
  std::vector<uint64_t> latencies;
  latencies.reserve(appends);
  uint64_t events = 0, bytes = 0;
  const auto budget = std::chrono::duration<double>(f.max_seconds);
  const double cpu_start = CpuSeconds();
  const auto start = Clock::now();
  for (uint64_t j = 0; j < appends; ++j) {
    const auto t0 = Clock::now();
    if (f.max_seconds > 0 && t0 - start > budget) break;
    db.Exec("BEGIN IMMEDIATE");
    db.Insert(rng, w.StreamOf(j), w.EventsOf(j).data(), f.batch);
    db.Exec("COMMIT");
    latencies.push_back(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
    events += f.batch;
    bytes += w.PayloadBytes(j);
  }
  Row row;
  row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  row.cpu_seconds = CpuSeconds() - cpu_start;
  row.name = fmt::format("append-1x{}-durable", f.batch);
  row.events = events;
  row.events_per_second = static_cast<double>(events) / row.seconds;
  row.mb_per_second = static_cast<double>(bytes) / row.seconds / 1e6;
  row.p50_us = Percentile(latencies, 0.5);
  row.p99_us = Percentile(latencies, 0.99);
  if (events < f.events) row.note = fmt::format("stopped by --max-seconds after {} events", events);
  SetMemory(&row);
  return row;
}

// The same store as cairn's fill: --events over --streams, plus --stream-events to account-hot
// spread evenly between them. Untimed setup: 100 events per append, many appends per transaction.
void Fill(const Flags& f) {
  constexpr uint32_t kBatch = 100;
  const uint64_t appends = (f.events + kBatch - 1) / kBatch;
  const Workload w = MakeWorkload(appends, kBatch, f.streams, f.seed);
  std::mt19937_64 rng(f.seed + 1);
  std::vector<Event> hot;
  for (uint64_t i = 0; i < std::min<uint64_t>(f.stream_events, cairn::bench::kHotPoolEvents); ++i) {
    hot.push_back(cairn::bench::MakeEventText(rng, i, f.streams));
  }
  Db db(DbPath(f), /*durable=*/false);
  const std::string hot_name(kHotStream);
  uint64_t hot_done = 0;
  db.Exec("BEGIN");
  for (uint64_t j = 0; j < appends; ++j) {
    db.Insert(rng, w.StreamOf(j), w.EventsOf(j).data(), kBatch);
    while (cairn::bench::HotEventDue(hot_done, f.stream_events, j, appends)) {
      db.Insert(rng, hot_name, &hot[hot_done % hot.size()], 1);
      hot_done++;
    }
    if (j % 1000 == 999) {
      db.Exec("COMMIT");
      db.Exec("BEGIN");
    }
  }
  db.Exec("COMMIT");
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

uint64_t Count(Db& db) {
  sqlite3_stmt* s = db.Prepare("SELECT count(*) FROM events");
  db.Check(sqlite3_step(s), SQLITE_ROW, "count");
  const uint64_t n = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
  sqlite3_finalize(s);
  return n;
}

// Steps `stmt` to its end, looking at every column as a consumer would.
void Drain(Db& db, sqlite3_stmt* stmt, uint64_t* events, uint64_t* bytes) {
  int rc;
  uint64_t n = 0, b = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    n++;
    (void)sqlite3_column_int64(stmt, 0);  // position
    (void)sqlite3_column_int64(stmt, 2);  // version
    (void)sqlite3_column_blob(stmt, 3);   // event id
    (void)sqlite3_column_int64(stmt, 7);  // recorded_at
    for (int c : {1, 4, 5, 6}) {
      (void)sqlite3_column_blob(stmt, c);
      b += static_cast<uint64_t>(sqlite3_column_bytes(stmt, c));
    }
  }
  db.Check(rc, SQLITE_DONE, "read");
  sqlite3_reset(stmt);
  *events += n;
  *bytes += b;
}

Row RunRead(const Flags& f, bool all) {
  std::string note;
  {
    Db probe(DbPath(f), false);
    if (Count(probe) == 0) note = "filled first in this process";
  }
  if (!note.empty()) Fill(f);
  Db db(DbPath(f), /*durable=*/true);
  constexpr const char* kColumns = "SELECT position, stream, version, event_id, type, data, metadata, recorded_at FROM events";
  sqlite3_stmt* stmt = db.Prepare(all ? fmt::format("{} ORDER BY position", kColumns).c_str()
                                      : fmt::format("{} WHERE stream = ?1 ORDER BY version", kColumns).c_str());
  sqlite3_bind_text(stmt, 1, kHotStream.data(), static_cast<int>(kHotStream.size()), SQLITE_STATIC);
  uint64_t events = 0, bytes = 0, passes = 0;
  Drain(db, stmt, &events, &bytes);  // warm-up
  events = bytes = 0;
  const double cpu_start = CpuSeconds();
  const auto start = Clock::now();
  double seconds = 0;
  do {
    Drain(db, stmt, &events, &bytes);
    passes++;
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
  } while (seconds < f.min_seconds);
  sqlite3_finalize(stmt);
  Row row;
  row.name = all ? "read-all" : "read-stream";
  row.events = events;
  row.seconds = seconds;
  row.cpu_seconds = CpuSeconds() - cpu_start;
  row.events_per_second = static_cast<double>(events) / seconds;
  row.mb_per_second = static_cast<double>(bytes) / seconds / 1e6;
  row.note = fmt::format("{} events per pass, {} warm passes after one warm-up; no checksums", events / passes, passes);
  if (!note.empty()) row.note += "; " + note;
  SetMemory(&row);
  return row;
}

void Print(const std::vector<Row>& rows, bool tsv) {
  if (tsv) {
    cairn::bench::PrintTsv(rows, true);
  } else {
    cairn::bench::PrintTable(rows);
  }
}

std::string CommandOf(const Flags& f) {
  std::string s = fmt::format("cairn_sqlite_bench --dir {} --workload {}", f.dir, f.workload);
  if (f.workload == "append") {
    s += fmt::format(" --batch {} --events {} --streams {}", f.batch, f.events, f.streams);
    if (f.max_seconds > 0) s += fmt::format(" --max-seconds {}", f.max_seconds);
  } else {
    s += fmt::format(" --events {} --streams {} --stream-events {} --min-seconds {}", f.events, f.streams,
                     f.stream_events, f.min_seconds);
  }
  return s;
}

Row RunOne(const Flags& f) {
  Row row;
  if (f.workload == "append") {
    if (f.batch == 0) Die("--batch must be at least 1");
    row = RunAppend(f);
  } else if (f.workload == "read-all" || f.workload == "read-stream") {
    row = RunRead(f, f.workload == "read-all");
  } else {
    Die(fmt::format("--workload: '{}' is not append, read-all or read-stream", f.workload));
  }
  row.command = CommandOf(f);
  return row;
}

std::vector<Row> RunSuite(const Flags& flags) {
  const bool full = flags.suite == "full";
  if (!full && flags.suite != "quick") Die(fmt::format("--suite: '{}' is not quick or full", flags.suite));
  const uint64_t read_events = flags.events_option->count() > 0 ? flags.events : (full ? 10'000'000 : 200'000);
  const uint64_t write_events = flags.write_events > 0 ? flags.write_events : (full ? 1'000'000 : 100'000);
  const double cap = flags.max_seconds_option->count() > 0 ? flags.max_seconds : (full ? 20 : 5);
  std::vector<Row> rows;
  auto scratch = [&](const std::string& name) {
    const std::string dir = flags.dir + "/" + name;
    if (std::filesystem::exists(dir)) Die(fmt::format("{} exists: give an empty scratch directory", dir));
    return dir;
  };
  for (uint32_t batch : {1u, 100u}) {
    Flags f = flags;
    f.workload = "append";
    f.batch = batch;
    f.events = write_events;
    f.max_seconds = cap;
    f.dir = scratch(fmt::format("append-1x{}", batch));
    std::fprintf(stderr, "cairn_sqlite_bench: %s\n", CommandOf(f).c_str());
    rows.push_back(RunOne(f));
    if (!flags.keep) std::filesystem::remove_all(f.dir);
  }
  Flags r = flags;
  r.events = read_events;
  r.dir = scratch("reads");
  Fill(r);
  for (const char* w : {"read-all", "read-stream"}) {
    r.workload = w;
    std::fprintf(stderr, "cairn_sqlite_bench: %s\n", CommandOf(r).c_str());
    rows.push_back(RunOne(r));
  }
  if (!flags.keep) std::filesystem::remove_all(r.dir);
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cairn_sqlite_bench: the SQLite baseline of `cairn bench` (WAL, synchronous=FULL, one transaction "
               "per append)"};
  Flags f;
  app.add_option("--dir", f.dir, "Scratch directory for the database (events.db)")->required();
  app.add_option("--workload", f.workload, "append, read-all or read-stream. Default: append");
  app.add_option("--suite", f.suite, "quick or full: run every workload in subdirectories of --dir");
  app.add_option("--batch", f.batch, "Events per append. Default: 1");
  f.events_option = app.add_option("--events", f.events, "Events to append (reads: to fill). Default: 100000");
  app.add_option("--write-events", f.write_events, "Suite: events of each append workload");
  app.add_option("--streams", f.streams, "Streams the events spread over. Default: 100000");
  app.add_option("--stream-events", f.stream_events, "Events of account-hot. Default: 10000");
  f.max_seconds_option = app.add_option("--max-seconds", f.max_seconds, "Stop appending after this long. Default: 0");
  app.add_option("--min-seconds", f.min_seconds, "Reads: repeat warm passes this long. Default: 2");
  app.add_option("--seed", f.seed, "Seed of the generated events. Default: 1");
  app.add_flag("--tsv", f.tsv, "Print tab-separated values");
  app.add_flag("--keep", f.keep, "Suite: keep the databases");
  CLI11_PARSE(app, argc, argv);
  std::vector<Row> rows = f.suite.empty() ? std::vector<Row>{RunOne(f)} : RunSuite(f);
  Print(rows, f.tsv);
  return 0;
}

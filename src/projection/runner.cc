// The projection runner (include/cairn/projection.h): a catch-up subscription to $all whose events
// are applied by handlers in SQLite transactions that also move the checkpoint.
#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <exception>
#include <limits>
#include <mutex>

#include "cairn/projection.h"
#include "cairn/store.h"
#include "cairn/subscription.h"
#include "projection/pg_sql.h"
#include "projection/sqlite_sql.h"
#include "util/check.h"

namespace cairn {

using projection::PgSql;
using projection::SinkSql;
using projection::SqliteSql;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxProjectionNameBytes = 200;
// A filtered projection that skips many events saves its place at most this often when idle.
constexpr auto kIdleCheckpointEvery = std::chrono::seconds(1);

int64_t ToSql(Position p) {
  CAIRN_CHECK(p.value() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  return static_cast<int64_t>(p.value());
}

// SQLite's memory statistics (sqlite3_memory_used and friends) take a global mutex on every
// allocation SQLite makes: about 7 % of a declarative projection's time in the profile
// (docs/performance.md). The runner does not use them, so it turns them off, once per process,
// before SQLite initializes. When something else in the process initialized SQLite first, the
// call fails (SQLITE_MISUSE) and changes nothing, which is harmless.
void TuneSqliteOnce() {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

std::string Describe(const RecordedEventView& e) {
  return fmt::format("event {}@{} (position {}, type {}, id {})", e.stream, e.version, e.position.value(), e.type,
                     e.id.ToString());
}

}  // namespace

Projection& Projection::Table(std::string name, std::string create_sql) {
  tables_.push_back({std::move(name), std::move(create_sql)});
  return *this;
}

Projection& Projection::On(std::string event_type, Handler handler, std::string handler_name) {
  if (handler_name.empty()) {
    size_t index = 0;
    for (const auto& h : handlers_) index += h.event_type == event_type ? 1 : 0;
    handler_name = fmt::format("{}#{}", event_type, index);
  }
  handlers_.push_back({std::move(event_type), std::move(handler_name), std::move(handler)});
  return *this;
}

Projection& Projection::Filter(EventFilter filter) {
  filter_ = std::move(filter);
  return *this;
}

struct ProjectionRunner::Impl {
  Store& store;
  Projection projection;
  ProjectionOptions options;
  sqlite3* db = nullptr;  // SQLite sink only
  std::unique_ptr<SinkSql> sql;
  bool pg = false;  // the read model is in PostgreSQL (a postgres:// target)
  // Handlers grouped by type, in the order added; a short list, scanned per event.
  std::vector<std::pair<std::string, std::vector<const Projection::HandlerDef*>>> by_type;
  EventFilter filter;

  Impl(Store& s, Projection p, const ProjectionOptions& o) : store(s), projection(std::move(p)), options(o) {}
  ~Impl() {
    sql.reset();
    if (db != nullptr) sqlite3_close_v2(db);
  }

  Status Exec(std::string_view text, const std::vector<SqlValue>& params = {}) { return sql->Exec(text, params); }
  // The two dialects differ in a few statements of the runner's own; handlers write their own.
  const char* BeginSql() const { return pg ? "BEGIN" : "BEGIN IMMEDIATE"; }

  Status CreateTables() {
    for (const auto& t : projection.tables_) {
      CAIRN_ASSIGN_OR_RETURN(
          auto rows, sql->Query(pg ? "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?1"
                                   : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                                {SqlValue(t.name)}));
      if (!rows.empty()) continue;
      Status s = sql->Script(t.create_sql);
      if (!s.ok()) return s.WithContext(fmt::format("projection {}: create table {}", projection.name(), t.name));
    }
    return Status::Ok();
  }

  Result<Position> LoadCheckpoint() {
    CAIRN_ASSIGN_OR_RETURN(auto rows, sql->Query("SELECT checkpoint FROM cairn_projections WHERE name = ?1",
                                                 {SqlValue(projection.name())}));
    if (rows.empty()) return Position::Start();
    return Position(static_cast<uint64_t>(std::get<int64_t>(rows[0][0])));
  }

  Result<std::unique_ptr<Subscription>> Subscribe(Position from) {
    SubscribeToAllOptions o;
    o.from = AllFrom::Checkpoint(from);
    o.filter = filter;
    return SubscribeToAll(store, o);
  }

  // Runs the handlers of `e`; the first failure, with the handler's name.
  Status Apply(const RecordedEventView& e, std::string* failed_handler) {
    for (const auto& [type, handlers] : by_type) {
      if (type != e.type) continue;
      for (const Projection::HandlerDef* h : handlers) {
        Status s;
        try {
          s = h->handler(e, *sql);
        } catch (const std::exception& ex) {
          s = Status::Internal(fmt::format("threw: {}", ex.what()));
        } catch (...) {
          s = Status::Internal("threw a non-standard exception");
        }
        if (!s.ok()) {
          *failed_handler = h->name;
          return s;
        }
      }
    }
    return Status::Ok();
  }
};

ProjectionRunner::ProjectionRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProjectionRunner::~ProjectionRunner() = default;

Result<std::unique_ptr<ProjectionRunner>> ProjectionRunner::Open(Store& store, Projection projection,
                                                                 const std::string& sqlite_path,
                                                                 const ProjectionOptions& options) {
  if (projection.name().empty() || projection.name().size() > kMaxProjectionNameBytes) {
    return Status::InvalidArgument(
        fmt::format("projection name: {} bytes, must be 1 to {}", projection.name().size(), kMaxProjectionNameBytes));
  }
  if (projection.handlers_.empty()) {
    return Status::InvalidArgument(fmt::format("projection {}: no handlers", projection.name()));
  }
  if (options.batch_max_events == 0) return Status::InvalidArgument("batch_max_events: must be at least 1");
  auto impl = std::make_unique<Impl>(store, std::move(projection), options);
  for (const auto& h : impl->projection.handlers_) {
    auto it = std::find_if(impl->by_type.begin(), impl->by_type.end(), [&](const auto& p) { return p.first == h.event_type; });
    if (it == impl->by_type.end()) {
      impl->by_type.push_back({h.event_type, {}});
      it = impl->by_type.end() - 1;
    }
    it->second.push_back(&h);
  }
  impl->filter = impl->projection.filter_;
  impl->filter.event_types.clear();
  for (const auto& [type, handlers] : impl->by_type) impl->filter.event_types.push_back(type);

  Status s;
  if (sqlite_path.starts_with("postgres://") || sqlite_path.starts_with("postgresql://")) {
    // The read model in PostgreSQL: the same tables and the same one-transaction rule.
    auto pg = PgSql::Connect(sqlite_path);
    if (!pg.ok()) return pg.status().WithContext("projection read model");
    impl->sql = std::move(pg).value();
    impl->pg = true;
    s = impl->sql->Script(
        "CREATE TABLE IF NOT EXISTS cairn_projections ("
        "  name TEXT PRIMARY KEY, checkpoint BIGINT NOT NULL DEFAULT 0,"
        "  events_handled BIGINT NOT NULL DEFAULT 0, events_parked BIGINT NOT NULL DEFAULT 0,"
        "  last_recorded_at BIGINT);"
        "CREATE TABLE IF NOT EXISTS cairn_parked ("
        "  name TEXT NOT NULL, position BIGINT NOT NULL, stream TEXT NOT NULL, version BIGINT NOT NULL,"
        "  type TEXT NOT NULL, event_id TEXT NOT NULL, handler TEXT NOT NULL, reason TEXT NOT NULL,"
        "  PRIMARY KEY (name, position));");
    if (!s.ok()) return s.WithContext("projection read model");
  } else {
    TuneSqliteOnce();
    if (sqlite3_open_v2(sqlite_path.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string message = impl->db ? sqlite3_errmsg(impl->db) : "out of memory";
      return Status::IOError(fmt::format("open SQLite database {}: {}", sqlite_path, message));
    }
    impl->sql = std::make_unique<SqliteSql>(impl->db);
    sqlite3_busy_timeout(impl->db, 5000);
    s = impl->sql->Script(
        "PRAGMA journal_mode = WAL;"
        "PRAGMA synchronous = NORMAL;"
        "PRAGMA cache_size = -32768;"
        "PRAGMA wal_autocheckpoint = 8192;"
        "CREATE TABLE IF NOT EXISTS cairn_projections ("
        "  name TEXT PRIMARY KEY, checkpoint INTEGER NOT NULL DEFAULT 0,"
        "  events_handled INTEGER NOT NULL DEFAULT 0, events_parked INTEGER NOT NULL DEFAULT 0,"
        "  last_recorded_at INTEGER);"
        "CREATE TABLE IF NOT EXISTS cairn_parked ("
        "  name TEXT NOT NULL, position INTEGER NOT NULL, stream TEXT NOT NULL, version INTEGER NOT NULL,"
        "  type TEXT NOT NULL, event_id TEXT NOT NULL, handler TEXT NOT NULL, reason TEXT NOT NULL,"
        "  PRIMARY KEY (name, position));");
    if (!s.ok()) return s.WithContext("open SQLite database " + sqlite_path);
  }
  CAIRN_RETURN_IF_ERROR(impl->sql->Script(impl->BeginSql()));
  s = impl->Exec(impl->pg ? "INSERT INTO cairn_projections (name) VALUES (?1) ON CONFLICT DO NOTHING"
                          : "INSERT OR IGNORE INTO cairn_projections (name) VALUES (?1)",
                 {impl->projection.name()});
  if (s.ok()) s = impl->CreateTables();
  if (s.ok()) s = impl->sql->Script("COMMIT");
  if (!s.ok()) {
    (void)impl->sql->Script("ROLLBACK");
    return s;
  }
  return std::unique_ptr<ProjectionRunner>(new ProjectionRunner(std::move(impl)));
}

Status ProjectionRunner::Run(const ProjectionRunOptions& run_options) {
  Impl& m = *impl_;
  SinkSql& sql = *m.sql;
  const std::string& name = m.projection.name();
  CAIRN_ASSIGN_OR_RETURN(Position committed, m.LoadCheckpoint());
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Subscription> sub, m.Subscribe(committed));

  bool in_txn = false;
  uint32_t batch = 0;
  Position batch_checkpoint = committed;  // the checkpoint after the last message handled
  std::optional<Timestamp> last_recorded;
  auto last_commit = Clock::now();
  // After a handler failed: the failing event's position, the handler and the reason.
  std::optional<Position> failing_position;
  std::string failed_handler;
  Status failure;

  auto begin = [&]() -> Status {
    CAIRN_RETURN_IF_ERROR(sql.Exec(m.BeginSql()));
    in_txn = true;
    batch = 0;
    return Status::Ok();
  };
  // The batch's changes and its checkpoint, in one transaction.
  auto commit = [&](Position checkpoint) -> Status {
    if (!in_txn) CAIRN_RETURN_IF_ERROR(begin());
    // Built step by step: g++ -O2 warns a false maybe-uninitialized on a conditional SqlValue
    // inside an initializer list, and warnings are errors.
    std::vector<SqlValue> params;
    params.reserve(4);
    params.emplace_back(ToSql(checkpoint));
    params.emplace_back(static_cast<int64_t>(batch));
    if (last_recorded) {
      params.emplace_back(last_recorded->nanos);
    } else {
      params.emplace_back(nullptr);
    }
    params.emplace_back(name);
    CAIRN_RETURN_IF_ERROR(sql.Exec(
        "UPDATE cairn_projections SET checkpoint = ?1, events_handled = events_handled + ?2,"
        " last_recorded_at = COALESCE(?3, last_recorded_at) WHERE name = ?4",
        params));
    CAIRN_RETURN_IF_ERROR(sql.Exec("COMMIT"));
    in_txn = false;
    batch = 0;
    committed = checkpoint;
    last_recorded.reset();
    last_commit = Clock::now();
    return Status::Ok();
  };
  auto rollback = [&] {
    if (in_txn) (void)sql.Exec("ROLLBACK");
    in_txn = false;
    batch = 0;
    last_recorded.reset();
  };
  auto finish = [&](Status status) {
    if (status.ok() && in_txn) status = commit(batch_checkpoint);
    if (!status.ok()) rollback();
    stop_.store(false, std::memory_order_release);
    return status;
  };

  for (;;) {
    if (stop_.load(std::memory_order_acquire)) return finish(Status::Ok());
    // Inside a batch, do not wait: commit what there is as soon as nothing more is ready.
    if (!sub->Next(in_txn ? std::chrono::milliseconds(0) : std::chrono::milliseconds(100))) {
      if (sub->done()) return finish(sub->status().WithContext("projection " + name));
      Status s;
      if (in_txn) {
        s = commit(batch_checkpoint);
      } else if (sub->checkpoint() != committed && Clock::now() - last_commit >= kIdleCheckpointEvery) {
        // Only skipped events since: save the place so that a restart does not rescan them.
        batch_checkpoint = sub->checkpoint();
        s = commit(batch_checkpoint);
      }
      if (!s.ok()) return finish(s);
      if (!run_options.follow && sub->live() && !failing_position) return finish(Status::Ok());
      continue;
    }
    const SubscriptionMessage& msg = sub->message();
    if (msg.kind != SubscriptionMessage::Kind::kEvent) {
      batch_checkpoint = msg.checkpoint;
      if (msg.kind == SubscriptionMessage::Kind::kCaughtUp && !run_options.follow && !failing_position) {
        return finish(Status::Ok());
      }
      if (msg.kind == SubscriptionMessage::Kind::kCheckpoint && !in_txn) {
        Status s = commit(batch_checkpoint);
        if (!s.ok()) return finish(s);
      }
      continue;
    }
    const RecordedEventView& e = msg.event;
    if (failing_position && e.position >= *failing_position) {
      // The events before the failing one are applied again: keep them, then deal with it.
      if (in_txn) {
        Status s = commit(batch_checkpoint);
        if (!s.ok()) return finish(s);
      }
      failing_position.reset();
      Status error = Status(failure.code(), fmt::format("projection {}: handler {} failed on {}: {}", name,
                                                        failed_handler, Describe(e), failure.message()));
      if (m.options.on_error == OnHandlerError::kStop) return finish(error);
      Status s = begin();
      if (s.ok()) {
        s = sql.Exec(
            m.pg ? "INSERT INTO cairn_parked (name, position, stream, version, type, event_id, handler, reason)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name, position) DO UPDATE SET"
                   " stream = EXCLUDED.stream, version = EXCLUDED.version, type = EXCLUDED.type,"
                   " event_id = EXCLUDED.event_id, handler = EXCLUDED.handler, reason = EXCLUDED.reason"
                 : "INSERT OR REPLACE INTO cairn_parked (name, position, stream, version, type, event_id, handler, reason)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            {name, ToSql(e.position), std::string(e.stream), static_cast<int64_t>(e.version), std::string(e.type),
             e.id.ToString(), failed_handler, failure.ToString()});
      }
      if (s.ok()) {
        s = sql.Exec("UPDATE cairn_projections SET events_parked = events_parked + 1 WHERE name = ?1", {name});
      }
      batch_checkpoint = msg.checkpoint;
      if (s.ok()) s = commit(batch_checkpoint);
      if (!s.ok()) return finish(s);
      continue;
    }
    if (!in_txn) {
      Status s = begin();
      if (!s.ok()) return finish(s);
    }
    std::string handler;
    Status applied = m.Apply(e, &handler);
    if (!applied.ok()) {
      // Undo the whole batch (the failing handler may have changed part of the read model), then
      // read again from the committed checkpoint up to the failing event.
      rollback();
      failing_position = e.position;
      failed_handler = handler;
      failure = applied;
      batch_checkpoint = committed;
      auto again = m.Subscribe(committed);
      if (!again.ok()) return finish(again.status());
      sub = std::move(*again);
      continue;
    }
    ++batch;
    batch_checkpoint = msg.checkpoint;
    last_recorded = e.recorded_at;
    if (batch >= m.options.batch_max_events) {
      Status s = commit(batch_checkpoint);
      if (!s.ok()) return finish(s);
    }
  }
}

Status ProjectionRunner::Rebuild() {
  Impl& m = *impl_;
  m.sql->ClearCache();
  CAIRN_RETURN_IF_ERROR(m.sql->Script(m.BeginSql()));
  Status s;
  for (const auto& t : m.projection.tables_) {
    if (!s.ok()) break;
    s = m.sql->Script(fmt::format("DROP TABLE IF EXISTS \"{}\"", t.name));
  }
  if (s.ok()) s = m.Exec("DELETE FROM cairn_parked WHERE name = ?1", {m.projection.name()});
  if (s.ok()) {
    s = m.Exec(
        "UPDATE cairn_projections SET checkpoint = 0, events_handled = 0, events_parked = 0, last_recorded_at = NULL"
        " WHERE name = ?1",
        {m.projection.name()});
  }
  if (s.ok()) s = m.CreateTables();
  if (s.ok()) s = m.sql->Script("COMMIT");
  if (!s.ok()) {
    (void)m.sql->Script("ROLLBACK");
    return s.WithContext("rebuild projection " + m.projection.name());
  }
  return Status::Ok();
}

Result<ProjectionStatus> ProjectionRunner::GetStatus() {
  Impl& m = *impl_;
  CAIRN_ASSIGN_OR_RETURN(auto rows, m.sql->Query("SELECT checkpoint, events_handled, events_parked, last_recorded_at"
                                                 " FROM cairn_projections WHERE name = ?1",
                                                 {m.projection.name()}));
  ProjectionStatus status;
  status.name = m.projection.name();
  if (!rows.empty()) {
    status.checkpoint = Position(static_cast<uint64_t>(std::get<int64_t>(rows[0][0])));
    status.events_handled = static_cast<uint64_t>(std::get<int64_t>(rows[0][1]));
    status.events_parked = static_cast<uint64_t>(std::get<int64_t>(rows[0][2]));
    if (const int64_t* t = std::get_if<int64_t>(&rows[0][3])) status.last_recorded_at = Timestamp{*t};
  }
  ReadAllOptions o;
  o.from = status.checkpoint;
  o.filter = m.filter;
  CAIRN_ASSIGN_OR_RETURN(EventCursor cursor, m.store.ReadAll(o));
  std::optional<Timestamp> newest;
  while (cursor.Next()) {
    ++status.lag_events;
    newest = cursor.event().recorded_at;
  }
  CAIRN_RETURN_IF_ERROR(cursor.status());
  if (newest && status.last_recorded_at) {
    status.lag_ms = std::max<int64_t>(0, (newest->nanos - status.last_recorded_at->nanos) / 1'000'000);
  }
  return status;
}

}  // namespace cairn

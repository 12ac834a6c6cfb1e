// Projections: read models built from events, kept in SQLite (the embedded default sink).
//
//   Projection p("customer_orders");
//   p.Table("order_summary", "CREATE TABLE order_summary (order_id TEXT PRIMARY KEY, ...)");
//   p.On("OrderCreated", [](const RecordedEventView& e, Sql& sql) {
//     auto data = nlohmann::json::parse(e.data);
//     return sql.Exec("INSERT INTO order_summary VALUES (?, ?, ?, 'pending')",
//                     {data["order_id"].get<std::string>(), ...});
//   });
//   auto runner = ProjectionRunner::Open(*store, std::move(p), "read.db");
//   (*runner)->Run({.follow = true});   // until Stop()
//
// The guarantee: each event changes the read model exactly once, also across crashes. The
// runner applies events in batches; each batch's read-model changes and the projection's
// checkpoint are written in ONE SQLite transaction, so after a crash (kill -9 at any instruction)
// the read model and the checkpoint agree, and the runner resumes right after the last committed
// event. The runner reads with a catch-up subscription (subscription.h), so it neither skips nor
// repeats events under concurrent writers.
//
// Handlers are user code: they may return a non-OK Status or throw; the runner catches at that
// boundary. A failing event's batch is rolled back, the events before it are applied again and
// committed, and then, by ProjectionOptions::on_error, the runner stops with an error naming the
// event, the handler and the reason (kStop: the checkpoint stays before the event, so the next
// run retries it), or records the event in the table cairn_parked and goes on (kPark).
//
// Bookkeeping lives beside the read model, in the same SQLite file: cairn_projections (one row per
// projection: checkpoint, counts) and cairn_parked. SQLite runs in WAL mode with
// synchronous=NORMAL: a power loss can undo the last transactions, read model and checkpoint
// together, which replays them; it can never split them. The runner turns off SQLite's memory
// statistics (SQLITE_CONFIG_MEMSTATUS, sqlite3_memory_used) once per process before SQLite
// initializes, for speed; it changes nothing when the process initialized SQLite before.
//
// Thread-safety: a runner is used by one thread; Stop() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cairn/event.h"
#include "cairn/read.h"
#include "cairn/status.h"
#include "cairn/types.h"

struct sqlite3;

namespace cairn {

class Store;

// A SQL value: NULL, an integer, a real or text (blobs travel as text).
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;

// The read model's SQLite connection as a handler sees it: statements are prepared once per text
// and cached, parameters bind to ?1, ?2, ... in order. Errors come back as kInvalidArgument
// (bad SQL, a constraint) or kIOError, with SQLite's message and the statement.
class Sql {
 public:
  virtual ~Sql() = default;
  virtual Status Exec(std::string_view sql, std::initializer_list<SqlValue> params = {}) = 0;
  virtual Status Exec(std::string_view sql, const std::vector<SqlValue>& params) = 0;
  // Rows of a query (for lookups a handler needs, e.g. a name to denormalize).
  virtual Result<std::vector<std::vector<SqlValue>>> Query(std::string_view sql, const std::vector<SqlValue>& params = {}) = 0;
  // The raw connection, for what the above does not cover. Do not BEGIN, COMMIT or ROLLBACK.
  // nullptr when the read model is in PostgreSQL.
  virtual sqlite3* handle() = 0;
};

// What a projection is: tables, and handlers by event type.
class Projection {
 public:
  using Handler = std::function<Status(const RecordedEventView&, Sql&)>;

  // `name`: 1 to 200 bytes; it keys the checkpoint row, so two projections may share a file.
  explicit Projection(std::string name) : name_(std::move(name)) {}

  // A table of the read model and the SQL that creates it. Created when missing; dropped and
  // created again by a rebuild.
  Projection& Table(std::string name, std::string create_sql);
  // Handles events of `event_type`. Several handlers per type run in the order added; `handler_name`
  // names it in errors (default: the type and its index, "OrderCreated#0").
  Projection& On(std::string event_type, Handler handler, std::string handler_name = "");
  // Further narrows which events are read (stream prefixes, categories); the event types are
  // always those with handlers.
  Projection& Filter(EventFilter filter);

  const std::string& name() const { return name_; }

 private:
  friend class ProjectionRunner;
  struct TableDef {
    std::string name, create_sql;
  };
  struct HandlerDef {
    std::string event_type, name;
    Handler handler;
  };
  std::string name_;
  std::vector<TableDef> tables_;
  std::vector<HandlerDef> handlers_;
  EventFilter filter_;
};

enum class OnHandlerError : uint8_t {
  kStop,  // stop with the event, the handler and the reason; the next run retries the event
  kPark,  // record it in cairn_parked and continue after it
};

struct ProjectionOptions {
  // Events per transaction. Large batches amortize the commit; small ones make the read model
  // fresher during a long catch-up. A partial batch is committed as soon as the subscription has
  // nothing more to read at once.
  uint32_t batch_max_events = 1000;
  OnHandlerError on_error = OnHandlerError::kStop;
};

struct ProjectionRunOptions {
  // false: return once caught up. true: keep applying live events until Stop().
  bool follow = false;
};

struct ProjectionStatus {
  std::string name;
  Position checkpoint;            // the committed checkpoint ($all resume position)
  uint64_t events_handled = 0;    // events applied since the last rebuild
  uint64_t events_parked = 0;
  std::optional<Timestamp> last_recorded_at;  // of the last event applied
  // Events the projection reads that are not applied yet (counted by reading from the checkpoint).
  uint64_t lag_events = 0;
  // The time between the last applied event and the newest one it reads (0 when caught up).
  int64_t lag_ms = 0;
};

class ProjectionRunner {
 public:
  ~ProjectionRunner();

  // `sqlite_path` may instead be a postgres://user:pass@host:port/db URL: the read model, its
  // checkpoint and parked events then live in that PostgreSQL database (current schema), with the
  // same rule (changes and checkpoint in one transaction). Handlers write PostgreSQL's SQL there;
  // parameters may still be ?1, ?2, ... (or $1, $2), sent as text and typed by the server.
  // Run one runner per projection at a time.
  // Opens (creating when missing) the SQLite file at `sqlite_path`, its bookkeeping tables and the
  // projection's tables. kInvalidArgument for a bad projection (no handler, a bad name); kIOError
  // when SQLite cannot open the file.
  static Result<std::unique_ptr<ProjectionRunner>> Open(Store& store, Projection projection, const std::string& sqlite_path,
                                                        const ProjectionOptions& options = {});

  // Applies events from the committed checkpoint on. Returns OK when caught up (follow=false) or
  // after Stop(); the handler error (kStop), or a read or SQLite error otherwise.
  Status Run(const ProjectionRunOptions& options = {});
  // Makes Run() return soon, after committing what it applied. Any thread.
  void Stop() { stop_.store(true, std::memory_order_release); }

  // Drops the read model's tables, its checkpoint and parked events, and creates the tables again;
  // the next Run() replays from the first event. Not while Run() runs.
  Status Rebuild();

  Result<ProjectionStatus> GetStatus();

 private:
  struct Impl;
  explicit ProjectionRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

// A declarative SQL projection: a spec (JSON; docs/projections.md) mapping event types to
// parameterised SQL, with parameters taken from the event by path, plus the table definitions.
// Returns the Projection the runner runs; kInvalidArgument naming the field for a bad spec.
Result<Projection> ProjectionFromSpec(std::string_view spec_json);

// What ProjectionRunner::Open takes, from a sink URL as users write it (`cairn project --sink`,
// `sink =` in the server's [[projections]]): "sqlite:PATH" or a plain path gives the path,
// "postgres://..." / "postgresql://..." is taken as it is. kInvalidArgument for an empty path or
// another scheme, naming the supported ones.
Result<std::string> ProjectionSinkTarget(std::string_view sink);

}  // namespace cairn

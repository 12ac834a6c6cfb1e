// Proves what only the PostgreSQL backend has to prove, beyond the conformance suite: a clear error
// when the server is unreachable or the schema is newer than the binary; commit order across
// processes (8 writer processes with random delays inside their transactions, and a $all
// subscriber whose sequence must equal the final $all order); optimistic concurrency and
// idempotency across processes and across two `cairn serve` instances; the writer's one-round-trip
// cache caught whenever it is stale; stats; `cairn project` into PostgreSQL; and live wake-up
// through LISTEN/NOTIFY rather than polling.
// How: real PostgreSQL (the ctest fixture's cluster), child processes of this same binary
// (the PgChild tests, which run only when the parent sets CAIRN_PG_CHILD).
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cairn/projection.h"
#include "cairn/store.h"
#include "cairn/subscription.h"
#include "postgres/pg.h"
#include "postgres/pg_store.h"
#include "postgres/schema.h"
#include "util/pg_test_util.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

EventData Event(std::string type, std::string data, Uuid id = Uuid::V7()) {
  EventData e;
  e.id = id;
  e.type = std::move(type);
  e.data = std::move(data);
  return e;
}

// Runs this test binary as a child with --gtest_filter=PgChild.<role>, this process's environment
// plus `env`, and its standard output on `stdout_fd` (when not -1). Everything the child needs is
// built before the fork: the child of a process with other threads (a store's writer and
// listener, a subscriber) may call only async-signal-safe functions until exec. A setenv there
// (a malloc) hung about one run in fifteen under ASan, waiting for the allocator's lock that
// another thread of the parent held at the fork.
pid_t SpawnChild(const std::string& role, const std::map<std::string, std::string>& env, int stdout_fd = -1) {
  std::map<std::string, std::string> vars = env;
  vars["CAIRN_PG_CHILD"] = role;
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (!vars.contains(std::string(entry.substr(0, entry.find('='))))) entries.emplace_back(entry);
  }
  for (const auto& [k, v] : vars) entries.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& entry : entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string name = "pg_child", filter = "--gtest_filter=PgChild." + role, brief = "--gtest_brief=1";
  char* argv[] = {name.data(), filter.data(), brief.data(), nullptr};
  const pid_t pid = fork();
  if (pid == 0) {
    if (stdout_fd >= 0) dup2(stdout_fd, STDOUT_FILENO);
    execve("/proc/self/exe", argv, envp.data());
    _exit(127);
  }
  return pid;
}

int WaitChild(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A read model's own schema in the test database, dropped at the end; `url` points a projection
// sink at it (search_path through libpq's options parameter).
struct ReadModelSchema {
  ReadModelSchema(const std::string& base, std::string name) : base_url(base.substr(0, base.find('?'))), schema(std::move(name)) {
    url = base_url + "?options=-c%20search_path%3D" + schema;
    auto info = postgres::ParseConnInfo(base_url);
    if (!info.ok()) return;
    auto c = postgres::Conn::Connect(*info);
    if (!c.ok() || !(*c)->Exec(fmt::format("CREATE SCHEMA {}", schema)).ok()) return;
    conn = std::move(c).value();
  }
  ~ReadModelSchema() {
    if (conn != nullptr) testing::DropSchema(base_url, schema);
  }
  std::string base_url, schema, url;
  std::unique_ptr<postgres::Conn> conn;  // null when the schema could not be made
};

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = testing::TestPostgresUrl();
    if (!url) GTEST_SKIP() << "no test PostgreSQL (set CAIRN_TEST_POSTGRES_URL, or run through ctest)";
    base_ = *url;
    schema_ = testing::UniqueSchema("pgt");
  }
  void TearDown() override {
    if (!base_.empty()) testing::DropSchema(base_, schema_);
  }
  std::string Url(const std::string& more = "") const { return testing::WithSchema(base_, schema_, more); }

  std::string base_;
  std::string schema_;
};

// ---- Opening.

TEST(PgOpenTest, UnreachableServerIsUnavailableNamingHostAndPort) {
  // Port 1 on loopback: nothing listens there, the connection is refused at once.
  auto store = Store::Open("postgres://cairn:secret@127.0.0.1:1/cairn?connect_timeout=5");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_NE(store.status().message().find("127.0.0.1:1"), std::string::npos) << store.status().ToString();
  // The password is not repeated in the message.
  EXPECT_EQ(store.status().message().find("secret"), std::string::npos) << store.status().ToString();
}

TEST(PgOpenTest, BadCairnOptionsAreInvalidArgumentNamingThem) {
  auto bad_schema = Store::Open("postgres://u@127.0.0.1:1/db?schema=Bad-Name");
  EXPECT_EQ(bad_schema.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_schema.status().message().find("schema"), std::string::npos);
  auto bad_sync = Store::Open("postgres://u@127.0.0.1:1/db?sync=sometimes");
  EXPECT_EQ(bad_sync.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_sync.status().message().find("sync"), std::string::npos);
  auto bad_libpq = Store::Open("postgres://u@127.0.0.1:1/db?no_such_option=1");
  EXPECT_EQ(bad_libpq.status().code(), StatusCode::kInvalidArgument) << bad_libpq.status().ToString();
}

TEST_F(PgTest, MigrationRecordsTheSchemaVersion) {
  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  auto info = postgres::ParseConnInfo(base_.substr(0, base_.find('?')));
  ASSERT_TRUE(info.ok());
  auto conn = postgres::Conn::Connect(*info);
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  auto r = (*conn)->Exec(fmt::format("SELECT max(version)::int8, count(*)::int8 FROM {}.schema_version", schema_),
                         postgres::Params());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Int64(0, 0), postgres::kSchemaVersion);
  EXPECT_EQ(r->Int64(0, 1), postgres::kSchemaVersion);
  // A second open migrates nothing more.
  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  auto again = (*conn)->Exec(fmt::format("SELECT count(*)::int8 FROM {}.schema_version", schema_), postgres::Params());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Int64(0, 0), postgres::kSchemaVersion);
}

TEST_F(PgTest, SchemaNewerThanTheBinaryIsRefusedNamingBothVersions) {
  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Append("keep-1", ExpectedVersion::NoStream(), std::vector<EventData>{Event("A", "{}")}).ok());
  }
  auto info = postgres::ParseConnInfo(base_.substr(0, base_.find('?')));
  ASSERT_TRUE(info.ok());
  auto conn = postgres::Conn::Connect(*info);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Exec(fmt::format("INSERT INTO {}.schema_version (version) VALUES (42)", schema_)).ok());
  auto store = Store::Open(Url());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
  EXPECT_NE(store.status().message().find("42"), std::string::npos) << store.status().ToString();
  EXPECT_NE(store.status().message().find(fmt::format("up to {}", postgres::kSchemaVersion)), std::string::npos)
      << store.status().ToString();
  // Nothing was changed by the refused open.
  auto count = (*conn)->Exec(fmt::format("SELECT count(*)::int8 FROM {}.events", schema_), postgres::Params());
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->Int64(0, 0), 1);
}

TEST_F(PgTest, EventTypeWithNulIsInvalidArgument) {
  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto r = (*store)->Append("nul-1", ExpectedVersion::Any(), std::vector<EventData>{Event(std::string("A\0B", 3), "{}")});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("type"), std::string::npos) << r.status().ToString();
  // The store goes on.
  EXPECT_TRUE((*store)->Append("nul-1", ExpectedVersion::NoStream(), std::vector<EventData>{Event("A", "{}")}).ok());
}

// ---- Live wake-up.

TEST_F(PgTest, WaitForAppendIsWokenByAnotherStoresCommitThroughNotify) {
  // The safety-net poll is an hour here: only NOTIFY can wake the waiter in time.
  auto waiter = Store::Open(Url("head_poll_ms=3600000"));
  ASSERT_TRUE(waiter.ok()) << waiter.status().ToString();
  auto writer = Store::Open(Url());
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE((*writer)->Append("wake-1", ExpectedVersion::Any(), std::vector<EventData>{Event("A", "{}")}).ok());
  // The waiter learns of that commit from NOTIFY too.
  const Position target = (*writer)->HeadPosition();
  const Position seen = (*waiter)->WaitForAppend(Position(target.value() - 1), milliseconds(20'000));
  EXPECT_EQ(seen, target);

  for (int round = 0; round < 3; ++round) {
    const Position head = (*waiter)->HeadPosition();
    std::thread appender([&] {
      std::this_thread::sleep_for(milliseconds(50));
      EXPECT_TRUE((*writer)->Append("wake-1", ExpectedVersion::Any(), std::vector<EventData>{Event("A", "{}")}).ok());
    });
    const auto started = std::chrono::steady_clock::now();
    const Position woke = (*waiter)->WaitForAppend(head, milliseconds(60'000));
    const auto waited = std::chrono::steady_clock::now() - started;
    appender.join();
    EXPECT_GT(woke, head) << "round " << round;
    // Far below the hour of the poll: woken by the notification.
    EXPECT_LT(waited, milliseconds(30'000)) << "round " << round;
  }
}

// ---- Several stores (connections, processes) on one database.

TEST_F(PgTest, TwoStoresOnOneSchemaShareVersionsAndIdempotency) {
  auto a = Store::Open(Url());
  auto b = Store::Open(Url());
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<EventData> batch = {Event("A", "{}"), Event("B", "{}")};
  auto first = (*a)->Append("shared-1", ExpectedVersion::NoStream(), batch);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // b sees a's events, its expected-version check uses them, and a retry of a's append through b
  // returns a's result without writing.
  auto conflict = (*b)->Append("shared-1", ExpectedVersion::NoStream(), std::vector<EventData>{Event("C", "{}")});
  EXPECT_EQ(conflict.status().code(), StatusCode::kConflict);
  EXPECT_EQ(conflict.status().actual_version(), 1u);
  auto retry = (*b)->Append("shared-1", ExpectedVersion::NoStream(), batch);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*retry, *first);
  auto next = (*b)->Append("shared-1", ExpectedVersion::Exact(1), std::vector<EventData>{Event("C", "{}")});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->first_version, 2u);
  auto events = (*a)->ReadStream("shared-1", {});
  ASSERT_TRUE(events.ok());
  auto all = events->Collect();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
}

TEST_F(PgTest, StatsCountThisProcessesAppendsAndTheDatabasesTotals) {
  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok());
    std::vector<EventData> three = {Event("A", R"({"n":1})"), Event("B", R"({"n":2})"), Event("C", R"({"n":3})")};
    ASSERT_TRUE((*store)->Append("stats-1", ExpectedVersion::NoStream(), three).ok());
    ASSERT_TRUE((*store)->Append("stats-2", ExpectedVersion::Any(), std::vector<EventData>{Event("D", "{}")}).ok());
    auto conflict = (*store)->Append("stats-1", ExpectedVersion::Exact(0), std::vector<EventData>{Event("E", "{}")});
    ASSERT_EQ(conflict.status().code(), StatusCode::kConflict);
    ASSERT_TRUE((*store)->ReadStream("stats-1", {}).ok());
    StoreStats st = (*store)->Stats();
    EXPECT_EQ(st.appends, 2u);
    EXPECT_EQ(st.append_errors, 1u);
    EXPECT_EQ(st.conflicts, 1u);
    EXPECT_EQ(st.events_written, 4u);
    EXPECT_GE(st.commits, 1u);
    EXPECT_LE(st.commits, 2u);
    EXPECT_EQ(st.batch_events.count, st.commits);
    EXPECT_EQ(st.batch_events.sum, 4.0);
    EXPECT_EQ(st.fsync_seconds.count, st.commits);
    EXPECT_GE(st.bytes_written, 4u * 1u + 3u * 7u);
    EXPECT_EQ(st.reads, 1u);
    EXPECT_EQ(st.total_events, 4u);
    EXPECT_EQ(st.streams, 2u);
    EXPECT_GT(st.disk_bytes, 0u);
    EXPECT_EQ(st.head, Position(5));
  }
  // Another process's view (a new store): its counters start at zero, the totals are the
  // database's.
  auto again = Store::Open(Url());
  ASSERT_TRUE(again.ok());
  StoreStats st = (*again)->Stats();
  EXPECT_EQ(st.appends, 0u);
  EXPECT_EQ(st.events_written, 0u);
  EXPECT_EQ(st.total_events, 4u);
  EXPECT_EQ(st.streams, 2u);
  EXPECT_EQ(st.head, Position(5));
}

// The writer numbers a group from its cache of stream states when nobody else has written since
// (one round trip); claim_head() proves that under the head lock. Each way the cache can be
// wrong must fall back to the locked path and give the same answer as a store with no cache.
TEST_F(PgTest, StaleWriterCacheIsCaughtAndTheAnswerIsTheLockedOne) {
  {
    // A stream written before the next store opens: that store's cache has never seen it.
    auto early = Store::Open(Url());
    ASSERT_TRUE(early.ok());
    ASSERT_TRUE((*early)->Append("before-1", ExpectedVersion::NoStream(), std::vector<EventData>{Event("A", "{}")}).ok());
  }
  auto a = Store::Open(Url());
  auto b = Store::Open(Url());
  ASSERT_TRUE(a.ok() && b.ok());
  // a's first group reads under the lock and fills the cache; the next ones use it.
  ASSERT_TRUE((*a)->Append("cache-1", ExpectedVersion::NoStream(), std::vector<EventData>{Event("A", "{}")}).ok());
  ASSERT_TRUE((*a)->Append("cache-1", ExpectedVersion::Exact(0), std::vector<EventData>{Event("B", "{}")}).ok());

  // 1. A stream the cache does not know but which exists: NoStream must conflict.
  auto exists = (*a)->Append("before-1", ExpectedVersion::NoStream(), std::vector<EventData>{Event("X", "{}")});
  EXPECT_EQ(exists.status().code(), StatusCode::kConflict) << exists.status().ToString();
  EXPECT_EQ(exists.status().actual_version(), 0u);

  // 2. Another store moved a stream a has cached: a's stale Exact(1) passes its cache but not
  //    the lock; the right Exact(2) succeeds at version 3.
  ASSERT_TRUE((*b)->Append("cache-1", ExpectedVersion::Exact(1), std::vector<EventData>{Event("C", "{}")}).ok());
  auto stale = (*a)->Append("cache-1", ExpectedVersion::Exact(1), std::vector<EventData>{Event("D", "{}")});
  EXPECT_EQ(stale.status().code(), StatusCode::kConflict) << stale.status().ToString();
  EXPECT_EQ(stale.status().actual_version(), 2u);
  auto right = (*a)->Append("cache-1", ExpectedVersion::Exact(2), std::vector<EventData>{Event("D", "{}")});
  ASSERT_TRUE(right.ok()) << right.status().ToString();
  EXPECT_EQ(right->first_version, 3u);

  // 3. A retry of an acknowledged append with its ids, while the cache is exact: the original
  //    result, nothing written twice.
  std::vector<EventData> with_ids = {Event("E", "{}"), Event("F", "{}")};
  with_ids[0].id = Uuid::V7();
  with_ids[1].id = Uuid::V7();
  auto first = (*a)->Append("cache-2", ExpectedVersion::NoStream(), with_ids);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto retry = (*a)->Append("cache-2", ExpectedVersion::NoStream(), with_ids);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*retry, *first);
  // The same id in another stream is refused, by the cache path too.
  auto reused = (*a)->Append("cache-3", ExpectedVersion::Any(), std::vector<EventData>{with_ids[0]});
  EXPECT_EQ(reused.status().code(), StatusCode::kAlreadyExists) << reused.status().ToString();

  // Everything in order, nothing twice: positions strictly increase and each stream's versions
  // are 0..n-1.
  auto all = (*b)->ReadAll({});
  ASSERT_TRUE(all.ok());
  auto events = all->Collect();
  ASSERT_TRUE(events.ok());
  std::map<std::string, uint64_t> next;
  uint64_t last_position = 0;
  for (const auto& e : *events) {
    if (e.stream.starts_with("$")) continue;
    EXPECT_GT(e.position.value(), last_position);
    last_position = e.position.value();
    EXPECT_EQ(e.version, next[e.stream]++) << e.stream;
  }
  EXPECT_EQ(next["cache-1"], 4u);
  EXPECT_EQ(next["cache-2"], 2u);
  EXPECT_EQ(next["before-1"], 1u);
  EXPECT_EQ(next.count("cache-3"), 0u);
}

// A child: appends `CAIRN_PG_APPENDS` appends of 1 to 3 events to its own stream "writer-<i>"
// with exact expected versions, through a store whose writer sleeps randomly inside each
// transaction (debug_commit_delay_ms). Exit code 0 when every append succeeded.
TEST(PgChild, OrderedWriter) {
  if (Env("CAIRN_PG_CHILD") != "OrderedWriter") GTEST_SKIP() << "run by PgTest.CommitOrder...";
  auto store = Store::Open(Env("CAIRN_PG_URL"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const int appends = std::stoi(Env("CAIRN_PG_APPENDS"));
  const std::string stream = "writer-" + Env("CAIRN_PG_INDEX");
  std::mt19937 rng(static_cast<unsigned>(getpid()));
  StreamVersion next = 0;
  for (int i = 0; i < appends; ++i) {
    std::vector<EventData> batch;
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < n; ++k) batch.push_back(Event("Ordered", fmt::format(R"({{"i":{}}})", i)));
    auto r = (*store)->Append(stream, next == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(next - 1), batch);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->first_version, next);
    next = r->next_version;
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
  }
}

TEST_F(PgTest, CommitOrderAcrossEightWriterProcessesMatchesALiveSubscriber) {
  constexpr int kWriters = 8;
  constexpr int kAppends = 40;
  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  // The subscriber: every event from the start, live, in the order it is delivered.
  auto sub = SubscribeToAll(**store, {.from = AllFrom::Start()});
  ASSERT_TRUE(sub.ok());
  std::vector<RecordedEvent> seen;
  std::atomic<bool> writers_done{false};
  std::atomic<uint64_t> expected_total{0};
  std::thread subscriber([&] {
    while (true) {
      if (!(*sub)->Next(milliseconds(200))) {
        if ((*sub)->done()) return;
        if (writers_done.load() && seen.size() >= expected_total.load()) return;
        continue;
      }
      const SubscriptionMessage& m = (*sub)->message();
      if (m.kind == SubscriptionMessage::Kind::kEvent) seen.push_back(m.event.ToOwned());
    }
  });

  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    children.push_back(SpawnChild("OrderedWriter", {{"CAIRN_PG_URL", Url("debug_commit_delay_ms=8")},
                                                    {"CAIRN_PG_APPENDS", std::to_string(kAppends)},
                                                    {"CAIRN_PG_INDEX", std::to_string(w)}}));
    ASSERT_GT(children.back(), 0);
  }
  for (pid_t pid : children) EXPECT_EQ(WaitChild(pid), 0);

  auto final_cursor = (*store)->ReadAll({});
  ASSERT_TRUE(final_cursor.ok());
  auto final_all = final_cursor->Collect();
  ASSERT_TRUE(final_all.ok()) << final_all.status().ToString();
  expected_total = final_all->size();
  writers_done = true;
  subscriber.join();
  (*sub)->Stop();
  ASSERT_TRUE((*sub)->status().ok()) << (*sub)->status().ToString();

  // Positions are dense (1, 2, 3, ...) and every writer's stream is whole.
  std::map<std::string, StreamVersion> next;
  for (size_t i = 0; i < final_all->size(); ++i) {
    const RecordedEvent& e = (*final_all)[i];
    ASSERT_EQ(e.position.value(), i + 1) << "a hole in the positions";
    ASSERT_EQ(e.version, next[e.stream]++) << e.stream;
  }
  EXPECT_EQ(next.size(), static_cast<size_t>(kWriters));
  // The live subscriber saw exactly the final order: nothing skipped, nothing reordered.
  ASSERT_EQ(seen.size(), final_all->size());
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i].position, (*final_all)[i].position) << "event " << i;
    ASSERT_EQ(seen[i].id, (*final_all)[i].id) << "event " << i;
  }
}

// A child: increments the shared counter stream CAIRN_PG_INCREMENTS times with exact expected
// versions (re-reading on each conflict), then re-sends one fixed append (ids from
// CAIRN_PG_RETRY_IDS) to "retried-1". Prints one line per successful increment: "<version>
// <event id>", and "retry <first_version> <position>".
TEST(PgChild, ContendingWriter) {
  if (Env("CAIRN_PG_CHILD") != "ContendingWriter") GTEST_SKIP() << "run by PgTest.OptimisticConcurrency...";
  auto store = Store::Open(Env("CAIRN_PG_URL"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const int increments = std::stoi(Env("CAIRN_PG_INCREMENTS"));
  for (int i = 0; i < increments; ++i) {
    EventData e = Event("Incremented", "{}");
    for (;;) {
      auto info = (*store)->GetStreamInfo("counter-1");
      ASSERT_TRUE(info.ok());
      auto expected = info->last_version ? ExpectedVersion::Exact(*info->last_version) : ExpectedVersion::NoStream();
      auto r = (*store)->Append("counter-1", expected, std::vector<EventData>{e});
      if (r.ok()) {
        std::printf("%llu %s\n", static_cast<unsigned long long>(r->first_version), e.id.ToString().c_str());
        break;
      }
      ASSERT_EQ(r.status().code(), StatusCode::kConflict) << r.status().ToString();
    }
  }
  std::vector<EventData> retried;
  const std::string ids = Env("CAIRN_PG_RETRY_IDS");
  for (size_t at = 0; at < ids.size(); at += 37) {
    auto id = Uuid::Parse(ids.substr(at, 36));
    ASSERT_TRUE(id.has_value());
    retried.push_back(Event("Retried", "{}", *id));
  }
  auto r = (*store)->Append("retried-1", ExpectedVersion::NoStream(), retried);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::printf("retry %llu %llu\n", static_cast<unsigned long long>(r->first_version),
              static_cast<unsigned long long>(r->position.value()));
  std::fflush(stdout);
}

TEST_F(PgTest, OptimisticConcurrencyAndIdempotencyHoldAcrossProcesses) {
  constexpr int kProcesses = 4;
  constexpr int kIncrements = 25;
  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  std::string ids;
  for (int i = 0; i < 3; ++i) ids += (i ? "," : "") + Uuid::V7().ToString();
  std::vector<int> out_fds;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);  // the child keeps only its stdout copy
    const pid_t pid = SpawnChild("ContendingWriter",
                                 {{"CAIRN_PG_URL", Url()},
                                  {"CAIRN_PG_INCREMENTS", std::to_string(kIncrements)},
                                  {"CAIRN_PG_RETRY_IDS", ids}},
                                 fds[1]);
    ASSERT_GE(pid, 0);
    close(fds[1]);
    out_fds.push_back(fds[0]);
    children.push_back(pid);
  }
  std::map<StreamVersion, std::string> acked;  // version -> event id, from every process
  std::set<std::string> retry_answers;
  for (int p = 0; p < kProcesses; ++p) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(out_fds[p], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(out_fds[p]);
    EXPECT_EQ(WaitChild(children[p]), 0) << out;
    size_t at = 0;
    while (at < out.size()) {
      size_t nl = out.find('\n', at);
      if (nl == std::string::npos) break;
      std::string line = out.substr(at, nl - at);
      at = nl + 1;
      if (line.starts_with("retry ")) {
        retry_answers.insert(line);
      } else if (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0]))) {
        const size_t space = line.find(' ');
        const StreamVersion v = std::stoull(line.substr(0, space));
        EXPECT_TRUE(acked.emplace(v, line.substr(space + 1)).second) << "version " << v << " acknowledged twice";
      }
    }
  }
  // Every increment landed exactly once, at the version it was acknowledged with.
  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok());
  auto cursor = (*store)->ReadStream("counter-1", {});
  ASSERT_TRUE(cursor.ok());
  auto events = cursor->Collect();
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), static_cast<size_t>(kProcesses * kIncrements));
  ASSERT_EQ(acked.size(), events->size());
  for (const auto& e : *events) EXPECT_EQ(acked[e.version], e.id.ToString()) << "version " << e.version;
  // The same append sent by every process was written once; all got the same answer.
  EXPECT_EQ(retry_answers.size(), 1u);
  auto retried = (*store)->ReadStream("retried-1", {});
  ASSERT_TRUE(retried.ok());
  auto retried_events = retried->Collect();
  ASSERT_TRUE(retried_events.ok());
  EXPECT_EQ(retried_events->size(), 3u);
}

// ---- The PostgreSQL sink for projections.

// Each "Counted" event inserts its position (a primary key: applying it twice fails) and adds one
// to a total, in the read model's database. `per_event` slows each event down, so that a kill
// lands while the projector is still working on any machine.
Projection CountingProjection(std::chrono::microseconds per_event = std::chrono::microseconds(0)) {
  Projection p("counting");
  p.Table("applied", "CREATE TABLE applied (position BIGINT PRIMARY KEY, stream TEXT NOT NULL)");
  p.Table("totals", "CREATE TABLE totals (id INT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO totals VALUES (1, 0)");
  p.On("Counted", [per_event](const RecordedEventView& e, Sql& sql) {
    if (per_event.count() > 0) std::this_thread::sleep_for(per_event);
    CAIRN_RETURN_IF_ERROR(
        sql.Exec("INSERT INTO applied (position, stream) VALUES (?1, ?2)",
                 {static_cast<int64_t>(e.position.value()), std::string(e.stream)}));
    return sql.Exec("UPDATE totals SET n = n + $1 WHERE id = 1", {int64_t{1}});
  });
  return p;
}

// A child: runs the counting projection from the store to the read model until caught up.
TEST(PgChild, Projector) {
  if (Env("CAIRN_PG_CHILD") != "Projector") GTEST_SKIP() << "run by PgTest.ProjectionInto...";
  auto store = Store::Open(Env("CAIRN_PG_URL"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const std::string slow = Env("CAIRN_PG_SLOW_US");
  const std::chrono::microseconds per_event(slow.empty() ? 0 : std::stoll(slow));
  auto runner = ProjectionRunner::Open(**store, CountingProjection(per_event), Env("CAIRN_PG_READ_MODEL"), {.batch_max_events = 50});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Status s = (*runner)->Run({.follow = false});
  ASSERT_TRUE(s.ok()) << s.ToString();
}

TEST_F(PgTest, ProjectionIntoPostgresAppliesEachEventOnceAcrossKills) {
  constexpr int kEvents = 3000;
  auto store = Store::Open(Url("sync=none"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (int i = 0; i < kEvents / 50; ++i) {
    std::vector<EventData> batch;
    for (int k = 0; k < 50; ++k) batch.push_back(Event(k % 5 == 0 ? "Ignored" : "Counted", "{}"));
    ASSERT_TRUE((*store)->Append(fmt::format("count-{}", i % 7), ExpectedVersion::Any(), batch).ok());
  }
  const uint64_t counted = kEvents - kEvents / 5;
  // The read model in a schema of its own: search_path set through libpq's options parameter.
  ReadModelSchema rm(base_, schema_ + "_rm");
  ASSERT_TRUE(rm.conn != nullptr);
  const std::string& rm_schema = rm.schema;
  const std::string& read_model = rm.url;
  auto* conn = &rm.conn;

  // Projector processes killed (SIGKILL) at random moments, then one that runs to the end.
  // Each kill lands before the projector finished (the checkpoint is short of the head), or the
  // test says it proved nothing. The killed projectors take 1 ms per event (2.4 s for all). A
  // kill comes 0 to 200 ms after the projector's checkpoint first moved: mid-run however fast the
  // machine is, and however long the child takes to start (on a slow 2-vCPU guest, kills timed
  // 100 to 400 ms from the spawn all came before the ASan child had made its tables).
  std::mt19937 rng(20261126);
  int mid_run_kills = 0;
  int64_t last_checkpoint = 0;
  auto checkpoint_now = [&]() -> std::optional<int64_t> {
    auto cp = (*conn)->Exec(fmt::format("SELECT checkpoint FROM {}.cairn_projections", rm_schema), postgres::Params());
    if (!cp.ok() || cp->rows() == 0) return std::nullopt;  // the projector has not made its tables yet
    return cp->Int64(0, 0);
  };
  for (int round = 0; round < 6 && mid_run_kills < 3; ++round) {
    const pid_t pid = SpawnChild("Projector", {{"CAIRN_PG_URL", Url()}, {"CAIRN_PG_READ_MODEL", read_model},
                                               {"CAIRN_PG_SLOW_US", "1000"}});
    ASSERT_GT(pid, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      const std::optional<int64_t> cp = checkpoint_now();
      if (cp && *cp > last_checkpoint) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        (void)WaitChild(pid);
        FAIL() << "a projector made no progress in 60 s";
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    std::this_thread::sleep_for(milliseconds(rng() % 200));
    kill(pid, SIGKILL);
    (void)WaitChild(pid);
    const std::optional<int64_t> cp = checkpoint_now();
    ASSERT_TRUE(cp.has_value());
    const int64_t checkpoint = *cp;
    EXPECT_GE(checkpoint, last_checkpoint);
    if (checkpoint < static_cast<int64_t>((*store)->HeadPosition().value())) mid_run_kills++;
    last_checkpoint = checkpoint;
  }
  EXPECT_GE(mid_run_kills, 1) << "every projector finished before its kill: the test proved nothing";
  const pid_t last = SpawnChild("Projector", {{"CAIRN_PG_URL", Url()}, {"CAIRN_PG_READ_MODEL", read_model}});
  ASSERT_EQ(WaitChild(last), 0);

  auto applied = (*conn)->Exec(fmt::format("SELECT count(*)::int8, count(DISTINCT position)::int8 FROM {}.applied", rm_schema),
                               postgres::Params());
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->Int64(0, 0), static_cast<int64_t>(counted));
  EXPECT_EQ(applied->Int64(0, 1), static_cast<int64_t>(counted));
  auto total = (*conn)->Exec(fmt::format("SELECT n FROM {}.totals", rm_schema), postgres::Params());
  ASSERT_TRUE(total.ok());
  EXPECT_EQ(total->Int64(0, 0), static_cast<int64_t>(counted));  // each event added exactly once
  // The checkpoint reached the head, through the same runner API.
  auto runner = ProjectionRunner::Open(**store, CountingProjection(), read_model);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  auto status = (*runner)->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->checkpoint, (*store)->HeadPosition());
  EXPECT_EQ(status->events_handled, counted);
  EXPECT_EQ(status->lag_events, 0u);
}

// `cairn project` runs a declarative spec (the seed's CustomerOrdersView, from examples/) from a
// PostgreSQL store into a PostgreSQL read model, and a second run applies only what is new.
TEST_F(PgTest, CliProjectRunsTheSeedsSpecIntoPostgres) {
  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto append = [&](const std::string& stream, const std::string& type, const std::string& data) {
    auto r = (*store)->Append(stream, ExpectedVersion::Any(), std::vector<EventData>{Event(type, data)});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  };
  append("customer-c1", "CustomerRegistered", R"({"customer_id":"c1","name":"Ada"})");
  append("order-o1", "OrderCreated", R"({"order_id":"o1","customer_id":"c1","total":12.5})");
  append("order-o2", "OrderCreated", R"({"order_id":"o2","customer_id":"c1","total":7})");

  ReadModelSchema rm(base_, schema_ + "_cli");
  ASSERT_TRUE(rm.conn != nullptr);
  const std::string& rm_schema = rm.schema;
  const std::string& read_model = rm.url;
  auto* conn = &rm.conn;
  const std::string spec = std::string(CAIRN_SOURCE_DIR) + "/examples/customer_orders_view/customer_orders.json";

  auto run = testing::RunCommand({testing::CliPath(), "project", "--db", Url(), "--spec", spec, "--sink", read_model});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto rows = (*conn)->Exec(fmt::format("SELECT order_id, customer_name, total::float8::text, status FROM {}.order_summary "
                                        "ORDER BY order_id",
                                        rm_schema));
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->rows(), 2);
  EXPECT_EQ(rows->Bytes(0, 0), "o1");
  EXPECT_EQ(rows->Bytes(0, 1), "Ada");
  EXPECT_EQ(rows->Bytes(0, 2), "12.5");
  EXPECT_EQ(rows->Bytes(1, 3), "pending");

  append("order-o1", "OrderShipped", R"({"order_id":"o1"})");
  run = testing::RunCommand({testing::CliPath(), "project", "--db", Url(), "--spec", spec, "--sink", read_model});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto status = nlohmann::json::parse(run.out.substr(0, run.out.find('\n')));
  EXPECT_EQ(status["lag_events"], 0);
  EXPECT_EQ(status["checkpoint"], (*store)->HeadPosition().value());
  auto shipped = (*conn)->Exec(fmt::format("SELECT status FROM {}.order_summary WHERE order_id = 'o1'", rm_schema));
  ASSERT_TRUE(shipped.ok());
  ASSERT_EQ(shipped->rows(), 1);
  EXPECT_EQ(shipped->Bytes(0, 0), "shipped");

  // An unknown sink scheme: exit 2 (usage) or 1, and the message names --sink and what is supported.
  run = testing::RunCommand({testing::CliPath(), "project", "--db", Url(), "--spec", spec, "--sink", "mysql://x"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("--sink: unknown sink \"mysql://x\""), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("postgres://"), std::string::npos) << run.err;
}

// Two `cairn serve` processes on one PostgreSQL database: a client of either sees the other's
// appends, expected versions are checked across them, and an idempotent retry through the other
// server returns the original result.
TEST_F(PgTest, TwoServersOnOneDatabaseShareStreamsAndConcurrencyChecks) {
  testing::TempDir tmp;
  struct Server {
    pid_t pid = -1;
    std::string log;
    ~Server() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        (void)WaitChild(pid);
      }
    }
  } servers[2];
  std::string ports[2];
  for (int i = 0; i < 2; ++i) {
    servers[i].log = tmp.Sub(fmt::format("serve-{}.log", i));
    const int fd = open(servers[i].log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    servers[i].pid = testing::SpawnProcess(
        {testing::CliPath(), "serve", "--db", Url(), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"}, null_in, fd, fd);
    close(fd);
    close(null_in);
  }
  for (int i = 0; i < 2; ++i) {
    for (int tries = 0; tries < 300 && ports[i].empty(); ++tries) {
      std::ifstream in(servers[i].log);
      std::string line;
      while (std::getline(in, line)) {
        const std::string mark = "cairn serve: gRPC";
        const size_t at = line.find("127.0.0.1:");
        if (line.starts_with(mark) && at != std::string::npos) {
          ports[i] = line.substr(at + 10, line.find_first_not_of("0123456789", at + 10) - (at + 10));
        }
      }
      if (ports[i].empty()) std::this_thread::sleep_for(milliseconds(100));
    }
    ASSERT_FALSE(ports[i].empty()) << "cairn serve " << i << " did not start";
  }
  auto append = [&](int server, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {testing::CliPath(), "append", "--server", "esdb://127.0.0.1:" + ports[server] + "?tls=false"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::RunCommand(argv);
  };
  const std::string id = "0190aaaa-bbbb-7ccc-8ddd-000000000001";
  auto first = append(0, {"two-servers", "--expected", "no-stream", "--type", "A", "--id", id, R"({"n":1})"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  // Through the other server: no-stream now conflicts (exit 3), exact 0 succeeds at version 1.
  auto conflict = append(1, {"two-servers", "--expected", "no-stream", "--type", "B", R"({"n":2})"});
  EXPECT_EQ(conflict.exit_code, 3) << conflict.out << conflict.err;
  auto second = append(1, {"two-servers", "--expected", "0", "--type", "B", R"({"n":2})"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(nlohmann::json::parse(second.out)["first_version"], 1);
  // A retry of the first append (same id) through the other server: the original result.
  auto retry = append(1, {"two-servers", "--expected", "no-stream", "--type", "A", "--id", id, R"({"n":1})"});
  ASSERT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_EQ(nlohmann::json::parse(retry.out), nlohmann::json::parse(first.out));
  // Both servers read the same two events.
  for (int i = 0; i < 2; ++i) {
    auto read = testing::RunCommand(
        {testing::CliPath(), "read", "--server", "esdb://127.0.0.1:" + ports[i] + "?tls=false", "two-servers"});
    ASSERT_EQ(read.exit_code, 0) << read.err;
    EXPECT_EQ(std::count(read.out.begin(), read.out.end(), '\n'), 2) << read.out;
  }
  // SIGTERM stops each cleanly.
  for (auto& server : servers) {
    kill(server.pid, SIGTERM);
    EXPECT_EQ(WaitChild(server.pid), 0);
    server.pid = -1;
  }
}

// Forward $all reads without a filter fetch position ranges ahead (three, on other connections)
// while the caller walks the current one; whatever max_count and the start cut, every event
// comes once, in order, and nothing past the head the read began with.
TEST_F(PgTest, AllReadsWithRangesFetchedAheadYieldEachEventOnceInOrder) {
  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  constexpr int kAppends = 30;
  constexpr int kPerAppend = 1'000;  // 30,000 events: pages of 256, 1,024, 4,096, then 16,384
  for (int i = 0; i < kAppends; ++i) {
    std::vector<EventData> batch;
    for (int j = 0; j < kPerAppend; ++j) batch.push_back(Event("E", fmt::format(R"({{"n":{}}})", i * kPerAppend + j)));
    ASSERT_TRUE((*store)->Append(fmt::format("ahead-{}", i % 7), ExpectedVersion::Any(), batch).ok());
  }
  const uint64_t total = uint64_t{kAppends} * kPerAppend;
  struct Case {
    uint64_t from;
    uint64_t max_count;
  };
  uint64_t late = 0;  // events appended after the 30,000 by earlier cases
  for (const Case& c : {Case{0, ~uint64_t{0}}, Case{0, 5'000}, Case{0, 21'000}, Case{12'345, ~uint64_t{0}},
                        Case{1'281, 17'000}}) {
    ReadAllOptions o;
    o.from = Position(c.from);
    o.max_count = c.max_count;
    auto cursor = (*store)->ReadAll(o);
    ASSERT_TRUE(cursor.ok()) << cursor.status().ToString();
    // Appends while the read runs are past its head: not seen.
    ASSERT_TRUE((*store)->Append("ahead-late", ExpectedVersion::Any(), std::vector<EventData>{Event("L", "{}")}).ok());
    const uint64_t first = std::max<uint64_t>(c.from, 1);
    const uint64_t want = std::min(c.max_count, total + late - (first - 1));
    late++;
    uint64_t n = 0;
    while (cursor->Next()) {
      const RecordedEventView& e = cursor->event();
      ASSERT_EQ(e.position.value(), first + n) << "from " << c.from << " max " << c.max_count;
      ASSERT_EQ(e.data, first + n <= total ? fmt::format(R"({{"n":{}}})", first + n - 1) : std::string("{}"));
      n++;
    }
    ASSERT_TRUE(cursor->status().ok()) << cursor->status().ToString();
    EXPECT_EQ(n, want) << "from " << c.from << " max " << c.max_count;
  }
}


// A $all read walks the primary key in position order (an index scan) on a table the planner has
// no statistics for, as a store's is between autovacuum's ANALYZEs. Without statistics PostgreSQL
// guessed a bitmap heap scan plus a sort for a position range, and the sort spilled to disk; a
// bitmap scan fetches no row through the index (pg_stat_user_indexes.idx_tup_fetch stays 0).
TEST_F(PgTest, AllReadsScanThePrimaryKeyWithoutStatistics) {
  auto info = postgres::ParseConnInfo(base_.substr(0, base_.find('?')));
  ASSERT_TRUE(info.ok());
  auto conn = postgres::Conn::Connect(*info);
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  constexpr int kAppends = 40;
  constexpr int kPerAppend = 1'000;
  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*conn)->Exec(fmt::format("ALTER TABLE {}.events SET (autovacuum_enabled = false)", schema_)).ok());
    const std::string data(200, 'x');
    for (int i = 0; i < kAppends; ++i) {
      std::vector<EventData> batch;
      for (int j = 0; j < kPerAppend; ++j) batch.push_back(Event("E", fmt::format(R"({{"n":{},"pad":"{}"}})", j, data)));
      ASSERT_TRUE((*store)->Append(fmt::format("scan-{}", i % 5), ExpectedVersion::Any(), batch).ok());
    }
    auto cursor = (*store)->ReadAll({});
    ASSERT_TRUE(cursor.ok()) << cursor.status().ToString();
    uint64_t n = 0;
    while (cursor->Next()) ASSERT_EQ(cursor->event().position.value(), ++n);
    ASSERT_TRUE(cursor->status().ok()) << cursor->status().ToString();
    ASSERT_EQ(n, uint64_t{kAppends} * kPerAppend);
    ASSERT_TRUE((*store)->Close().ok());  // its reader backends exit and report their statistics
  }
  auto never_analyzed = (*conn)->Exec(
      "SELECT count(*)::int8 FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'events' AND "
      "last_analyze IS NULL AND last_autoanalyze IS NULL",
      postgres::Params().Text(schema_));
  ASSERT_TRUE(never_analyzed.ok()) << never_analyzed.status().ToString();
  EXPECT_EQ(never_analyzed->Int64(0, 0), 1) << "the premise: no statistics on the events table";
  int64_t fetched = 0;
  for (int i = 0; i < 100 && fetched < int64_t{kAppends} * kPerAppend; ++i) {
    if (i > 0) std::this_thread::sleep_for(milliseconds(100));
    auto r = (*conn)->Exec("SELECT coalesce(sum(idx_tup_fetch), 0)::int8 FROM pg_stat_user_indexes WHERE schemaname = $1 "
                           "AND indexrelname = 'events_pkey'",
                           postgres::Params().Text(schema_));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    fetched = r->Int64(0, 0);
  }
  EXPECT_GE(fetched, int64_t{kAppends} * kPerAppend) << "rows fetched through events_pkey by index scans";
}

}  // namespace
}  // namespace cairn

// Proves the projection runner's contract: handlers by type, read model and checkpoint committed
// together (a rerun applies nothing twice), stop or park on a handler error with the event, the
// handler and the reason, rebuild, status and lag, live following, and declarative specs
// (including their errors, which name the field). How: a memory: store and a real SQLite file.
#include "cairn/projection.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "util/sqlite_dump.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string Dump(const std::string& path, const std::string& query) { return testing::DumpSqlite(path, query); }

class ProjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open("memory:");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }

  void Add(const std::string& stream, const std::string& type, json data) {
    EventData e;
    e.type = type;
    e.data = data.dump();
    ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), {&e, 1}).ok());
  }

  // Counts orders and sums totals per customer: not idempotent, so a double apply shows.
  static Projection Totals(std::string name = "totals") {
    Projection p(std::move(name));
    p.Table("customer_totals",
            "CREATE TABLE customer_totals (customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, total INTEGER NOT NULL)");
    p.On("OrderPlaced", [](const RecordedEventView& e, Sql& sql) {
      json d = json::parse(e.data);
      if (d.value("bad", false)) return Status::InvalidArgument("bad order");
      return sql.Exec(
          "INSERT INTO customer_totals VALUES (?1, 1, ?2) ON CONFLICT(customer) DO UPDATE SET orders = orders + 1,"
          " total = total + excluded.total",
          {d["customer"].get<std::string>(), d["total"].get<int64_t>()});
    });
    return p;
  }

  std::string Path() const { return dir_.Sub("read.db"); }

  std::unique_ptr<Store> store_;
  testing::TempDir dir_;
};

TEST_F(ProjectionTest, AppliesEachEventOnceAcrossRuns) {
  Add("order-1", "OrderPlaced", {{"customer", "ann"}, {"total", 10}});
  Add("order-2", "OrderPlaced", {{"customer", "bob"}, {"total", 5}});
  Add("order-1", "OrderShipped", {{"x", 1}});  // no handler: not read
  Add("order-3", "OrderPlaced", {{"customer", "ann"}, {"total", 7}});
  {
    auto runner = ProjectionRunner::Open(*store_, Totals(), Path(), {.batch_max_events = 2});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    ASSERT_TRUE((*runner)->Run().ok());
    auto status = (*runner)->GetStatus();
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(status->events_handled, 3u);
    EXPECT_EQ(status->lag_events, 0u);
    EXPECT_EQ(status->checkpoint, store_->HeadPosition());
  }
  EXPECT_EQ(Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer"), "ann|2|17\nbob|1|5\n");
  // A second run starts at the checkpoint: nothing is applied twice; new events are.
  Add("order-4", "OrderPlaced", {{"customer", "bob"}, {"total", 1}});
  auto runner = ProjectionRunner::Open(*store_, Totals(), Path());
  ASSERT_TRUE(runner.ok());
  auto before = (*runner)->GetStatus();
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->lag_events, 1u);
  ASSERT_TRUE((*runner)->Run().ok());
  EXPECT_EQ(Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer"), "ann|2|17\nbob|2|6\n");
}

TEST_F(ProjectionTest, HandlerErrorStopsWithEventHandlerAndReasonAndKeepsEarlierEvents) {
  Add("order-1", "OrderPlaced", {{"customer", "ann"}, {"total", 10}});
  Add("order-2", "OrderPlaced", {{"customer", "bob"}, {"total", 5}, {"bad", true}});
  Add("order-3", "OrderPlaced", {{"customer", "ann"}, {"total", 7}});
  auto runner = ProjectionRunner::Open(*store_, Totals(), Path(), {.batch_max_events = 100});
  ASSERT_TRUE(runner.ok());
  Status s = (*runner)->Run();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("handler OrderPlaced#0"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("order-2@0"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("bad order"), std::string::npos) << s.message();
  // The event before it, in the same batch, is applied and committed; the failing one and the
  // one after are not.
  EXPECT_EQ(Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer"), "ann|1|10\n");
  // The next run retries the same event, and fails the same way.
  Status again = (*runner)->Run();
  EXPECT_EQ(again.message(), s.message());
  EXPECT_EQ(Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer"), "ann|1|10\n");
}

TEST_F(ProjectionTest, HandlerErrorParksTheEventAndContinues) {
  Add("order-1", "OrderPlaced", {{"customer", "ann"}, {"total", 10}});
  Add("order-2", "OrderPlaced", {{"customer", "bob"}, {"total", 5}, {"bad", true}});
  Add("order-3", "OrderPlaced", {{"customer", "ann"}, {"total", 7}});
  Projection p = Totals();
  // A handler that throws, on another type: also parked, named.
  p.On("Boom", [](const RecordedEventView&, Sql&) -> Status { throw std::runtime_error("kaboom"); }, "boom-handler");
  Add("misc-1", "Boom", {{"x", 1}});
  auto runner = ProjectionRunner::Open(*store_, std::move(p), Path(), {.on_error = OnHandlerError::kPark});
  ASSERT_TRUE(runner.ok());
  ASSERT_TRUE((*runner)->Run().ok());
  EXPECT_EQ(Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer"), "ann|2|17\n");
  EXPECT_EQ(Dump(Path(), "SELECT stream, version, type, handler FROM cairn_parked ORDER BY position"),
            "order-2|0|OrderPlaced|OrderPlaced#0\nmisc-1|0|Boom|boom-handler\n");
  EXPECT_NE(Dump(Path(), "SELECT reason FROM cairn_parked WHERE stream = 'misc-1'").find("kaboom"), std::string::npos);
  auto status = (*runner)->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->events_parked, 2u);
  EXPECT_EQ(status->events_handled, 2u);
}

TEST_F(ProjectionTest, RebuildDropsTheReadModelAndReplaysToTheSameResult) {
  for (int i = 0; i < 50; ++i) Add(fmt::format("order-{}", i), "OrderPlaced", {{"customer", i % 3 ? "ann" : "bob"}, {"total", i}});
  auto runner = ProjectionRunner::Open(*store_, Totals(), Path(), {.batch_max_events = 7});
  ASSERT_TRUE(runner.ok());
  ASSERT_TRUE((*runner)->Run().ok());
  const std::string first = Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer");
  ASSERT_TRUE((*runner)->Rebuild().ok());
  EXPECT_EQ(Dump(Path(), "SELECT count(*) FROM customer_totals"), "0\n");
  auto status = (*runner)->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->checkpoint, Position::Start());
  EXPECT_EQ(status->lag_events, 50u);
  ASSERT_TRUE((*runner)->Run().ok());
  EXPECT_EQ(Dump(Path(), "SELECT * FROM customer_totals ORDER BY customer"), first);
}

TEST_F(ProjectionTest, FollowAppliesLiveEventsUntilStop) {
  auto runner = ProjectionRunner::Open(*store_, Totals(), Path());
  ASSERT_TRUE(runner.ok());
  Status result;
  std::thread t([&] { result = (*runner)->Run({.follow = true}); });
  Add("order-1", "OrderPlaced", {{"customer", "ann"}, {"total", 3}});
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (Dump(Path(), "SELECT total FROM customer_totals") != "3\n" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(Dump(Path(), "SELECT total FROM customer_totals"), "3\n");
  (*runner)->Stop();
  t.join();
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST_F(ProjectionTest, BadProjectionsAreRejected) {
  EXPECT_TRUE(ProjectionRunner::Open(*store_, Projection("empty"), Path()).status().IsInvalidArgument());
  EXPECT_TRUE(ProjectionRunner::Open(*store_, Projection(""), Path()).status().IsInvalidArgument());
  Projection bad_table("bad");
  bad_table.Table("t", "CREATE TABLEX t (a)").On("X", [](const RecordedEventView&, Sql&) { return Status::Ok(); });
  auto r = ProjectionRunner::Open(*store_, std::move(bad_table), Path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("create table t"), std::string::npos) << r.status().ToString();
}

constexpr const char* kSpec = R"json({
  "name": "order_summary",
  "tables": [{"name": "order_summary",
              "create": "CREATE TABLE order_summary (order_id TEXT PRIMARY KEY, customer_id TEXT, total REAL, status TEXT, note TEXT, first_sku TEXT, placed_by TEXT, stream TEXT, version INTEGER)"}],
  "filter": {"categories": ["order"]},
  "on": {
    "OrderCreated": {"sql": "INSERT INTO order_summary (order_id, customer_id, total, status, note, first_sku, placed_by, stream, version) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                     "params": ["data.order_id", "data.customer_id", "data.total", "data.note", "data.items.0.sku", "metadata.$user", "stream", "version"]},
    "OrderShipped": [{"sql": "UPDATE order_summary SET status = 'shipped' WHERE order_id = ?", "params": ["data.order_id"]}]
  }
})json";

TEST_F(ProjectionTest, SpecMapsEventsToSqlWithParametersByPath) {
  EventData created;
  created.type = "OrderCreated";
  created.data = R"({"order_id":"o-1","customer_id":"c-9","total":12.5,"items":[{"sku":"A1"},{"sku":"B2"}]})";
  created.metadata = R"({"$user":"ann"})";
  ASSERT_TRUE(store_->Append("order-1", ExpectedVersion::Any(), {&created, 1}).ok());
  Add("order-1", "OrderShipped", {{"order_id", "o-1"}});
  Add("customer-1", "OrderCreated", {{"order_id", "not-an-order-stream"}});  // filtered out by category
  auto projection = ProjectionFromSpec(kSpec);
  ASSERT_TRUE(projection.ok()) << projection.status().ToString();
  auto runner = ProjectionRunner::Open(*store_, std::move(*projection), Path());
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  ASSERT_TRUE((*runner)->Run().ok());
  // A missing field (note) is NULL: weak schema.
  EXPECT_EQ(Dump(Path(), "SELECT * FROM order_summary"), "o-1|c-9|12.5|shipped|NULL|A1|ann|order-1|0\n");
}

TEST_F(ProjectionTest, BadSpecsNameTheField) {
  struct Case {
    const char* spec;
    const char* field;
  };
  const Case cases[] = {
      {"not json", "not valid JSON"},
      {R"({"on": {}})", "name: missing"},
      {R"({"name": "x"})", "on: missing"},
      {R"({"name": "x", "on": {"A": {"params": []}}})", "on.A[0].sql: missing"},
      {R"({"name": "x", "on": {"A": {"sql": "SELECT 1", "params": ["dta.x"]}}})", "on.A[0].params[0]: unknown path"},
      {R"({"name": "x", "on": {"A": {"sql": "SELECT 1", "params": [3]}}})", "on.A[0].params[0]: must be a path"},
      {R"({"name": "x", "tables": [{"name": "t"}], "on": {"A": {"sql": "SELECT 1"}}})", "tables[0].create: missing"},
      {R"({"name": "x", "filter": {"categories": [1]}, "on": {"A": {"sql": "SELECT 1"}}})", "filter.categories[0]"},
      {R"({"name": "x", "handlers": {}, "on": {"A": {"sql": "SELECT 1"}}})", "unknown key \"handlers\""},
  };
  for (const Case& c : cases) {
    auto p = ProjectionFromSpec(c.spec);
    ASSERT_FALSE(p.ok()) << c.spec;
    EXPECT_TRUE(p.status().IsInvalidArgument());
    EXPECT_NE(p.status().message().find(c.field), std::string::npos) << p.status().message();
  }
}

TEST_F(ProjectionTest, SpecStatementWithWrongParameterCountFailsNamingTheStatement) {
  Add("order-1", "A", {{"x", 1}});
  auto p = ProjectionFromSpec(
      R"json({"name": "x", "tables": [{"name": "t", "create": "CREATE TABLE t (a, b)"}],
          "on": {"A": {"sql": "INSERT INTO t VALUES (?, ?)", "params": ["data.x"]}}})json");
  ASSERT_TRUE(p.ok());
  auto runner = ProjectionRunner::Open(*store_, std::move(*p), Path());
  ASSERT_TRUE(runner.ok());
  Status s = (*runner)->Run();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("handler on.A[0]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("2 parameters, given 1"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cairn

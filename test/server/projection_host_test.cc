// Proves that `cairn serve` can run the declarative projections its config lists: the
// [[projections]] tables are read (bad ones name the key and the limit), ProjectionHost applies
// existing and live events into SQLite and reports their status, a bad spec names its place in
// the list, and a failing handler stops that projection with its error. How: a memory store, real
// spec files and SQLite sinks in a temporary directory.
#include "server/projection_host.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "cairn/store.h"
#include "server/config.h"
#include "util/test_util.h"

namespace cairn::server {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSpec = R"json({
  "name": "order_totals",
  "tables": [{"name": "order_totals", "create": "CREATE TABLE order_totals (order_id TEXT PRIMARY KEY, total INTEGER NOT NULL)"}],
  "filter": {"categories": ["order"]},
  "on": {"OrderPlaced": {"sql": "INSERT INTO order_totals VALUES (?1, ?2)", "params": ["stream", "data.total"]}}
})json";

class ProjectionHostTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(Store::Open("memory:")).value(); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.Sub(name);
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return path;
  }

  void Place(const std::string& order, int total) {
    EventData e;
    e.type = "OrderPlaced";
    e.data = "{\"total\":" + std::to_string(total) + "}";
    ASSERT_TRUE(store_->Append(order, ExpectedVersion::Any(), {&e, 1}).ok());
  }

  // Waits until the first projection has handled `count` events.
  void WaitHandled(ProjectionHost& host, uint64_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      auto s = host.Statuses();
      if (!s.empty() && s[0].status && s[0].status->events_handled >= count) return;
      if (std::chrono::steady_clock::now() > deadline) {
        FAIL() << "not handled: state " << (s.empty() ? "" : s[0].state + " " + s[0].error);
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(ProjectionHostTest, ConfigReadsProjectionTables) {
  auto good = LoadConfigFile(Write("good.toml", "grpc = \"127.0.0.1:0\"\n[[projections]]\nspec = \"a.json\"\n"
                                                "sink = \"sqlite:a.db\"\non_error = \"park\"\nbatch = 50\n"
                                                "[[projections]]\nspec = \"b.json\"\nsink = \"b.db\"\n"));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  ASSERT_EQ(good->projections.size(), 2u);
  EXPECT_EQ(good->projections[0].spec, "a.json");
  EXPECT_EQ(good->projections[0].on_error, "park");
  EXPECT_EQ(good->projections[0].batch, 50u);
  EXPECT_EQ(good->projections[1].on_error, "stop");

  auto no_sink = LoadConfigFile(Write("nosink.toml", "[[projections]]\nspec = \"a.json\"\n"));
  EXPECT_EQ(no_sink.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_sink.status().message().find("projections[0].sink must be given"), std::string::npos)
      << no_sink.status().message();
  auto batch = LoadConfigFile(Write("batch.toml", "[[projections]]\nspec = \"a\"\nsink = \"b\"\nbatch = 0\n"));
  EXPECT_NE(batch.status().message().find("projections[0].batch must be an integer in 1..1000000"), std::string::npos)
      << batch.status().message();
  auto unknown = LoadConfigFile(Write("unknown.toml", "[[projections]]\nspec = \"a\"\nsink = \"b\"\nfollow = true\n"));
  EXPECT_NE(unknown.status().message().find("unknown key follow"), std::string::npos) << unknown.status().message();
  auto not_array = LoadConfigFile(Write("notarray.toml", "projections = \"a\"\n"));
  EXPECT_NE(not_array.status().message().find("projections must be an array of tables"), std::string::npos);
}

TEST_F(ProjectionHostTest, RunsHistoryAndLiveEventsAndReportsStatus) {
  Place("order-1", 10);
  Place("quote-1", 99);  // filtered out by category
  ProjectionConfig c;
  c.spec = Write("spec.json", kSpec);
  c.sink = "sqlite:" + dir_.Sub("read.db");
  auto host = ProjectionHost::Start(*store_, {c});
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  WaitHandled(**host, 1);
  Place("order-2", 20);
  WaitHandled(**host, 2);
  auto s = (*host)->Statuses();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].status->name, "order_totals");
  EXPECT_EQ(s[0].spec, c.spec);
  (*host)->Stop();
  EXPECT_EQ((*host)->Statuses()[0].state, "stopped");
}

TEST_F(ProjectionHostTest, BadSpecNamesItsPlaceInTheList) {
  ProjectionConfig good;
  good.spec = Write("spec.json", kSpec);
  good.sink = dir_.Sub("a.db");
  ProjectionConfig bad;
  bad.spec = Write("bad.json", "{\"name\": \"x\"}");
  bad.sink = dir_.Sub("b.db");
  auto host = ProjectionHost::Start(*store_, {good, bad});
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.status().message().find("projections[1] (" + bad.spec + ")"), std::string::npos)
      << host.status().message();
  ProjectionConfig missing;
  missing.spec = dir_.Sub("nope.json");
  missing.sink = dir_.Sub("c.db");
  EXPECT_EQ(ProjectionHost::Start(*store_, {missing}).status().code(), StatusCode::kNotFound);
}

TEST_F(ProjectionHostTest, FailingHandlerStopsThatProjectionWithItsError) {
  Place("order-1", 10);
  Place("order-1", 10);  // the same order_id twice: the INSERT violates the primary key
  ProjectionConfig c;
  c.spec = Write("spec.json", kSpec);
  c.sink = dir_.Sub("read.db");
  auto host = ProjectionHost::Start(*store_, {c});
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((*host)->Statuses()[0].state != "failed" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  auto s = (*host)->Statuses()[0];
  EXPECT_EQ(s.state, "failed");
  EXPECT_NE(s.error.find("OrderPlaced"), std::string::npos) << s.error;
}

}  // namespace
}  // namespace cairn::server

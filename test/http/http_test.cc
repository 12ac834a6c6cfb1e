// Proves the HTTP API (docs/http-api.md): appends and their errors (bad bodies, 409 with the
// actual version, 413), paged reads of streams and $all, metadata, delete and tombstone, live
// tails as server-sent events resumed with Last-Event-ID, /health, /metrics, the web UI's files,
// the authorization hook on every endpoint, and shutdown with a live tail open.
// How: a real HttpServer on a memory store and a free loopback port, driven by cpp-httplib's client.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fmt/format.h>

#include <map>
#include <mutex>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "auth/security.h"
#include "cairn/store.h"
#include "server/http/http_server.h"

namespace cairn::server::http {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(Store::Open("memory:")).value(); }

  void StartServer(HttpOptions options = {}) {
    options.address = "127.0.0.1:0";
    auto server = HttpServer::Start(store_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  static json Body(const httplib::Result& r) {
    EXPECT_TRUE(r) << "no response: " << httplib::to_string(r.error());
    if (!r) return json();
    json body = json::parse(r->body, nullptr, false);
    EXPECT_FALSE(body.is_discarded()) << r->body;
    return body;
  }

  httplib::Result Post(const std::string& path, const std::string& body) {
    return client_->Post(path.c_str(), body, "application/json");
  }

  // Appends `count` events of type `type` to `stream`; expects 200.
  json AppendOk(const std::string& stream, int count, const std::string& type = "Happened",
                const std::string& metadata = "null") {
    json events = json::array();
    for (int i = 0; i < count; ++i) {
      events.push_back(json{{"type", type}, {"data", {{"i", i}}}, {"metadata", json::parse(metadata)}});
    }
    auto r = Post("/streams/" + stream, json{{"events", events}}.dump());
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    return Body(r);
  }

  std::unique_ptr<Store> store_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpTest, HealthSaysLiveAndReady) {
  StartServer();
  auto r = client_->Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json body = Body(r);
  EXPECT_EQ(body["status"], "ok");
  EXPECT_EQ(body["live"], true);
  EXPECT_EQ(body["ready"], true);
}

TEST_F(HttpTest, AppendAnswersVersionsAndPositionAndReadReturnsTheEventLineFormat) {
  StartServer();
  auto r = Post("/streams/account-1",
                R"({"expected":"no-stream","events":[
                     {"id":"0190a6e4-1b2c-7d3e-8f40-123456789abc","type":"Opened","data":{"owner":"ada"},
                      "metadata":{"$correlationId":"c-1"}},
                     {"type":"Deposited","data":{"amount":10}}]})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json result = Body(r);
  EXPECT_EQ(result["stream"], "account-1");
  EXPECT_EQ(result["first_version"], 0);
  EXPECT_EQ(result["next_version"], 2);
  EXPECT_TRUE(result["position"].is_number_unsigned());

  auto read = client_->Get("/streams/account-1");
  ASSERT_TRUE(read);
  ASSERT_EQ(read->status, 200) << read->body;
  json page = Body(read);
  ASSERT_EQ(page["events"].size(), 2u);
  const json& first = page["events"][0];
  EXPECT_EQ(first["stream"], "account-1");
  EXPECT_EQ(first["version"], 0);
  EXPECT_EQ(first["position"], result["position"]);
  EXPECT_EQ(first["id"], "0190a6e4-1b2c-7d3e-8f40-123456789abc");
  EXPECT_EQ(first["type"], "Opened");
  EXPECT_EQ(first["data"], json({{"owner", "ada"}}));
  EXPECT_EQ(first["metadata"], json({{"$correlationId", "c-1"}}));
  EXPECT_TRUE(first["recorded_at"].is_string());
  EXPECT_EQ(page["events"][1]["metadata"], nullptr);
  EXPECT_EQ(page["end_of_stream"], true);
}

TEST_F(HttpTest, MalformedBodiesAre400NamingWhatIsWrongAndWriteNothing) {
  StartServer();
  struct Case {
    std::string body;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"{not json", "body: not valid JSON"},
      {"[]", "request: must be an object"},
      {R"({"expected":"any"})", "events: missing"},
      {R"({"events":{}})", "events: must be an array"},
      {R"({"events":[]})", "events: empty"},
      {R"({"events":[{"data":{}}]})", "events[0].type: missing"},
      {R"({"events":[{"type":"A","data":1},{"type":7,"data":1}]})", "events[1].type: must be a string"},
      {R"({"events":[{"type":"A"}]})", "events[0].data: missing"},
      {R"({"events":[{"type":"A","data":1,"id":"nope"}]})", "events[0].id: not a UUID"},
      {R"({"expected":"sometimes","events":[{"type":"A","data":1}]})", "expected:"},
      {R"({"expected":-1,"events":[{"type":"A","data":1}]})", "expected:"},
      {R"({"stream":"other-1","events":[{"type":"A","data":1}]})", "stream: the body names \"other-1\""},
  };
  for (const Case& c : cases) {
    auto r = Post("/streams/s-1", c.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << c.body << " -> " << r->body;
    json body = Body(r);
    EXPECT_EQ(body["error"], "InvalidArgument") << r->body;
    EXPECT_NE(body["message"].get<std::string>().find(c.names), std::string::npos)
        << "for " << c.body << " want '" << c.names << "' in " << body["message"];
  }
  EXPECT_FALSE(store_->GetStreamInfo("s-1")->exists);
}

TEST_F(HttpTest, WrongExpectedVersionIs409WithTheActualVersion) {
  StartServer();
  AppendOk("order-7", 2);
  auto r = Post("/streams/order-7", R"({"expected":0,"events":[{"type":"A","data":{}}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  json body = Body(r);
  EXPECT_EQ(body["error"], "Conflict");
  EXPECT_EQ(body["actual_version"], 1);

  r = Post("/streams/order-7", R"({"expected":"no-stream","events":[{"type":"A","data":{}}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(Body(r)["actual_version"], 1);

  r = Post("/streams/order-8", R"({"expected":"exists","events":[{"type":"A","data":{}}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  json missing = Body(r);
  ASSERT_TRUE(missing.contains("actual_version"));
  EXPECT_EQ(missing["actual_version"], nullptr);
  EXPECT_EQ(store_->GetStreamInfo("order-7")->last_version, 1u);

  r = Post("/streams/order-7", R"({"expected":1,"events":[{"type":"A","data":{}}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(HttpTest, BodyOverTheLimitIs413AndWritesNothing) {
  HttpOptions options;
  options.max_body_bytes = 4096;
  StartServer(options);
  json events = json::array({json{{"type", "Big"}, {"data", std::string(5000, 'x')}}});
  auto r = Post("/streams/big-1", json{{"events", events}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  json body = Body(r);
  EXPECT_EQ(body["error"], "PayloadTooLarge");
  EXPECT_NE(body["message"].get<std::string>().find("4096"), std::string::npos) << r->body;
  EXPECT_FALSE(store_->GetStreamInfo("big-1")->exists);
}

TEST_F(HttpTest, TooManyEventsInOneAppendIs413NamingTheLimit) {
  StartServer();
  std::string body = R"({"events":[)";
  for (size_t i = 0; i <= kMaxAppendEvents; ++i) body += std::string(i ? "," : "") + R"({"type":"A","data":0})";
  body += "]}";
  auto r = Post("/streams/many-1", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(Body(r)["message"].get<std::string>().find("limit of one append is 10000"), std::string::npos) << r->body;
  EXPECT_FALSE(store_->GetStreamInfo("many-1")->exists);
}

TEST_F(HttpTest, SystemStreamsCannotBeAppendedTo) {
  StartServer();
  auto r = Post("/streams/%24system", R"({"events":[{"type":"A","data":{}}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(Body(r)["message"].get<std::string>().find("reserved for system streams"), std::string::npos);
  EXPECT_FALSE(store_->GetStreamInfo("$system")->exists);
}

TEST_F(HttpTest, StreamPagesFollowNextLinksForwardAndBackward) {
  StartServer();
  AppendOk("page-1", 5);
  std::vector<int> versions;
  std::string link = "/streams/page-1?max=2";
  for (int pages = 0; pages < 10; ++pages) {
    json page = Body(client_->Get(link.c_str()));
    for (const auto& e : page["events"]) versions.push_back(e["version"].get<int>());
    if (page["end_of_stream"] == true) break;
    link = page["links"]["next"].get<std::string>();
  }
  EXPECT_EQ(versions, (std::vector<int>{0, 1, 2, 3, 4}));

  versions.clear();
  link = "/streams/page-1?max=2&direction=backward";
  for (int pages = 0; pages < 10 && !link.empty(); ++pages) {
    json page = Body(client_->Get(link.c_str()));
    for (const auto& e : page["events"]) versions.push_back(e["version"].get<int>());
    link = page["links"]["next"].is_null() ? "" : page["links"]["next"].get<std::string>();
  }
  EXPECT_EQ(versions, (std::vector<int>{4, 3, 2, 1, 0}));
}

TEST_F(HttpTest, AllIsPagedWithAPositionCursorAndFilters) {
  StartServer();
  AppendOk("a-1", 2);
  AppendOk("b-1", 1);
  AppendOk("a-2", 2);
  std::vector<std::string> seen;
  std::string link = "/streams/%24all?max=2&prefix=a-";
  for (int pages = 0; pages < 10; ++pages) {
    auto r = client_->Get(link.c_str());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json page = Body(r);
    for (const auto& e : page["events"]) seen.push_back(e["stream"].get<std::string>() + "/" + e["version"].dump());
    link = page["links"]["next"].get<std::string>();
    EXPECT_NE(link.find("prefix=a-"), std::string::npos) << link;
    if (page["end_of_stream"] == true) break;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a-1/0", "a-1/1", "a-2/0", "a-2/1"}));

  // The last forward link is where the next event will appear.
  AppendOk("a-3", 1);
  json after = Body(client_->Get(link.c_str()));
  ASSERT_EQ(after["events"].size(), 1u);
  EXPECT_EQ(after["events"][0]["stream"], "a-3");

  json backward = Body(client_->Get("/streams/%24all?direction=backward&max=1&exclude_system=true"));
  ASSERT_EQ(backward["events"].size(), 1u);
  EXPECT_EQ(backward["events"][0]["stream"], "a-3");
  json older = Body(client_->Get(backward["links"]["next"].get<std::string>().c_str()));
  ASSERT_EQ(older["events"].size(), 1u);
  EXPECT_EQ(older["events"][0]["stream"], "a-2");
}

TEST_F(HttpTest, BadReadParametersAre400NamingTheParameter) {
  StartServer();
  AppendOk("p-1", 1);
  for (auto [path, names] : std::vector<std::pair<std::string, std::string>>{
           {"/streams/p-1?max=0", "max:"},
           {"/streams/p-1?max=1001", "max:"},
           {"/streams/p-1?direction=up", "direction:"},
           {"/streams/p-1?from=x", "from:"},
           {"/streams/%24all?from=-3", "from:"},
           {"/streams/%24all?exclude_system=maybe", "exclude_system:"},
       }) {
    auto r = client_->Get(path.c_str());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << path;
    EXPECT_NE(Body(r)["message"].get<std::string>().find(names), std::string::npos) << path << " " << r->body;
  }
}

TEST_F(HttpTest, MissingDeletedAndTombstonedStreams) {
  StartServer();
  auto r = client_->Get("/streams/never-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Body(r)["error"], "NotFound");

  AppendOk("gone-1", 2);
  r = client_->Delete("/streams/gone-1?expected=0");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409) << r->body;
  r = client_->Delete("/streams/gone-1?expected=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(client_->Get("/streams/gone-1")->status, 404);
  json info = Body(client_->Get("/streams/gone-1/info"));
  EXPECT_EQ(info["deleted"], true);
  EXPECT_EQ(info["last_version"], 1);
  // A soft-deleted stream re-opens on append and continues its versions.
  EXPECT_EQ(AppendOk("gone-1", 1)["first_version"], 2);

  r = Post("/streams/gone-1/tombstone", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = client_->Get("/streams/gone-1");
  EXPECT_EQ(r->status, 410);
  r = Post("/streams/gone-1", R"({"events":[{"type":"A","data":{}}]})");
  EXPECT_EQ(r->status, 410) << r->body;
  EXPECT_EQ(client_->Delete("/streams/gone-1?expected=sometimes")->status, 400);
}

TEST_F(HttpTest, MetadataIsWrittenAndReadAndHonoured) {
  StartServer();
  AppendOk("meta-1", 5);
  json empty = Body(client_->Get("/streams/meta-1/metadata"));
  EXPECT_EQ(empty["metadata_version"], nullptr);

  auto r = client_->Put("/streams/meta-1/metadata?expected=no-stream", R"({"$maxCount":2,"owner":"ops"})",
                        "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r)["stream"], "$$meta-1");
  json got = Body(client_->Get("/streams/meta-1/metadata"));
  EXPECT_EQ(got["metadata_version"], 0);
  EXPECT_EQ(got["metadata"]["$maxCount"], 2);
  EXPECT_EQ(got["metadata"]["owner"], "ops");
  EXPECT_EQ(Body(client_->Get("/streams/meta-1"))["events"].size(), 2u);

  r = client_->Put("/streams/meta-1/metadata?expected=no-stream", R"({"$maxCount":3})", "application/json");
  EXPECT_EQ(r->status, 409);
  r = client_->Put("/streams/meta-1/metadata", R"({"$maxCount":"many"})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(Body(r)["message"].get<std::string>().find("$maxCount"), std::string::npos) << r->body;
  r = client_->Put("/streams/meta-1/metadata", "[1]", "application/json");
  EXPECT_EQ(r->status, 400);
}

TEST_F(HttpTest, StreamNamesArePercentEncodedPathSegments) {
  StartServer();
  AppendOk("with%2Fslash%20and%20space", 1);
  EXPECT_TRUE(store_->GetStreamInfo("with/slash and space")->exists);
  json page = Body(client_->Get("/streams/with%2Fslash%20and%20space"));
  ASSERT_EQ(page["events"].size(), 1u);
  EXPECT_EQ(page["events"][0]["stream"], "with/slash and space");
  EXPECT_EQ(page["links"]["next"], "/streams/with%2Fslash%20and%20space?from=1&max=20&direction=forward");
  EXPECT_EQ(client_->Get("/streams/x/nonsense")->status, 404);
}

// Reads server-sent events from `path` until `want` messages with data arrived.
struct SseMessage {
  std::string id;
  std::string event;
  std::string data;
};

std::vector<SseMessage> ReadSse(httplib::Client& client, const std::string& path, size_t want,
                                const httplib::Headers& headers = {}, std::function<void()> on_open = {}) {
  std::vector<SseMessage> out;
  std::string buffer;
  SseMessage current;
  bool opened = false;
  client.Get(path.c_str(), headers, [&](const char* data, size_t length) {
    if (!opened && on_open) on_open();
    opened = true;
    buffer.append(data, length);
    size_t end;
    while ((end = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, end);
      buffer.erase(0, end + 1);
      if (line.empty()) {
        if (!current.data.empty()) out.push_back(current);
        current = {};
        if (out.size() >= want) return false;
      } else if (line.starts_with("id: ")) {
        current.id = line.substr(4);
      } else if (line.starts_with("event: ")) {
        current.event = line.substr(7);
      } else if (line.starts_with("data: ")) {
        current.data = line.substr(6);
      }
    }
    return true;
  });
  return out;
}

TEST_F(HttpTest, LiveTailOfAStreamDeliversHistoryThenLiveAndResumesAfterLastEventId) {
  StartServer();
  AppendOk("live-1", 2);
  httplib::Client sse("127.0.0.1", server_->port());
  sse.set_read_timeout(10, 0);
  std::thread appender;
  auto messages = ReadSse(sse, "/streams/live-1/live?from=start", 4, {}, [&] {
    appender = std::thread([&] { AppendOk("live-1", 1); });
  });
  appender.join();
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].id, "0");
  EXPECT_EQ(messages[1].id, "1");
  EXPECT_EQ(messages[2].event, "caught-up");
  EXPECT_EQ(messages[3].id, "2");
  json live = json::parse(messages[3].data);
  EXPECT_EQ(live["stream"], "live-1");
  EXPECT_EQ(live["version"], 2);

  // A reconnect with Last-Event-ID resumes right after that event.
  auto resumed = ReadSse(sse, "/streams/live-1/live", 1, {{"Last-Event-ID", "0"}});
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].id, "1");

  auto bad = sse.Get("/streams/live-1/live", {{"Last-Event-ID", "yesterday"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

TEST_F(HttpTest, LiveTailOfAllUsesPositionsAsIdsAndResumes) {
  StartServer();
  json first = AppendOk("x-1", 1);
  AppendOk("y-1", 1);
  httplib::Client sse("127.0.0.1", server_->port());
  sse.set_read_timeout(10, 0);
  auto messages = ReadSse(sse, "/streams/%24all/live?from=start", 2);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].id, first["position"].dump());
  auto resumed = ReadSse(sse, "/streams/%24all/live", 1, {{"Last-Event-ID", messages[0].id}});
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].id, messages[1].id);
  EXPECT_EQ(json::parse(resumed[0].data)["stream"], "y-1");
}

TEST_F(HttpTest, LiveTailsOverTheLimitAre503AndShowInSubscriptionsAndMetrics) {
  HttpOptions options;
  options.max_live_clients = 1;
  options.threads = 4;
  StartServer(options);
  AppendOk("busy-1", 1);
  httplib::Client first("127.0.0.1", server_->port());
  std::atomic<bool> opened{false};
  std::thread holder([&] {
    ReadSse(first, "/streams/busy-1/live?from=start", 100, {}, [&] { opened = true; });
  });
  for (int i = 0; i < 200 && !opened; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(opened);

  auto r = client_->Get("/streams/busy-1/live");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(Body(r)["message"].get<std::string>().find("the limit is 1"), std::string::npos) << r->body;

  json subs = Body(client_->Get("/subscriptions"));
  ASSERT_EQ(subs["subscriptions"].size(), 1u);
  EXPECT_EQ(subs["subscriptions"][0]["stream"], "busy-1");
  EXPECT_EQ(subs["subscriptions"][0]["delivered"], 1);
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("cairn_subscriptions{kind=\"live-tail\"} 1\n"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("cairn_subscription_events_delivered_total{id=\"1\",stream=\"busy-1\"} 1\n"),
            std::string::npos)
      << metrics->body;

  // Shutdown ends the open tail promptly and cleanly.
  auto started = std::chrono::steady_clock::now();
  server_->Shutdown();
  holder.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(HttpTest, MetricsAreInPrometheusTextFormat) {
  StartServer();
  AppendOk("m-1", 3);
  client_->Get("/streams/m-1");
  client_->Get("/streams/nope-1");
  // A request is counted once its answer is written, so the last one may show a moment later.
  auto r = client_->Get("/metrics");
  for (int i = 0; i < 100 && r && r->body.find("cairn_http_requests_total{code=\"4xx\"} 1\n") == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
    r = client_->Get("/metrics");
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = r->body;
  EXPECT_NE(text.find("# TYPE cairn_http_appends_total counter\ncairn_http_appends_total 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("cairn_http_events_appended_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cairn_http_events_read_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cairn_http_requests_total{code=\"4xx\"} 1\n"), std::string::npos) << text;
  // Every sample line is NAME[{labels}] VALUE with a cairn_ name.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("#")) continue;
    EXPECT_TRUE(line.starts_with("cairn_")) << line;
    EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
}

TEST_F(HttpTest, MetricsIncludeTheStoresCountersAndHistograms) {
  StartServer();
  AppendOk("h-1", 2);
  AppendOk("h-2", 1);
  auto r = client_->Get("/metrics");
  ASSERT_TRUE(r);
  const std::string& text = r->body;
  EXPECT_NE(text.find("\ncairn_appends_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ncairn_events_written_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ncairn_streams 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE cairn_fsync_seconds histogram\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cairn_batch_events_bucket{le=\"+Inf\"} "), std::string::npos) << text;
  EXPECT_NE(text.find("cairn_batch_events_count "), std::string::npos) << text;

  json stats = Body(client_->Get("/stats"));
  EXPECT_EQ(stats["appends"], 2);
  EXPECT_EQ(stats["events_written"], 3);
  EXPECT_EQ(stats["streams"], 2);
  EXPECT_EQ(stats["live_tails"], 0);
}

TEST_F(HttpTest, StreamsAreListedByPrefixOrCategoryAPageAtATime) {
  StartServer();
  for (const char* name : {"order-1", "order-2", "order-3", "orders_archive", "user-1"}) AppendOk(name, 1);
  ASSERT_EQ(client_->Delete("/streams/order-2")->status, 200);
  std::vector<std::string> names;
  std::string link = "/streams?category=order&max=2";
  for (int pages = 0; pages < 10 && !link.empty(); ++pages) {
    auto r = client_->Get(link.c_str());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json page = Body(r);
    for (const auto& s : page["streams"]) {
      names.push_back(s["name"].get<std::string>() + (s["deleted"] == true ? "(deleted)" : ""));
    }
    link = page["links"]["next"].is_null() ? "" : page["links"]["next"].get<std::string>();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"order-1", "order-2(deleted)", "order-3"}));
  json by_prefix = Body(client_->Get("/streams?prefix=order"));
  EXPECT_EQ(by_prefix["streams"].size(), 4u);
  EXPECT_EQ(by_prefix["streams"][0]["last_version"], 0);
  EXPECT_EQ(client_->Get("/streams?max=0")->status, 400);
  EXPECT_EQ(client_->Get("/streams?prefix=a&category=b")->status, 400);
}

TEST_F(HttpTest, EventsAreFoundByIdForCorrelationLinks) {
  StartServer();
  auto r = Post("/streams/cause-1", R"({"events":[{"id":"0190a6e4-1b2c-7d3e-8f40-00000000000a","type":"Ordered","data":{}}]})");
  ASSERT_EQ(r->status, 200);
  AppendOk("effect-1", 1, "Shipped", R"({"$causationId":"0190a6e4-1b2c-7d3e-8f40-00000000000a"})");
  json found = Body(client_->Get("/events/0190a6e4-1b2c-7d3e-8f40-00000000000A"));
  EXPECT_EQ(found["stream"], "cause-1");
  EXPECT_EQ(found["type"], "Ordered");
  auto missing = client_->Get("/events/0190a6e4-1b2c-7d3e-8f40-00000000000b");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(client_->Get("/events/not-a-uuid")->status, 400);
}

TEST_F(HttpTest, WebUiIsServedAtTheRoot) {
  StartServer();
  auto r = client_->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("<title>cairn"), std::string::npos);
  auto script = client_->Get("/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_NE(script->body.find("function route()"), std::string::npos);
  auto missing = client_->Get("/no-such-file.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Body(missing)["error"], "NotFound");
}

// A hook that records what each endpoint asked and refuses as told.
struct RecordingAuthorizer {
  std::mutex mu;
  std::vector<std::string> asked;  // "permission stream"
  Authorizer Make() {
    return [this](const AccessRequest& a) -> Result<Principal> {
      {
        std::lock_guard<std::mutex> lock(mu);
        asked.push_back(std::string(PermissionName(a.permission)) + " " + std::string(a.stream));
      }
      if (a.permission == Permission::kPublic) return Principal{};
      if (a.authorization.empty()) return Status(StatusCode::kUnauthenticated, "credentials required");
      if (a.authorization != "Basic b3BzOnNlY3JldA==") {  // ops:secret
        return Status(StatusCode::kPermissionDenied, fmt::format("not allowed to {} {}", PermissionName(a.permission), a.stream));
      }
      return Principal{"ops"};
    };
  }
  std::string Last() {
    std::lock_guard<std::mutex> lock(mu);
    return asked.empty() ? "" : asked.back();
  }
};

TEST_F(HttpTest, EveryEndpointGoesThroughTheAuthorizationHook) {
  RecordingAuthorizer hook;
  HttpOptions options;
  options.authorizer = hook.Make();
  StartServer(options);

  auto r = Post("/streams/acl-1", R"({"events":[{"type":"A","data":{}}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Basic realm=\"cairn\", charset=\"UTF-8\"");
  EXPECT_EQ(Body(r)["error"], "Unauthenticated");
  EXPECT_FALSE(store_->GetStreamInfo("acl-1")->exists);
  // The UI asks for no browser dialog.
  r = client_->Get("/streams/acl-1", {{"X-Cairn-UI", "1"}});
  EXPECT_EQ(r->status, 401);
  EXPECT_FALSE(r->has_header("WWW-Authenticate"));

  client_->set_basic_auth("eve", "guess");
  r = Post("/streams/acl-1", R"({"events":[{"type":"A","data":{}}]})");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(Body(r)["error"], "PermissionDenied");

  client_->set_basic_auth("ops", "secret");
  struct Want {
    std::string method, path, asked;
    int status = 200;
  };
  const std::vector<Want> wants = {
      {"POST", "/streams/acl-1", "write acl-1"},
      {"GET", "/streams/acl-1", "read acl-1"},
      {"GET", "/streams/%24all", "read $all"},
      {"GET", "/streams/acl-1/info", "read acl-1"},
      {"GET", "/streams?prefix=acl-", "read acl-"},
      {"GET", "/stats", "operate "},
      {"GET", "/events/0190a6e4-1b2c-7d3e-8f40-123456789abc", "read $all", 404},
      {"GET", "/streams/acl-1/metadata", "metadata-read acl-1"},
      {"PUT", "/streams/acl-1/metadata", "metadata-write acl-1"},
      {"DELETE", "/streams/acl-1", "delete acl-1"},
      {"POST", "/streams/acl-1/tombstone", "delete acl-1"},
      {"GET", "/metrics", "metrics "},
      {"GET", "/subscriptions/order-1/billing", "operate ", 501},
      {"GET", "/subscriptions", "operate "},
      {"GET", "/health", "public "},
      {"GET", "/", "public "},
  };
  for (const Want& w : wants) {
    auto send = [&]() -> httplib::Result {
      if (w.method == "POST") return Post(w.path, R"({"events":[{"type":"A","data":{}}]})");
      if (w.method == "PUT") return client_->Put(w.path.c_str(), R"({"$maxCount":5})", "application/json");
      if (w.method == "DELETE") return client_->Delete(w.path.c_str());
      return client_->Get(w.path.c_str());
    };
    httplib::Result res = send();
    ASSERT_TRUE(res) << w.path;
    EXPECT_EQ(res->status, w.status) << w.method << " " << w.path << " " << res->body;
    EXPECT_EQ(hook.Last(), w.asked) << w.method << " " << w.path;
  }
  // Live tails ask before they start.
  client_->set_basic_auth("eve", "guess");
  r = client_->Get("/streams/%24all/live");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(hook.Last(), "read $all");
}

// With src/auth's users and permissions: the admin (in $admins) may do everything; "reader" may
// read streams under "public-" by the policy, nothing else.
class HttpAuthTest : public HttpTest {
 protected:
  void StartSecure(HttpOptions options = {}) {
    auth::SecurityOptions so;
    so.enabled = true;
    so.kdf_log2_n = 10;  // cheap hashes for tests
    so.initial_admin_password = "admin-secret";
    auth::AclRule rule;
    rule.prefix = "public-";
    rule.read = {"$authenticated"};
    so.policy.rules.push_back(rule);
    auto security = auth::Security::Open(store_.get(), so);
    ASSERT_TRUE(security.ok()) << security.status().ToString();
    security_ = std::move(security).value();
    ASSERT_TRUE(security_->CreateUser("reader", "reader-secret", {}).ok());
    options.authorizer = SecurityAuthorizer(security_.get());
    if (options.address.empty()) options.address = "127.0.0.1:0";
    auto server = HttpServer::Start(store_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  httplib::Client As(const std::string& user, const std::string& password) {
    httplib::Client c("127.0.0.1", server_->port());
    if (!user.empty()) c.set_basic_auth(user.c_str(), password.c_str());
    return c;
  }

  std::unique_ptr<auth::Security> security_;
};

TEST_F(HttpAuthTest, CredentialsAndPermissionsOfSecurityApplyToEveryEndpoint) {
  StartSecure();
  const std::string append = R"({"events":[{"type":"A","data":{}}]})";
  httplib::Client anonymous = As("", "");
  httplib::Client admin = As("admin", "admin-secret");
  httplib::Client reader = As("reader", "reader-secret");
  httplib::Client wrong = As("reader", "not-the-password");

  auto r = anonymous.Post("/streams/public-1", append, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_TRUE(r->has_header("WWW-Authenticate"));
  EXPECT_EQ(anonymous.Get("/streams/public-1")->status, 401);
  EXPECT_EQ(wrong.Get("/streams/public-1")->status, 401);
  EXPECT_EQ(anonymous.Get("/health")->status, 200);
  EXPECT_EQ(anonymous.Get("/")->status, 200);

  EXPECT_EQ(reader.Post("/streams/public-1", append, "application/json")->status, 403);
  EXPECT_FALSE(store_->GetStreamInfo("public-1")->exists);
  r = admin.Post("/streams/public-1", append, "application/json");
  EXPECT_EQ(r->status, 200) << r->body;

  EXPECT_EQ(reader.Get("/streams/public-1")->status, 200);
  EXPECT_EQ(reader.Get("/streams?prefix=public-")->status, 200);
  EXPECT_EQ(reader.Get("/streams/private-1")->status, 403);
  EXPECT_EQ(reader.Get("/streams/%24all")->status, 403);
  EXPECT_EQ(reader.Get("/streams/%24all/live")->status, 403);
  EXPECT_EQ(reader.Get("/metrics")->status, 403);
  EXPECT_EQ(reader.Delete("/streams/public-1")->status, 403);
  EXPECT_EQ(reader.Put("/streams/public-1/metadata", R"({"$maxCount":1})", "application/json")->status, 403);

  EXPECT_EQ(admin.Get("/streams/%24all")->status, 200);
  EXPECT_EQ(admin.Get("/metrics")->status, 200);
  EXPECT_EQ(admin.Get("/subscriptions")->status, 200);
}

TEST_F(HttpAuthTest, HttpsWithAuthenticationMayListenBeyondLoopback) {
  const auto dir = std::filesystem::temp_directory_path() / ("cairn-http-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
                          (dir / "key.pem").string() + " -out " + (dir / "cert.pem").string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  HttpOptions options;
  options.address = "0.0.0.0:0";
  options.tls_cert_file = (dir / "cert.pem").string();
  options.tls_key_file = (dir / "key.pem").string();
  StartSecure(options);
  httplib::SSLClient tls("127.0.0.1", server_->port());
  tls.enable_server_certificate_verification(false);
  tls.set_basic_auth("admin", "admin-secret");
  auto r = tls.Get("/streams/%24all");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  httplib::Client plain("127.0.0.1", server_->port());
  EXPECT_FALSE(plain.Get("/health"));

  HttpOptions missing = options;
  missing.tls_cert_file = (dir / "missing.pem").string();
  missing.authorizer = [](const AccessRequest&) -> Result<Principal> { return Principal{}; };
  auto bad = HttpServer::Start(store_.get(), missing);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--tls-cert"), std::string::npos) << bad.status().message();
  std::filesystem::remove_all(dir);
}

TEST_F(HttpTest, RefusesANonLoopbackAddressWithoutInsecure) {
  HttpOptions options;
  options.address = "0.0.0.0:0";
  auto server = HttpServer::Start(store_.get(), options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--http"), std::string::npos);
}

}  // namespace
}  // namespace cairn::server::http

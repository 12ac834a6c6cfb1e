// Proves the subscription and projection status of the HTTP API (docs/http-api.md): GET
// /subscriptions and /subscriptions/{stream}/{group} report consumer groups with their real lag
// (events not read, or read and not acknowledged) on a stream and on $all, PUT and DELETE create
// and delete groups with clear errors for bad input and unknown groups, the projections `cairn
// serve` runs show their position reaching the head and a failing one its reason, /metrics has
// the same figures, and a monitoring user of [security] metrics may scrape /metrics and nothing
// else. How: a real HttpServer on a memory store with real PersistentSubscriptions and a real
// ProjectionHost (SQLite sinks in a temporary directory), driven by cpp-httplib's client.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "auth/security.h"
#include "cairn/persistent_subscription.h"
#include "cairn/store.h"
#include "esdb/streams.grpc.pb.h"
#include "server/http/http_server.h"
#include "server/projection_host.h"
#include "util/test_util.h"

namespace cairn::server::http {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSpec = R"json({
  "name": "order_totals",
  "tables": [{"name": "order_totals", "create": "CREATE TABLE order_totals (order_id TEXT PRIMARY KEY, total INTEGER NOT NULL)"}],
  "filter": {"categories": ["order"]},
  "on": {"OrderPlaced": {"sql": "INSERT INTO order_totals VALUES (?1, ?2)", "params": ["stream", "data.total"]}}
})json";

// Its handler writes to a table that does not exist: it fails at the first event.
constexpr const char* kFailingSpec = R"json({
  "name": "broken_totals",
  "tables": [{"name": "broken_totals", "create": "CREATE TABLE broken_totals (id TEXT)"}],
  "on": {"OrderPlaced": {"sql": "INSERT INTO no_such_table VALUES (?1)", "params": ["stream"]}}
})json";

class SubscriptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(Store::Open("memory:")).value();
    auto subs = PersistentSubscriptions::Open(*store_);
    ASSERT_TRUE(subs.ok()) << subs.status().ToString();
    subs_ = std::move(subs).value();
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    consumers_.clear();
    if (host_) host_->Stop();
    (void)subs_->Close();
  }

  void StartServer(HttpOptions options = {}) {
    options.address = "127.0.0.1:0";
    options.persistent = subs_.get();
    if (host_) {
      ProjectionHost* host = host_.get();
      options.projections = [host] { return host->Statuses(); };
    }
    auto server = HttpServer::Start(store_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
  }

  void Append(const std::string& stream, int count, const std::string& type = "OrderPlaced") {
    for (int i = 0; i < count; ++i) {
      EventData e;
      e.type = type;
      e.data = fmt::format("{{\"total\":{}}}", i);
      ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), {&e, 1}).ok());
    }
  }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.Sub(name);
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return path;
  }

  json Get(const std::string& path, int want_status = 200) {
    auto r = client_->Get(path.c_str());
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, want_status) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }

  std::string Metrics() {
    auto r = client_->Get("/metrics");
    EXPECT_TRUE(r && r->status == 200);
    return r ? r->body : "";
  }

  // Polls `path` until `done` holds for its body (the groups and projections run on threads).
  json WaitFor(const std::string& path, const std::function<bool(const json&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    json body;
    while (std::chrono::steady_clock::now() < deadline) {
      body = Get(path);
      if (done(body)) return body;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "timed out waiting on " << path << "; last: " << body.dump();
    return body;
  }

  static const json* Find(const json& list, const std::string& key, const std::string& value) {
    for (const json& j : list) {
      if (j.value(key, "") == value) return &j;
    }
    return nullptr;
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<PersistentSubscriptions> subs_;
  std::vector<std::unique_ptr<PersistentConsumer>> consumers_;
  std::unique_ptr<ProjectionHost> host_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(SubscriptionsTest, StreamGroupLagIsWhatIsNotAcknowledged) {
  Append("order-1", 10);
  PersistentSubscriptionSettings settings;
  settings.start_from = PersistentStart::Start();
  settings.consumer_strategy = ConsumerStrategy::kDispatchToSingle;
  ASSERT_TRUE(subs_->Create("order-1", "billing", settings).ok());
  StartServer();

  // Created, no consumer yet: the whole stream is ahead of its checkpoint.
  json g = Get("/subscriptions/order-1/billing");
  EXPECT_EQ(g["stream"], "order-1");
  EXPECT_EQ(g["group"], "billing");
  EXPECT_EQ(g["strategy"], "DispatchToSingle");
  EXPECT_EQ(g["status"], "NotReady");
  EXPECT_EQ(g["checkpoint"], 0);
  EXPECT_EQ(g["source_end"], 10);
  EXPECT_EQ(g["consumers"], 0);
  EXPECT_EQ(g["lag_events"], 10);
  EXPECT_EQ(g["lag_exact"], true);

  // A consumer takes all ten and acknowledges three: seven to go.
  auto consumer = subs_->Connect("order-1", "billing", {.buffer_size = 10, .name = "worker-a"});
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  std::vector<Uuid> ids;
  while (ids.size() < 10 && (*consumer)->Next(5s)) ids.push_back((*consumer)->event().event.id);
  ASSERT_EQ(ids.size(), 10u);
  ASSERT_TRUE((*consumer)->Ack({ids.data(), 3}).ok());
  consumers_.push_back(std::move(consumer).value());
  g = WaitFor("/subscriptions/order-1/billing", [](const json& b) { return b["in_flight"] == 7; });
  EXPECT_EQ(g["lag_events"], 7);
  EXPECT_EQ(g["consumers"], 1);
  EXPECT_EQ(g["delivered"], 10);
  ASSERT_EQ(g["connections"].size(), 1u);
  EXPECT_EQ(g["connections"][0]["name"], "worker-a");
  EXPECT_EQ(g["connections"][0]["in_flight"], 7);
  EXPECT_EQ(g["connections"][0]["available_slots"], 3);

  json all = Get("/subscriptions");
  const json* listed = Find(all["persistent"], "group", "billing");
  ASSERT_NE(listed, nullptr) << all.dump();
  EXPECT_EQ((*listed)["lag_events"], 7);
  EXPECT_EQ((*listed)["consumers"], 1);
  EXPECT_FALSE(listed->contains("connections"));
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("cairn_persistent_subscription_lag_events{stream=\"order-1\",group=\"billing\"} 7\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("cairn_persistent_subscription_in_flight{stream=\"order-1\",group=\"billing\"} 7\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("cairn_persistent_subscription_consumers{stream=\"order-1\",group=\"billing\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("cairn_persistent_subscription_groups 1\n"), std::string::npos);

  // The rest acknowledged: no lag; five new events: five again.
  ASSERT_TRUE(consumers_[0]->Ack({ids.data() + 3, 7}).ok());
  g = WaitFor("/subscriptions/order-1/billing", [](const json& b) { return b["in_flight"] == 0; });
  EXPECT_EQ(g["lag_events"], 0);
  Append("order-1", 5);
  g = WaitFor("/subscriptions/order-1/billing", [](const json& b) { return b["source_end"] == 15; });
  EXPECT_EQ(g["lag_events"], 5);
}

TEST_F(SubscriptionsTest, AllGroupLagCountsTheEventsItsFilterLetsThrough) {
  Append("order-1", 4);
  Append("quote-1", 3);
  Append("order-2", 2);
  PersistentSubscriptionSettings settings;
  settings.start_from = PersistentStart::Start();
  settings.filter.stream_prefixes = {"order-"};
  ASSERT_TRUE(subs_->Create(std::string(kAllStreamName), "audit", settings).ok());
  PersistentSubscriptionSettings from_end;
  ASSERT_TRUE(subs_->Create("quote-1", "late", from_end).ok());  // start_from defaults to the end
  StartServer();

  json g = Get("/subscriptions/%24all/audit");
  EXPECT_EQ(g["stream"], "$all");
  EXPECT_EQ(g["lag_events"], 6);  // the order- events, not the quote- ones
  EXPECT_EQ(g["lag_exact"], true);
  EXPECT_EQ(g["source_end"], store_->HeadPosition().value());
  EXPECT_EQ(Get("/subscriptions/quote-1/late")["lag_events"], 0);
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("cairn_persistent_subscription_lag_events{stream=\"$all\",group=\"audit\"} 6\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("cairn_persistent_subscription_lag_events{stream=\"quote-1\",group=\"late\"} 0\n"),
            std::string::npos);
}

TEST_F(SubscriptionsTest, GroupsAreCreatedAndDeletedAndBadInputIsNamed) {
  Append("order-1", 3);
  StartServer();
  auto put = [&](const std::string& path, const std::string& body) {
    return client_->Put(path.c_str(), body, "application/json");
  };
  auto r = put("/subscriptions/order-1/shipping", R"({"start_from":"start","consumer_strategy":"Pinned"})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  json created = json::parse(r->body);
  EXPECT_EQ(created["strategy"], "Pinned");
  EXPECT_EQ(created["lag_events"], 3);
  EXPECT_EQ(subs_->GetInfo("order-1", "shipping")->settings.consumer_strategy, ConsumerStrategy::kPinned);

  r = put("/subscriptions/order-1/shipping", "");
  EXPECT_EQ(r->status, 409) << r->body;
  EXPECT_NE(r->body.find("persistent subscription group shipping on order-1 exists"), std::string::npos) << r->body;

  struct Bad {
    std::string body, names;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"{not json", "body: not valid JSON"},
           {"[1]", "body: must be an object"},
           {R"({"start_from":"middle"})", "start_from: \"middle\" is not \"start\", \"end\" or a version"},
           {R"({"consumer_strategy":"Random"})", "consumer_strategy: \"Random\" is not one of"},
           {R"({"max_retry_count":"ten"})", "max_retry_count: must be an integer"},
           {R"({"max_retry_count":-1})", "max_retry_count"},
           {R"({"colour":"blue"})", "colour: unknown setting (known: start_from,"},
       }) {
    r = put("/subscriptions/order-1/other", bad.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad.body << ": " << r->body;
    const std::string message = json::parse(r->body).value("message", "");
    EXPECT_NE(message.find(bad.names), std::string::npos) << bad.body << ": " << r->body;
  }
  EXPECT_EQ(subs_->GetInfo("order-1", "other").status().code(), StatusCode::kNotFound);

  // Unknown groups and malformed paths.
  json missing = Get("/subscriptions/order-1/nobody", 404);
  EXPECT_EQ(missing["error"], "NotFound");
  EXPECT_NE(missing["message"].get<std::string>().find("persistent subscription group nobody on order-1 does not exist"),
            std::string::npos)
      << missing.dump();
  EXPECT_EQ(client_->Delete("/subscriptions/order-1/nobody")->status, 404);
  json no_group = Get("/subscriptions/order-1", 404);
  EXPECT_NE(no_group["message"].get<std::string>().find("want /subscriptions/{stream}/{group}"), std::string::npos)
      << no_group.dump();
  EXPECT_EQ(Get("/subscriptions/order-1/a/b", 404)["error"], "NotFound");
  json bad_escape = Get("/subscriptions/order-1/%zz", 400);
  EXPECT_NE(bad_escape["message"].get<std::string>().find("group:"), std::string::npos) << bad_escape.dump();
  const std::string long_group(kMaxGroupNameBytes + 1, 'g');
  r = put("/subscriptions/order-1/" + long_group, "");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find(fmt::format("group: {} bytes, the limit is {}", long_group.size(), kMaxGroupNameBytes)),
            std::string::npos)
      << r->body;

  r = client_->Delete("/subscriptions/order-1/shipping");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  Get("/subscriptions/order-1/shipping", 404);
  EXPECT_EQ(Get("/subscriptions")["persistent"].size(), 0u);
}

TEST_F(SubscriptionsTest, ProjectionsShowPositionReachingTheHeadAndAFailureWithItsReason) {
  Append("order-1", 1);
  Append("order-2", 1);
  Append("quote-1", 1, "QuoteMade");
  ProjectionConfig good;
  good.spec = Write("good.json", kSpec);
  good.sink = "sqlite:" + dir_.Sub("good.db");
  ProjectionConfig bad;
  bad.spec = Write("bad.json", kFailingSpec);
  bad.sink = dir_.Sub("bad.db");
  auto host = ProjectionHost::Start(*store_, {good, bad});
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  host_ = std::move(host).value();
  StartServer();

  auto settled = [](const json& b) {
    const json* g = Find(b["projections"], "name", "order_totals");
    const json* f = Find(b["projections"], "name", "broken_totals");
    return g != nullptr && f != nullptr && (*g)["state"] == "live" && (*g)["position"] == b["head_position"] &&
           (*f)["state"] == "failed";
  };
  json s = WaitFor("/subscriptions", settled);
  ASSERT_EQ(s["projections"].size(), 2u);
  const json& g = s["projections"][0];
  EXPECT_EQ(g["name"], "order_totals");
  EXPECT_EQ(g["spec"], good.spec);
  EXPECT_EQ(g["sink"], good.sink);
  EXPECT_EQ(g["events_handled"], 2);
  EXPECT_EQ(g["lag_events"], 0);
  EXPECT_EQ(g["error"], nullptr);
  const json& f = s["projections"][1];
  EXPECT_EQ(f["state"], "failed");
  EXPECT_NE(f["error"].get<std::string>().find("no such table: no_such_table"), std::string::npos) << f.dump();
  EXPECT_EQ(f["events_handled"], 0);

  // A new event: the position moves to the new head, the handled count follows.
  Append("order-3", 1);
  s = WaitFor("/subscriptions", [&](const json& b) {
    const json* p = Find(b["projections"], "name", "order_totals");
    return p != nullptr && (*p)["events_handled"] == 3 && (*p)["position"] == b["head_position"];
  });
  json stats = Get("/stats");
  EXPECT_EQ(stats["projections"], 2);
  EXPECT_EQ(stats["projections_failed"], 1);
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find(fmt::format("cairn_projection_position{{name=\"order_totals\"}} {}\n",
                                     store_->HeadPosition().value())),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("cairn_projection_lag_events{name=\"order_totals\"} 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("cairn_projection_events_handled_total{name=\"order_totals\"} 3\n"), std::string::npos);
  EXPECT_NE(metrics.find("cairn_projection_failed{name=\"broken_totals\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("cairn_projection_failed{name=\"order_totals\"} 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("cairn_projections{state=\"failed\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("cairn_projections{state=\"live\"} 1\n"), std::string::npos);
}

// A monitoring user in a group of [security] metrics may scrape /metrics and nothing else.
TEST_F(SubscriptionsTest, AMetricsRoleMayScrapeButNotOperate) {
  auth::SecurityOptions so;
  so.enabled = true;
  so.kdf_log2_n = 10;
  so.initial_admin_password = "admin-secret";
  so.policy.metrics = {"monitoring"};
  auto security = auth::Security::Open(store_.get(), so);
  ASSERT_TRUE(security.ok()) << security.status().ToString();
  ASSERT_TRUE((*security)->CreateUser("prometheus", "scrape-secret", {"monitoring"}).ok());
  ASSERT_TRUE((*security)->CreateUser("bob", "bob-secret-pw", {}).ok());
  HttpOptions options;
  options.authorizer = SecurityAuthorizer(security->get());
  StartServer(options);
  auto as = [&](const std::string& user, const std::string& password) {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    if (!user.empty()) c->set_basic_auth(user.c_str(), password.c_str());
    return c;
  };
  auto prometheus = as("prometheus", "scrape-secret");
  auto bob = as("bob", "bob-secret-pw");
  auto anonymous = as("", "");
  auto admin = as("admin", "admin-secret");

  auto r = prometheus->Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("cairn_persistent_subscription_groups 0\n"), std::string::npos) << r->body;
  EXPECT_EQ(prometheus->Get("/subscriptions")->status, 403);
  EXPECT_EQ(prometheus->Get("/stats")->status, 403);
  EXPECT_EQ(prometheus->Put("/subscriptions/s/g", "", "application/json")->status, 403);
  EXPECT_EQ(prometheus->Get("/streams/%24all")->status, 403);
  r = bob->Get("/metrics");
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("access denied: user bob may not scrape the server's metrics"), std::string::npos) << r->body;
  EXPECT_EQ(anonymous->Get("/metrics")->status, 401);
  EXPECT_EQ(admin->Get("/metrics")->status, 200);
  EXPECT_EQ(admin->Get("/subscriptions")->status, 200);
  EXPECT_EQ(admin->Put("/subscriptions/s/g", "", "application/json")->status, 201);
}

TEST_F(SubscriptionsTest, WithoutPersistentSubscriptionsTheListIsEmptyAndGroupsAre501) {
  HttpOptions options;
  options.address = "127.0.0.1:0";
  auto server = HttpServer::Start(store_.get(), options);  // no options.persistent
  ASSERT_TRUE(server.ok());
  server_ = std::move(server).value();
  client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  json s = Get("/subscriptions");
  EXPECT_EQ(s["persistent"], json::array());
  EXPECT_EQ(s["projections"], json::array());
  json r = Get("/subscriptions/order-1/billing", 501);
  EXPECT_NE(r["message"].get<std::string>().find("this server does not serve them"), std::string::npos);
}

// Wired as `cairn serve` wires it: the gRPC server's own consumer groups and its count of catch-up
// subscriptions, seen over HTTP while a real gRPC subscription runs.
TEST(ServeWiringTest, GroupsOfTheGrpcServerAndItsLiveSubscriptionsShowOverHttp) {
  auto store = std::move(Store::Open("memory:")).value();
  ServerOptions grpc_options;
  grpc_options.grpc_address = "127.0.0.1:0";
  auto grpc_server = Server::Start(store.get(), grpc_options);
  ASSERT_TRUE(grpc_server.ok()) << grpc_server.status().ToString();
  HttpOptions options;
  options.address = "127.0.0.1:0";
  options.persistent = (*grpc_server)->persistent_subscriptions();
  Server* raw = grpc_server->get();
  options.grpc_subscriptions = [raw] { return raw->live_subscriptions(); };
  auto http = HttpServer::Start(store.get(), options);
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  httplib::Client client("127.0.0.1", (*http)->port());

  EventData e;
  e.type = "Happened";
  e.data = "{}";
  ASSERT_TRUE(store->Append("wired-1", ExpectedVersion::Any(), {&e, 1}).ok());
  auto r = client.Put("/subscriptions/wired-1/g", R"({"start_from":"start"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_TRUE((*grpc_server)->persistent_subscriptions()->GetInfo("wired-1", "g").ok());

  namespace pb = event_store::client::streams;
  auto stub = pb::Streams::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string((*grpc_server)->grpc_port()),
                                                       grpc::InsecureChannelCredentials()));
  pb::ReadReq read;
  read.mutable_options()->mutable_stream()->mutable_stream_identifier()->set_stream_name("wired-1");
  read.mutable_options()->mutable_stream()->mutable_start();
  read.mutable_options()->mutable_subscription();
  grpc::ClientContext context;
  auto reader = stub->Read(&context, read);
  pb::ReadResp resp;
  ASSERT_TRUE(reader->Read(&resp));  // the confirmation: the subscription runs

  r = client.Get("/subscriptions");
  ASSERT_TRUE(r);
  json body = json::parse(r->body);
  EXPECT_EQ(body["grpc"]["streams"], 1);
  EXPECT_EQ(body["grpc"]["all"], 0);
  ASSERT_EQ(body["persistent"].size(), 1u);
  EXPECT_EQ(body["persistent"][0]["group"], "g");
  EXPECT_EQ(body["persistent"][0]["lag_events"], 1);
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("cairn_subscriptions{kind=\"grpc-stream\"} 1\n"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("cairn_subscriptions{kind=\"grpc-all\"} 0\n"), std::string::npos);
  EXPECT_EQ(json::parse(client.Get("/stats")->body)["grpc_subscriptions"], 1);

  context.TryCancel();
  while (reader->Read(&resp)) {
  }
  (void)reader->Finish();
  (*http)->Shutdown();
  (*grpc_server)->Shutdown();
}

}  // namespace
}  // namespace cairn::server::http

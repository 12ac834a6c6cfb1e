// Proves the PersistentSubscriptions service's protocol edges: the errors and trailers the
// official clients read (exists, does not exist, maximum subscribers), bad settings naming the
// field, the deprecated stream form of Create, a Read without options, the features list, a
// delivery with its retry count, consumers dropped (with the protocol's "dropped" status) when
// their group is updated or deleted or the server stops, and who may do what with
// authentication on, over a real
// loopback gRPC channel. How: an in-process server on a
// memory store and generated stubs.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <set>
#include <string>
#include <thread>

#include "auth/security.h"
#include "cairn/store.h"
#include "esdb/persistent.grpc.pb.h"
#include "esdb/serverfeatures.grpc.pb.h"
#include "server/server.h"
#include "loopback_server.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::persistent_subscriptions;

using testing::Trailer;

class PersistentServiceTest : public testing::LoopbackServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoopbackServerTest::SetUp());
    auto channel = Channel();
    stub_ = pb::PersistentSubscriptions::NewStub(channel);
    features_ = event_store::client::server_features::ServerFeatures::NewStub(channel);
  }

  // The deprecated form the Node clients send: the stream in options, the start in revision.
  static pb::CreateReq Create(const std::string& stream, const std::string& group, uint64_t revision) {
    pb::CreateReq req;
    auto* o = req.mutable_options();
    o->mutable_stream_identifier()->set_stream_name(stream);
    o->set_group_name(group);
    auto* s = o->mutable_settings();
    s->set_revision(revision);
    s->set_max_retry_count(10);
    s->set_min_checkpoint_count(10);
    s->set_max_checkpoint_count(1000);
    s->set_live_buffer_size(500);
    s->set_read_batch_size(20);
    s->set_history_buffer_size(500);
    s->set_message_timeout_ms(30000);
    s->set_checkpoint_after_ms(2000);
    s->set_named_consumer_strategy(pb::CreateReq::RoundRobin);
    return req;
  }

  grpc::Status Call(const pb::CreateReq& req, grpc::ClientContext* context) {
    pb::CreateResp resp;
    return stub_->Create(context, req, &resp);
  }

  std::unique_ptr<pb::PersistentSubscriptions::Stub> stub_;
  std::unique_ptr<event_store::client::server_features::ServerFeatures::Stub> features_;
};

TEST_F(PersistentServiceTest, DuplicateCreateSaysExistsWithTrailers) {
  grpc::ClientContext first;
  ASSERT_TRUE(Call(Create("orders", "g", 0), &first).ok());
  grpc::ClientContext second;
  grpc::Status s = Call(Create("orders", "g", 0), &second);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Trailer(second, "exception"), "persistent-subscription-exists");
  EXPECT_EQ(Trailer(second, "stream-name"), "orders");
  EXPECT_EQ(Trailer(second, "group-name"), "g");
}

TEST_F(PersistentServiceTest, UnknownGroupSaysDoesNotExist) {
  pb::GetInfoReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("orders");
  req.mutable_options()->set_group_name("nope");
  pb::GetInfoResp resp;
  grpc::ClientContext context;
  grpc::Status s = stub_->GetInfo(&context, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Trailer(context, "exception"), "persistent-subscription-does-not-exist");

  // Read: the same error after the options.
  grpc::ClientContext read_context;
  auto stream = stub_->Read(&read_context);
  pb::ReadReq options;
  options.mutable_options()->mutable_all();
  options.mutable_options()->set_group_name("nope");
  ASSERT_TRUE(stream->Write(options));
  pb::ReadResp resp2;
  EXPECT_FALSE(stream->Read(&resp2));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Trailer(read_context, "exception"), "persistent-subscription-does-not-exist");
}

TEST_F(PersistentServiceTest, BadSettingNamesTheFieldAndTheLimit) {
  pb::CreateReq req = Create("orders", "g", 0);
  req.mutable_options()->mutable_settings()->set_live_buffer_size(0);
  grpc::ClientContext context;
  grpc::Status s = Call(req, &context);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("live_buffer_size: 0 is outside 1..100000"), std::string::npos) << s.error_message();

  req = Create("orders", "g", 0);
  req.mutable_options()->mutable_settings()->set_consumer_strategy("Random");
  grpc::ClientContext context2;
  s = Call(req, &context2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("consumer_strategy"), std::string::npos) << s.error_message();
}

TEST_F(PersistentServiceTest, ReadWithoutOptionsFirstIsInvalidArgument) {
  grpc::ClientContext context;
  auto stream = stub_->Read(&context);
  pb::ReadReq ack;
  ack.mutable_ack();
  ASSERT_TRUE(stream->Write(ack));
  stream->WritesDone();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(PersistentServiceTest, MaximumSubscribersReached) {
  pb::CreateReq req = Create("orders", "g", 0);
  req.mutable_options()->mutable_settings()->set_max_subscriber_count(1);
  grpc::ClientContext create;
  ASSERT_TRUE(Call(req, &create).ok());
  pb::ReadReq options;
  options.mutable_options()->mutable_stream_identifier()->set_stream_name("orders");
  options.mutable_options()->set_group_name("g");
  options.mutable_options()->set_buffer_size(1);
  grpc::ClientContext c1;
  auto s1 = stub_->Read(&c1);
  ASSERT_TRUE(s1->Write(options));
  pb::ReadResp resp;
  ASSERT_TRUE(s1->Read(&resp));
  EXPECT_TRUE(resp.has_subscription_confirmation());
  grpc::ClientContext c2;
  auto s2 = stub_->Read(&c2);
  ASSERT_TRUE(s2->Write(options));
  EXPECT_FALSE(s2->Read(&resp));
  EXPECT_EQ(s2->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Trailer(c2, "exception"), "maximum-subscribers-reached");
  c1.TryCancel();
  (void)s1->Finish();
}

TEST_F(PersistentServiceTest, EventsCarryTheirRetryCountAndNackRedelivers) {
  EventData e;
  e.type = "Job";
  e.data = "{}";
  ASSERT_TRUE(store_->Append("jobs", ExpectedVersion::Any(), {&e, 1}).ok());
  grpc::ClientContext create;
  ASSERT_TRUE(Call(Create("jobs", "g", 0), &create).ok());

  grpc::ClientContext context;
  auto stream = stub_->Read(&context);
  pb::ReadReq options;
  options.mutable_options()->mutable_stream_identifier()->set_stream_name("jobs");
  options.mutable_options()->set_group_name("g");
  options.mutable_options()->set_buffer_size(5);
  options.mutable_options()->mutable_uuid_option()->mutable_string();
  ASSERT_TRUE(stream->Write(options));
  pb::ReadResp resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_subscription_confirmation());
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_event());
  EXPECT_EQ(resp.event().retry_count(), 0);
  EXPECT_EQ(resp.event().event().metadata().at("type"), "Job");
  pb::ReadReq nack;
  *nack.mutable_nack()->add_ids() = resp.event().event().id();
  nack.mutable_nack()->set_action(pb::ReadReq::Nack::Retry);
  ASSERT_TRUE(stream->Write(nack));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_event());
  EXPECT_EQ(resp.event().retry_count(), 1);
  context.TryCancel();
  (void)stream->Finish();
}

// Opens a Read on `group` of `stream` and waits for the confirmation.
std::unique_ptr<grpc::ClientReaderWriter<pb::ReadReq, pb::ReadResp>> OpenRead(pb::PersistentSubscriptions::Stub& stub,
                                                                             grpc::ClientContext* context,
                                                                             const std::string& stream,
                                                                             const std::string& group) {
  auto call = stub.Read(context);
  pb::ReadReq options;
  options.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  options.mutable_options()->set_group_name(group);
  options.mutable_options()->set_buffer_size(5);
  EXPECT_TRUE(call->Write(options));
  pb::ReadResp resp;
  EXPECT_TRUE(call->Read(&resp));
  EXPECT_TRUE(resp.has_subscription_confirmation());
  return call;
}

// What a consumer the server cut off must see: the protocol's "dropped" status and trailers,
// which the official clients turn into PersistentSubscriptionDroppedError.
void ExpectDropped(grpc::ClientReaderWriter<pb::ReadReq, pb::ReadResp>& call, const grpc::ClientContext& context,
                   const std::string& stream, const std::string& group) {
  pb::ReadResp resp;
  while (call.Read(&resp)) {
  }
  const grpc::Status s = call.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
  EXPECT_NE(s.error_message().find("was dropped"), std::string::npos) << s.error_message();
  EXPECT_EQ(Trailer(context, "exception"), "persistent-subscription-dropped");
  EXPECT_EQ(Trailer(context, "stream-name"), stream);
  EXPECT_EQ(Trailer(context, "group-name"), group);
}

TEST_F(PersistentServiceTest, UpdatedOrDeletedGroupDropsItsConsumers) {
  grpc::ClientContext c1, c2;
  ASSERT_TRUE(Call(Create("orders", "u", 0), &c1).ok());
  ASSERT_TRUE(Call(Create("orders", "d", 0), &c2).ok());
  grpc::ClientContext read_u, read_d;
  auto u = OpenRead(*stub_, &read_u, "orders", "u");
  auto d = OpenRead(*stub_, &read_d, "orders", "d");

  pb::UpdateReq update;
  update.mutable_options()->mutable_stream_identifier()->set_stream_name("orders");
  update.mutable_options()->set_group_name("u");
  auto* us = update.mutable_options()->mutable_settings();
  us->set_max_retry_count(3);
  us->set_min_checkpoint_count(10);
  us->set_max_checkpoint_count(1000);
  us->set_live_buffer_size(500);
  us->set_read_batch_size(20);
  us->set_history_buffer_size(500);
  us->set_message_timeout_ms(30000);
  us->set_checkpoint_after_ms(2000);
  pb::UpdateResp update_resp;
  grpc::ClientContext update_context;
  ASSERT_TRUE(stub_->Update(&update_context, update, &update_resp).ok());
  ExpectDropped(*u, read_u, "orders", "u");

  pb::DeleteReq del;
  del.mutable_options()->mutable_stream_identifier()->set_stream_name("orders");
  del.mutable_options()->set_group_name("d");
  pb::DeleteResp del_resp;
  grpc::ClientContext del_context;
  ASSERT_TRUE(stub_->Delete(&del_context, del, &del_resp).ok());
  ExpectDropped(*d, read_d, "orders", "d");
}

TEST_F(PersistentServiceTest, ServerShutdownDropsConsumers) {
  grpc::ClientContext create;
  ASSERT_TRUE(Call(Create("orders", "g", 0), &create).ok());
  grpc::ClientContext read;
  auto call = OpenRead(*stub_, &read, "orders", "g");
  std::thread stop([&] { server_->Shutdown(); });
  ExpectDropped(*call, read, "orders", "g");
  stop.join();
}

TEST_F(PersistentServiceTest, ClientHalfCloseEndsTheCallCleanly) {
  grpc::ClientContext create;
  ASSERT_TRUE(Call(Create("orders", "g", 0), &create).ok());
  grpc::ClientContext read;
  auto call = OpenRead(*stub_, &read, "orders", "g");
  ASSERT_TRUE(call->WritesDone());
  pb::ReadResp resp;
  while (call->Read(&resp)) {
  }
  EXPECT_TRUE(call->Finish().ok());
  // The consumer left the group.
  pb::GetInfoReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("orders");
  req.mutable_options()->set_group_name("g");
  pb::GetInfoResp info;
  grpc::ClientContext info_context;
  ASSERT_TRUE(stub_->GetInfo(&info_context, req, &info).ok());
  EXPECT_EQ(info.subscription_info().connections_size(), 0);
}

TEST_F(PersistentServiceTest, FeaturesListTheMethodsForStreamsAndAll) {
  event_store::client::server_features::SupportedMethods methods;
  grpc::ClientContext context;
  ASSERT_TRUE(features_->GetSupportedMethods(&context, {}, &methods).ok());
  std::set<std::string> with_features;
  for (const auto& m : methods.methods()) {
    if (m.service_name() != "event_store.client.persistent_subscriptions.persistentsubscriptions") continue;
    std::set<std::string> f(m.features().begin(), m.features().end());
    if (f.contains("stream") && f.contains("all")) with_features.insert(m.method_name());
  }
  EXPECT_EQ(with_features, (std::set<std::string>{"create", "update", "delete", "read", "getinfo", "replayparked", "list"}));
}


// Managing groups is for $admins; consuming one needs read access to its source.
TEST(PersistentServiceAuthTest, ManagingIsForAdminsAndReadingNeedsReadAccess) {
  auto store = std::move(Store::Open("memory:")).value();
  auth::SecurityOptions so;
  so.enabled = true;
  so.kdf_log2_n = 10;
  so.initial_admin_password = "admin-password";
  auth::AclRule jobs;
  jobs.prefix = "jobs";
  jobs.read = {"workers"};
  so.policy.rules = {jobs};
  auto security = std::move(auth::Security::Open(store.get(), so)).value();
  ASSERT_TRUE(security->CreateUser("worker", "worker-password", {"workers"}).ok());
  ServerOptions options;
  options.grpc_address = "127.0.0.1:0";
  options.security = security.get();
  options.shutdown_grace = std::chrono::milliseconds(1000);
  auto server = std::move(Server::Start(store.get(), options)).value();
  auto stub = pb::PersistentSubscriptions::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server->grpc_port()), grpc::InsecureChannelCredentials()));

  auto create = [&](const std::string& who, const std::string& password) {
    pb::CreateReq req;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("jobs");
    req.mutable_options()->set_group_name("g");
    auto* st = req.mutable_options()->mutable_settings();
    st->set_max_checkpoint_count(10);
    st->set_live_buffer_size(10);
    st->set_history_buffer_size(10);
    st->set_read_batch_size(5);
    grpc::ClientContext context;
    if (!who.empty()) context.AddMetadata("authorization", auth::BasicCredentials(who, password));
    pb::CreateResp resp;
    return stub->Create(&context, req, &resp).error_code();
  };
  EXPECT_EQ(create("", ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(create("worker", "wrong-password"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(create("worker", "worker-password"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(create("admin", "admin-password"), grpc::StatusCode::OK);

  auto read = [&](const std::string& stream, const std::string& who, const std::string& password) {
    grpc::ClientContext context;
    if (!who.empty()) context.AddMetadata("authorization", auth::BasicCredentials(who, password));
    auto call = stub->Read(&context);
    pb::ReadReq o;
    if (stream == "$all") {
      o.mutable_options()->mutable_all();
    } else {
      o.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    }
    o.mutable_options()->set_group_name("g");
    call->Write(o);
    pb::ReadResp resp;
    if (call->Read(&resp) && resp.has_subscription_confirmation()) {
      context.TryCancel();
      (void)call->Finish();
      return grpc::StatusCode::OK;
    }
    return call->Finish().error_code();
  };
  EXPECT_EQ(read("jobs", "", ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(read("jobs", "worker", "worker-password"), grpc::StatusCode::OK);
  EXPECT_EQ(read("$all", "worker", "worker-password"), grpc::StatusCode::PERMISSION_DENIED);

  // A connected consumer is shown with its user.
  grpc::ClientContext worker;
  worker.AddMetadata("authorization", auth::BasicCredentials("worker", "worker-password"));
  auto call = stub->Read(&worker);
  pb::ReadReq o;
  o.mutable_options()->mutable_stream_identifier()->set_stream_name("jobs");
  o.mutable_options()->set_group_name("g");
  ASSERT_TRUE(call->Write(o));
  pb::ReadResp confirmation;
  ASSERT_TRUE(call->Read(&confirmation));
  pb::GetInfoReq info_req;
  info_req.mutable_options()->mutable_stream_identifier()->set_stream_name("jobs");
  info_req.mutable_options()->set_group_name("g");
  pb::GetInfoResp info;
  grpc::ClientContext admin;
  admin.AddMetadata("authorization", auth::BasicCredentials("admin", "admin-password"));
  ASSERT_TRUE(stub->GetInfo(&admin, info_req, &info).ok());
  ASSERT_EQ(info.subscription_info().connections_size(), 1);
  EXPECT_EQ(info.subscription_info().connections(0).username(), "worker");
  worker.TryCancel();
  (void)call->Finish();
  server->Shutdown();
}

}  // namespace
}  // namespace cairn::server

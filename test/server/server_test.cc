// Proves the server's protocol edges that the official clients do not reach: malformed requests,
// error trailers, id forms, filter checkpoints, the loopback rule and graceful shutdown.
// How: a real Server on a memory store and a loopback port, driven by gRPC stubs generated from
// our .proto files.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "cairn/store.h"
#include "esdb/gossip.grpc.pb.h"
#include "esdb/serverfeatures.grpc.pb.h"
#include "esdb/streams.grpc.pb.h"
#include "server/config.h"
#include "server/server.h"
#include "loopback_server.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;
using ReadOptions = pb::ReadReq::Options;

std::multimap<std::string, std::string> Trailers(const grpc::ClientContext& context) {
  std::multimap<std::string, std::string> out;
  for (const auto& [k, v] : context.GetServerTrailingMetadata()) {
    out.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  return out;
}

std::string Trailer(const grpc::ClientContext& context, const std::string& key) {
  auto t = Trailers(context);
  auto it = t.find(key);
  return it == t.end() ? "" : it->second;
}

pb::AppendReq Options(const std::string& stream) {
  pb::AppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->mutable_any();
  return req;
}

pb::AppendReq Message(const std::string& type, const std::string& data) {
  pb::AppendReq req;
  auto* m = req.mutable_proposed_message();
  (*m->mutable_metadata())["type"] = type;
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data(data);
  return req;
}

class ServerTest : public testing::LoopbackServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoopbackServerTest::SetUp());
    auto channel = Channel();
    streams_ = pb::Streams::NewStub(channel);
    features_ = event_store::client::server_features::ServerFeatures::NewStub(channel);
    gossip_ = event_store::client::gossip::Gossip::NewStub(channel);
  }

  // Appends `messages` after the options; returns the status and fills `response`.
  grpc::Status Append(const std::vector<pb::AppendReq>& messages, pb::AppendResp* response,
                      grpc::ClientContext* context) {
    auto writer = streams_->Append(context, response);
    for (const auto& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  void AppendOk(const std::string& stream, int count, const std::string& type = "Happened") {
    std::vector<pb::AppendReq> messages{Options(stream)};
    for (int i = 0; i < count; ++i) messages.push_back(Message(type, "{\"i\":" + std::to_string(i) + "}"));
    pb::AppendResp response;
    grpc::ClientContext context;
    ASSERT_TRUE(Append(messages, &response, &context).ok());
    ASSERT_TRUE(response.has_success());
  }

  std::unique_ptr<pb::Streams::Stub> streams_;
  std::unique_ptr<event_store::client::server_features::ServerFeatures::Stub> features_;
  std::unique_ptr<event_store::client::gossip::Gossip::Stub> gossip_;
};

TEST_F(ServerTest, AppendWithoutOptionsFirstIsInvalidArgument) {
  pb::AppendResp response;
  grpc::ClientContext context;
  grpc::Status s = Append({Message("A", "{}")}, &response, &context);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("options"), std::string::npos) << s.error_message();
}

TEST_F(ServerTest, EventWithoutTypeNamesTheMissingProperties) {
  pb::AppendReq bad;
  (*bad.mutable_proposed_message()->mutable_metadata())["content-type"] = "application/json";
  pb::AppendResp response;
  grpc::ClientContext context;
  grpc::Status s = Append({Options("s-1"), bad}, &response, &context);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Trailer(context, "exception"), "missing-required-metadata-property");
  EXPECT_EQ(Trailer(context, "required-metadata-properties"), "type,content-type");
  EXPECT_FALSE(store_->GetStreamInfo("s-1")->exists);
}

TEST_F(ServerTest, AppendToSystemStreamIsAccessDenied) {
  pb::AppendResp response;
  grpc::ClientContext context;
  grpc::Status s = Append({Options("$system"), Message("A", "{}")}, &response, &context);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Trailer(context, "exception"), "access-denied");
}

TEST_F(ServerTest, AppendOverTheSizeLimitIsRefusedAndWritesNothing) {
  std::vector<pb::AppendReq> messages{Options("big-1")};
  const std::string data(3 << 20, 'x');
  for (int i = 0; i < 6; ++i) messages.push_back(Message("Big", data));  // 18 MiB > 16 MiB
  pb::AppendResp response;
  grpc::ClientContext context;
  grpc::Status s = Append(messages, &response, &context);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Trailer(context, "exception"), "maximum-append-size-exceeded");
  EXPECT_EQ(Trailer(context, "maximum-append-size"), std::to_string(kMaxAppendBytes));
  EXPECT_FALSE(store_->GetStreamInfo("big-1")->exists);
}

TEST_F(ServerTest, AppendWrongExpectedVersionIsAnAnswerNotAnError) {
  AppendOk("order-1", 3);
  auto options = Options("order-1");
  options.mutable_options()->set_revision(0);
  pb::AppendResp response;
  grpc::ClientContext context;
  ASSERT_TRUE(Append({options, Message("A", "{}")}, &response, &context).ok());
  ASSERT_TRUE(response.has_wrong_expected_version());
  EXPECT_EQ(response.wrong_expected_version().current_revision(), 2u);
  EXPECT_EQ(response.wrong_expected_version().expected_revision(), 0u);
}

TEST_F(ServerTest, DeleteWithWrongExpectedVersionCarriesTheTrailers) {
  AppendOk("cart-1", 2);
  pb::DeleteReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("cart-1");
  req.mutable_options()->mutable_no_stream();
  pb::DeleteResp response;
  grpc::ClientContext context;
  grpc::Status s = streams_->Delete(&context, req, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Trailer(context, "exception"), "wrong-expected-version");
  EXPECT_EQ(Trailer(context, "stream-name"), "cart-1");
  EXPECT_EQ(Trailer(context, "expected-version"), "-1");
  EXPECT_EQ(Trailer(context, "actual-version"), "1");
}

TEST_F(ServerTest, ReadTombstonedStreamIsStreamDeleted) {
  AppendOk("gone-1", 1);
  pb::TombstoneReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("gone-1");
  req.mutable_options()->mutable_any();
  pb::TombstoneResp tombstone;
  grpc::ClientContext tc;
  ASSERT_TRUE(streams_->Tombstone(&tc, req, &tombstone).ok());
  EXPECT_TRUE(tombstone.has_position());

  pb::ReadReq read;
  read.mutable_options()->mutable_stream()->mutable_stream_identifier()->set_stream_name("gone-1");
  read.mutable_options()->mutable_stream()->mutable_start();
  read.mutable_options()->set_count(10);
  grpc::ClientContext context;
  auto reader = streams_->Read(&context, read);
  pb::ReadResp resp;
  EXPECT_FALSE(reader->Read(&resp));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Trailer(context, "exception"), "stream-deleted");
  EXPECT_EQ(Trailer(context, "stream-name"), "gone-1");
}

TEST_F(ServerTest, StructuredIdsRoundTrip) {
  auto message = Message("A", "{}");
  auto* id = message.mutable_proposed_message()->mutable_id()->mutable_structured();
  id->set_most_significant_bits(0x0123456789abcdefLL);
  id->set_least_significant_bits(static_cast<int64_t>(0xfedcba9876543210ULL));
  pb::AppendResp response;
  grpc::ClientContext ac;
  ASSERT_TRUE(Append({Options("ids-1"), message}, &response, &ac).ok());

  for (bool structured : {true, false}) {
    pb::ReadReq read;
    read.mutable_options()->mutable_stream()->mutable_stream_identifier()->set_stream_name("ids-1");
    read.mutable_options()->mutable_stream()->mutable_start();
    read.mutable_options()->set_count(1);
    if (structured) {
      read.mutable_options()->mutable_uuid_option()->mutable_structured();
    } else {
      read.mutable_options()->mutable_uuid_option()->mutable_string();
    }
    grpc::ClientContext context;
    auto reader = streams_->Read(&context, read);
    pb::ReadResp resp;
    ASSERT_TRUE(reader->Read(&resp));
    const auto& got = resp.event().event().id();
    if (structured) {
      EXPECT_EQ(got.structured().most_significant_bits(), 0x0123456789abcdefLL);
      EXPECT_EQ(static_cast<uint64_t>(got.structured().least_significant_bits()), 0xfedcba9876543210ULL);
    } else {
      EXPECT_EQ(got.string(), "01234567-89ab-cdef-fedc-ba9876543210");
    }
    EXPECT_EQ(resp.event().event().metadata().at("type"), "A");
    EXPECT_EQ(resp.event().event().metadata().at("content-type"), "application/json");
    EXPECT_FALSE(reader->Read(&resp));
    EXPECT_TRUE(reader->Finish().ok());
  }
}

TEST_F(ServerTest, BadFilterRegexNamesTheField) {
  pb::ReadReq read;
  read.mutable_options()->mutable_all()->mutable_start();
  read.mutable_options()->set_count(10);
  read.mutable_options()->mutable_filter()->mutable_stream_identifier()->set_regex("(unclosed");
  grpc::ClientContext context;
  auto reader = streams_->Read(&context, read);
  pb::ReadResp resp;
  EXPECT_FALSE(reader->Read(&resp));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("filter.regex"), std::string::npos) << s.error_message();
}

TEST_F(ServerTest, RegexFilterMatchesAnywhereInTheName) {
  AppendOk("shop-order-1", 1);
  AppendOk("shop-cart-1", 1);
  AppendOk("order-2", 1);
  pb::ReadReq read;
  read.mutable_options()->mutable_all()->mutable_start();
  read.mutable_options()->set_count(100);
  read.mutable_options()->mutable_filter()->mutable_stream_identifier()->set_regex("order-[0-9]$");
  grpc::ClientContext context;
  auto reader = streams_->Read(&context, read);
  std::vector<std::string> streams;
  pb::ReadResp resp;
  while (reader->Read(&resp)) streams.push_back(resp.event().event().stream_identifier().stream_name());
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(streams, (std::vector<std::string>{"shop-order-1", "order-2"}));
}

// A filtered $all subscription reports how far it looked: checkpoints name the position of a
// skipped event, and a restart from that position (exclusive) sees the next match.
TEST_F(ServerTest, FilteredSubscriptionSendsCheckpointsAtScannedEvents) {
  AppendOk("match-1", 1);
  for (int i = 0; i < 5; ++i) AppendOk("other-" + std::to_string(i), 1);
  pb::ReadReq read;
  read.mutable_options()->mutable_all()->mutable_start();
  read.mutable_options()->mutable_subscription();
  auto* filter = read.mutable_options()->mutable_filter();
  filter->mutable_stream_identifier()->add_prefix("match-");
  filter->set_max(2);
  filter->set_checkpointintervalmultiplier(1);
  grpc::ClientContext context;
  auto reader = streams_->Read(&context, read);
  pb::ReadResp resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_TRUE(resp.has_confirmation());
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_TRUE(resp.has_event());
  EXPECT_EQ(resp.event().event().stream_identifier().stream_name(), "match-1");
  std::vector<uint64_t> checkpoints;
  for (;;) {
    ASSERT_TRUE(reader->Read(&resp));
    if (resp.has_caught_up()) break;
    ASSERT_TRUE(resp.has_checkpoint()) << resp.DebugString();
    checkpoints.push_back(resp.checkpoint().commit_position());
  }
  ASSERT_GE(checkpoints.size(), 2u);
  // The last checkpoint is the position of the last event, "other-4".
  auto last = store_->ReadAll({.direction = ReadDirection::kBackward, .from = Position::End(), .max_count = 1});
  ASSERT_TRUE(last->Next());
  EXPECT_EQ(checkpoints.back(), last->event().position.value());
  // Live: a new match arrives after the caught-up signal.
  AppendOk("match-2", 1);
  for (;;) {
    ASSERT_TRUE(reader->Read(&resp));
    if (resp.has_event()) break;
  }
  EXPECT_EQ(resp.event().event().stream_identifier().stream_name(), "match-2");
  context.TryCancel();
  pb::ReadResp rest;
  while (reader->Read(&rest)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ServerTest, ShutdownEndsLiveSubscriptionsWithUnavailable) {
  AppendOk("live-1", 1);
  pb::ReadReq read;
  read.mutable_options()->mutable_stream()->mutable_stream_identifier()->set_stream_name("live-1");
  read.mutable_options()->mutable_stream()->mutable_start();
  read.mutable_options()->mutable_subscription();
  grpc::ClientContext context;
  auto reader = streams_->Read(&context, read);
  pb::ReadResp resp;
  ASSERT_TRUE(reader->Read(&resp));  // confirmation
  ASSERT_TRUE(reader->Read(&resp));  // version 0
  ASSERT_TRUE(resp.has_event());
  ASSERT_TRUE(reader->Read(&resp));  // caught up
  ASSERT_TRUE(resp.has_caught_up());
  server_->Shutdown();
  while (reader->Read(&resp)) {
  }
  // UNAVAILABLE is the subscription ending itself; one still running at the grace deadline would
  // have been cancelled (CANCELLED) instead.
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(store_->Close().ok());
}

// The status pages count the catch-up subscriptions running: one to a stream and one to $all
// while they run, none once their clients cancel.
TEST_F(ServerTest, LiveSubscriptionsAreCountedWhileTheyRun) {
  EXPECT_EQ(server_->live_subscriptions().streams, 0u);
  EXPECT_EQ(server_->live_subscriptions().all, 0u);
  AppendOk("count-1", 1);
  pb::ReadReq stream_read;
  stream_read.mutable_options()->mutable_stream()->mutable_stream_identifier()->set_stream_name("count-1");
  stream_read.mutable_options()->mutable_stream()->mutable_start();
  stream_read.mutable_options()->mutable_subscription();
  pb::ReadReq all_read;
  all_read.mutable_options()->mutable_all()->mutable_start();
  all_read.mutable_options()->mutable_subscription();
  all_read.mutable_options()->mutable_no_filter();
  grpc::ClientContext stream_context;
  grpc::ClientContext all_context;
  auto stream_reader = streams_->Read(&stream_context, stream_read);
  auto all_reader = streams_->Read(&all_context, all_read);
  pb::ReadResp resp;
  ASSERT_TRUE(stream_reader->Read(&resp));  // confirmation: the call is running
  ASSERT_TRUE(all_reader->Read(&resp));
  EXPECT_EQ(server_->live_subscriptions().streams, 1u);
  EXPECT_EQ(server_->live_subscriptions().all, 1u);
  stream_context.TryCancel();
  all_context.TryCancel();
  while (stream_reader->Read(&resp)) {
  }
  while (all_reader->Read(&resp)) {
  }
  (void)stream_reader->Finish();
  (void)all_reader->Finish();
  // The server notices a cancel at its next poll.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((server_->live_subscriptions().streams != 0 || server_->live_subscriptions().all != 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->live_subscriptions().streams, 0u);
  EXPECT_EQ(server_->live_subscriptions().all, 0u);
}

TEST_F(ServerTest, ClientVanishingMidAppendWritesNothing) {
  {
    pb::AppendResp response;
    grpc::ClientContext context;
    auto writer = streams_->Append(&context, &response);
    ASSERT_TRUE(writer->Write(Options("half-1")));
    ASSERT_TRUE(writer->Write(Message("A", "{}")));
    context.TryCancel();
    EXPECT_FALSE(writer->Finish().ok());
  }
  // The server is still up and the half-sent append left nothing.
  AppendOk("after-1", 1);
  EXPECT_FALSE(store_->GetStreamInfo("half-1")->exists);
}

// BatchAppend: several appends on one call, each answered under its correlation id, with the
// errors the clients unpack from the answer's details.
TEST_F(ServerTest, BatchAppendAnswersEachCorrelationIdWithSuccessOrDetails) {
  AppendOk("batch-2", 2);
  grpc::ClientContext context;
  auto call = streams_->BatchAppend(&context);
  auto request = [](int n, const std::string& stream, bool final, int events, std::optional<uint64_t> expected) {
    pb::BatchAppendReq req;
    event_store::client::UUID id;
    id.set_string(fmt::format("00000000-0000-7000-8000-{:012}", n));
    *req.mutable_correlation_id() = id;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    if (expected) {
      req.mutable_options()->set_stream_position(*expected);
    } else {
      req.mutable_options()->mutable_any();
    }
    for (int i = 0; i < events; ++i) {
      auto* m = req.add_proposed_messages();
      (*m->mutable_metadata())["type"] = "Batched";
      (*m->mutable_metadata())["content-type"] = "application/json";
      m->set_data("{}");
    }
    req.set_is_final(final);
    return req;
  };
  // 1: three events in two messages; 2: wrong expected version; 3: a system stream.
  ASSERT_TRUE(call->Write(request(1, "batch-1", false, 2, std::nullopt)));
  pb::BatchAppendReq tail = request(1, "batch-1", true, 1, std::nullopt);
  tail.clear_options();
  ASSERT_TRUE(call->Write(tail));
  ASSERT_TRUE(call->Write(request(2, "batch-2", true, 1, 5)));
  ASSERT_TRUE(call->Write(request(3, "$secret", true, 1, std::nullopt)));
  call->WritesDone();
  std::vector<pb::BatchAppendResp> answers;
  pb::BatchAppendResp resp;
  while (call->Read(&resp)) answers.push_back(resp);
  ASSERT_TRUE(call->Finish().ok());
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_TRUE(answers[0].has_success());
  EXPECT_EQ(answers[0].success().current_revision(), 2u);
  EXPECT_EQ(answers[0].correlation_id().string(), "00000000-0000-7000-8000-000000000001");
  ASSERT_TRUE(answers[1].has_error());
  event_store::client::WrongExpectedVersion w;
  ASSERT_TRUE(answers[1].error().details().UnpackTo(&w));
  EXPECT_EQ(w.current_stream_revision(), 1u);
  EXPECT_EQ(w.expected_stream_position(), 5u);
  ASSERT_TRUE(answers[2].has_error());
  EXPECT_TRUE(answers[2].error().details().Is<event_store::client::AccessDenied>());
  auto events = store_->ReadStream("batch-1")->Collect();
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 3u);
  EXPECT_EQ(store_->GetStreamInfo("batch-2")->last_version, 1u);  // the refused append wrote nothing
}

// BatchAppend pipelined: a client sends several appends without waiting for answers. They commit
// in the order sent (the second's expected revision needs the first), the ones that block on the
// store (a metastream write, an empty append that checks the version) see the earlier ones
// committed and come before the later ones, and the answers come back in request order.
TEST_F(ServerTest, BatchAppendPipelinedAppendsCommitAndAnswerInOrder) {
  grpc::ClientContext context;
  auto call = streams_->BatchAppend(&context);
  auto request = [](int n, const std::string& stream, std::optional<uint64_t> expected, int events,
                    const std::string& type = "Piped", const std::string& data = "{}") {
    pb::BatchAppendReq req;
    req.mutable_correlation_id()->set_string(fmt::format("00000000-0000-7000-8000-{:012}", n));
    req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    if (expected) {
      req.mutable_options()->set_stream_position(*expected);
    } else {
      req.mutable_options()->mutable_any();
    }
    for (int i = 0; i < events; ++i) {
      auto* m = req.add_proposed_messages();
      (*m->mutable_metadata())["type"] = type;
      (*m->mutable_metadata())["content-type"] = "application/json";
      m->set_data(data);
    }
    req.set_is_final(true);
    return req;
  };
  ASSERT_TRUE(call->Write(request(1, "pipe-1", std::nullopt, 1)));                                   // rev 0
  ASSERT_TRUE(call->Write(request(2, "pipe-1", 0, 2)));                                              // rev 1, 2
  ASSERT_TRUE(call->Write(request(3, "$$pipe-1", std::nullopt, 1, "$metadata", R"({"$maxCount": 5})")));
  ASSERT_TRUE(call->Write(request(4, "pipe-1", 2, 0)));  // empty: only checks that the stream is at 2
  ASSERT_TRUE(call->Write(request(5, "pipe-1", 2, 1)));  // rev 3
  ASSERT_TRUE(call->Write(request(6, "pipe-1", 2, 1)));  // wrong expected version: it is at 3
  for (int n = 7; n <= 40; ++n) ASSERT_TRUE(call->Write(request(n, "pipe-2", n == 7 ? std::nullopt : std::optional<uint64_t>(n - 8), 1)));
  call->WritesDone();
  std::vector<pb::BatchAppendResp> answers;
  pb::BatchAppendResp resp;
  while (call->Read(&resp)) answers.push_back(resp);
  ASSERT_TRUE(call->Finish().ok());
  ASSERT_EQ(answers.size(), 40u);
  for (int n = 1; n <= 40; ++n) {
    EXPECT_EQ(answers[n - 1].correlation_id().string(), fmt::format("00000000-0000-7000-8000-{:012}", n));
    if (n != 6) {
      EXPECT_TRUE(answers[n - 1].has_success()) << n << ": " << answers[n - 1].error().message();
    }
  }
  EXPECT_EQ(answers[0].success().current_revision(), 0u);
  EXPECT_EQ(answers[1].success().current_revision(), 2u);
  EXPECT_EQ(answers[3].success().current_revision(), 2u);
  EXPECT_EQ(answers[4].success().current_revision(), 3u);
  ASSERT_TRUE(answers[5].has_error());
  event_store::client::WrongExpectedVersion w;
  ASSERT_TRUE(answers[5].error().details().UnpackTo(&w));
  EXPECT_EQ(w.current_stream_revision(), 3u);
  EXPECT_EQ(answers[39].success().current_revision(), 33u);
  auto info = store_->GetStreamInfo("pipe-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 3u);
  EXPECT_EQ(info->metadata.max_count, 5u);
  EXPECT_EQ(store_->GetStreamInfo("pipe-2")->last_version, 33u);
}

// Shutdown while a client has appends in flight on a BatchAppend call: every append the client saw
// acknowledged is in the store afterwards, and the store closes cleanly after the server.
TEST_F(ServerTest, ShutdownKeepsEveryAcknowledgedBatchAppend) {
  grpc::ClientContext context;
  auto call = streams_->BatchAppend(&context);
  std::atomic<int> acknowledged{0};
  std::thread reader([&] {
    pb::BatchAppendResp resp;
    while (call->Read(&resp)) {
      if (resp.has_success()) acknowledged++;
    }
  });
  std::thread stopper;
  for (int sent = 0; sent < 2000; ++sent) {
    pb::BatchAppendReq req;
    req.mutable_correlation_id()->set_string(fmt::format("00000000-0000-7000-8000-{:012}", sent));
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("sd-" + std::to_string(sent % 7));
    req.mutable_options()->mutable_any();
    auto* m = req.add_proposed_messages();
    (*m->mutable_metadata())["type"] = "Before";
    (*m->mutable_metadata())["content-type"] = "application/json";
    m->set_data("{}");
    req.set_is_final(true);
    if (!call->Write(req)) break;
    if (sent == 1000) stopper = std::thread([this] { server_->Shutdown(); });
  }
  call->WritesDone();
  reader.join();
  (void)call->Finish();
  stopper.join();
  uint64_t stored = 0;
  auto all = store_->ReadAll();
  ASSERT_TRUE(all.ok());
  while (all->Next()) stored++;
  ASSERT_TRUE(all->status().ok());
  EXPECT_GE(stored, static_cast<uint64_t>(acknowledged.load()));
  EXPECT_GT(acknowledged.load(), 0);
  EXPECT_TRUE(store_->Close().ok());
}

TEST_F(ServerTest, FeaturesListOnlyImplementedMethods) {
  event_store::client::server_features::SupportedMethods methods;
  grpc::ClientContext context;
  ASSERT_TRUE(features_->GetSupportedMethods(&context, {}, &methods).ok());
  std::set<std::string> names;
  for (const auto& m : methods.methods()) names.insert(m.service_name() + "/" + m.method_name());
  EXPECT_TRUE(names.contains("event_store.client.streams.streams/append"));
  EXPECT_TRUE(names.contains("event_store.client.streams.streams/read"));
  EXPECT_TRUE(names.contains("event_store.client.streams.streams/batchappend"));
  EXPECT_FALSE(methods.event_store_server_version().empty());
}

TEST_F(ServerTest, GossipReportsOneLiveLeader) {
  event_store::client::gossip::ClusterInfo info;
  grpc::ClientContext context;
  ASSERT_TRUE(gossip_->Read(&context, {}, &info).ok());
  ASSERT_EQ(info.members_size(), 1);
  EXPECT_EQ(info.members(0).state(), event_store::client::gossip::MemberInfo::Leader);
  EXPECT_TRUE(info.members(0).is_alive());
  EXPECT_EQ(info.members(0).http_end_point().port(), static_cast<uint32_t>(server_->grpc_port()));
}

TEST(ServerAddressTest, LoopbackRule) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("127.0.0.256"));
  EXPECT_FALSE(IsLoopbackHost("127.evil.com"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_TRUE(CheckListenAddress("127.0.0.1:2113", "--grpc", false).ok());
  EXPECT_TRUE(CheckListenAddress("[::1]:2113", "--grpc", false).ok());
  Status refused = CheckListenAddress("0.0.0.0:2113", "--grpc", false);
  EXPECT_TRUE(refused.IsInvalidArgument());
  EXPECT_NE(refused.message().find("--insecure"), std::string::npos);
  EXPECT_TRUE(CheckListenAddress("0.0.0.0:2113", "--grpc", true).ok());
}

TEST(ServerAddressTest, BadAddressesNameTheField) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", ":2113", "::1:2113", "[::1:2113", "h:p"}) {
    auto r = ParseHostPort(bad, "--grpc");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--grpc"), std::string::npos) << r.status().message();
  }
  auto ok = ParseHostPort("[::1]:0", "--grpc");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->host, "::1");
  EXPECT_EQ(ok->port, 0);
}

TEST(ServerAddressTest, StartRefusesNonLoopbackWithoutInsecure) {
  auto store = std::move(Store::Open("memory:")).value();
  ServerOptions options;
  options.grpc_address = "0.0.0.0:0";
  auto server = Server::Start(store.get(), options);
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(server.status().IsInvalidArgument());
}

TEST(ServerConfigTest, ReadsKnownKeysAndRejectsOthers) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& text) {
    std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return path;
  };
  auto good = LoadConfigFile(write("good.toml", "db = \"memory:\"\ngrpc = \"127.0.0.1:0\"\ninsecure = false\n"));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->db, "memory:");
  EXPECT_EQ(good->grpc, "127.0.0.1:0");
  EXPECT_EQ(good->insecure, false);
  EXPECT_FALSE(good->http.has_value());

  auto unknown = LoadConfigFile(write("unknown.toml", "grpc = \"127.0.0.1:0\"\nport = 1\n"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("line 2: unknown key port"), std::string::npos) << unknown.status().message();
  auto wrong = LoadConfigFile(write("wrong.toml", "insecure = \"yes\"\n"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("insecure must be true or false"), std::string::npos);
  auto syntax = LoadConfigFile(write("syntax.toml", "grpc = \n"));
  EXPECT_TRUE(syntax.status().IsInvalidArgument());
  EXPECT_TRUE(LoadConfigFile(dir + "/missing.toml").status().IsNotFound());
}

}  // namespace
}  // namespace cairn::server

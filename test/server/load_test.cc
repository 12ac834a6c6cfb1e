// The server under abuse: malformed request bytes, unknown fields, 1,000 idle connections, and a
// subscriber that never reads while the store grows. Each gets an error or is held back by flow
// control; the server stays up, memory stays bounded, and other clients keep being served.
// How: a real Server on a memory store and a loopback port; raw bytes through gRPC's generic
// stub; the process's resident memory from /proc/self/statm.
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "esdb/serverfeatures.grpc.pb.h"
#include "esdb/streams.grpc.pb.h"
#include "loopback_server.h"
#include "server/server.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;
using ReadOptions = pb::ReadReq::Options;

// Anonymous resident memory (heap, buffers): not the store's mapped log pages, which the page
// cache owns.
uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "RssAnon:") {
      uint64_t kib = 0;
      in >> kib;
      return kib << 10;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

pb::ReadReq SubscribeAllReq() {
  pb::ReadReq req;
  auto* o = req.mutable_options();
  o->mutable_all()->mutable_start();
  o->set_read_direction(ReadOptions::Forwards);
  o->mutable_subscription();
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_string();
  return req;
}

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cairn-load-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    store_ = std::move(Store::Open("file:" + dir_.string() + "?sync=none")).value();
    ServerOptions options;
    options.grpc_address = "127.0.0.1:0";
    options.shutdown_grace = std::chrono::milliseconds(2000);
    options.transport = testing::TransportUnderTest();
    server_ = std::move(Server::Start(store_.get(), options)).value();
    target_ = "127.0.0.1:" + std::to_string(server_->grpc_port());
    channel_ = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
    streams_ = pb::Streams::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    server_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One append of one event through the protocol; true when it succeeded.
  bool AppendOne(const std::string& stream, const std::string& data) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::AppendResp response;
    auto writer = streams_->Append(&context, &response);
    pb::AppendReq req;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    req.mutable_options()->mutable_any();
    writer->Write(req);
    req.Clear();
    auto* m = req.mutable_proposed_message();
    (*m->mutable_metadata())["type"] = "Loaded";
    (*m->mutable_metadata())["content-type"] = "application/json";
    m->set_data(data);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish().ok() && response.has_success();
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Server> server_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Streams::Stub> streams_;
};

// A unary-style call with raw request bytes through the generic stub.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&context, method, request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(LoadTest, MalformedRequestBytesAreRefusedAndTheServerStaysUp) {
  // Bytes that are no protobuf message at all: a field header promising more than there is.
  const std::string garbage = std::string("\x0a\xff\xff\xff\xff\x0f", 6) + "not a message";
  for (const char* method : {"/event_store.client.streams.Streams/Read", "/event_store.client.streams.Streams/Delete",
                             "/event_store.client.streams.Streams/Tombstone"}) {
    grpc::Status s = RawCall(channel_, method, garbage);
    EXPECT_FALSE(s.ok()) << method;
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAVAILABLE) << method << ": " << s.error_message();
  }
  EXPECT_TRUE(AppendOne("after-garbage-1", "{}"));
  EXPECT_TRUE(store_->GetStreamInfo("after-garbage-1")->exists);
}

TEST_F(LoadTest, UnknownFieldsAreIgnoredAsProtobufDefines) {
  ASSERT_TRUE(AppendOne("known-1", "{\"n\":1}"));
  pb::DeleteReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("known-1");
  req.mutable_options()->mutable_any();
  std::string bytes = req.SerializeAsString();
  // Field 1999, varint 7: a field this protocol version does not know.
  bytes += std::string("\xf8\x7c\x07", 3);
  grpc::Status s = RawCall(channel_, "/event_store.client.streams.Streams/Delete", bytes);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(store_->GetStreamInfo("known-1")->deleted);
}

// BatchAppend reads its requests' bytes itself (src/server/batch_append_wire.h): bytes that are
// no BatchAppendReq end the call with INVALID_ARGUMENT naming where they broke; unknown fields at
// any level are skipped as protobuf defines.
TEST_F(LoadTest, BatchAppendRefusesMalformedBytesAndSkipsUnknownFields) {
  const std::string method = "/event_store.client.streams.Streams/BatchAppend";
  const std::string garbage = std::string("\x0a\xff\xff\xff\xff\x0f", 6) + "not a message";
  grpc::Status s = RawCall(channel_, method, garbage);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(s.error_message(), "BatchAppendReq: malformed bytes in correlation_id");

  pb::BatchAppendReq req;
  req.mutable_correlation_id()->set_string("0190d7a8-8c3e-7b1a-9f00-000000000001");
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("unknown-fields-1");
  req.mutable_options()->mutable_any();
  auto* m = req.add_proposed_messages();
  (*m->mutable_metadata())["type"] = "Loaded";
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data("{\"n\":1}");
  req.set_is_final(true);
  req.GetReflection()->MutableUnknownFields(&req)->AddVarint(1999, 7);
  m->GetReflection()->MutableUnknownFields(m)->AddLengthDelimited(77, "later version");
  req.mutable_options()->GetReflection()->MutableUnknownFields(req.mutable_options())->AddFixed64(50, 1);
  // One request, then the client half-closes: one answer, then OK.
  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(req.SerializeAsString());
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&context, method, request, &cq);
  call->StartCall();
  call->Finish(&response, &s, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string answer_bytes;
  for (const auto& piece : slices) answer_bytes.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
  pb::BatchAppendResp answer;
  ASSERT_TRUE(answer.ParseFromString(answer_bytes));
  EXPECT_TRUE(answer.has_success()) << answer.DebugString();
  EXPECT_EQ(answer.correlation_id().string(), "0190d7a8-8c3e-7b1a-9f00-000000000001");
  auto events = store_->ReadStream("unknown-fields-1")->Collect();
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].data, "{\"n\":1}");
  EXPECT_EQ((*events)[0].type, "Loaded");
  // The server is still up for everyone.
  EXPECT_TRUE(AppendOne("after-garbage-2", "{}"));
}

TEST_F(LoadTest, AThousandIdleConnectionsDoNotStopTheServer) {
  const uint64_t before = ResidentBytes();
  std::vector<std::shared_ptr<grpc::Channel>> idle;
  for (int i = 0; i < 1000; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection each
    auto channel = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
    ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) << i;
    idle.push_back(std::move(channel));
  }
  // Served while they sit there, and they still work afterwards.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(AppendOne("busy-" + std::to_string(i), "{}"));
  for (int i = 0; i < 1000; i += 97) {
    auto stub = event_store::client::server_features::ServerFeatures::NewStub(idle[i]);
    grpc::ClientContext context;
    event_store::client::Empty empty;
    event_store::client::server_features::SupportedMethods methods;
    EXPECT_TRUE(stub->GetSupportedMethods(&context, empty, &methods).ok()) << i;
  }
  const uint64_t after = ResidentBytes();
  // Both ends of 1,000 connections live in this process; still far from unbounded.
  EXPECT_LT(after - std::min(after, before), uint64_t{512} << 20);
  std::printf("1000 idle connections: anonymous resident memory %.1f -> %.1f MiB (client and server)\n",
              static_cast<double>(before) / (1 << 20), static_cast<double>(after) / (1 << 20));
}

TEST_F(LoadTest, ASubscriberThatNeverReadsIsHeldByFlowControlNotMemory) {
  // A live $all subscription whose client never reads a message.
  grpc::ClientContext stalled;
  auto reader = streams_->Read(&stalled, SubscribeAllReq());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const uint64_t before = ResidentBytes();
  // 64 MiB of events committed while it stalls: the server may buffer only a flow-control window.
  const std::string data = "{\"pad\":\"" + std::string(64 << 10, 'x') + "\"}";
  std::vector<EventData> batch;
  for (int i = 0; i < 16; ++i) batch.push_back(EventData{Uuid{}, "Big", data, "", ContentType::kJson});  // ids by the store
  for (int i = 0; i < 64; ++i) {
    auto r = store_->Append("big-" + std::to_string(i), ExpectedVersion::Any(), batch);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Other clients are served meanwhile.
  EXPECT_TRUE(AppendOne("other-1", "{}"));
  const uint64_t after = ResidentBytes();
  // What the stalled subscription may hold is a flow-control window of a few MiB, far below
  // the 64 MiB it has not read.
  EXPECT_LT(after - std::min(after, before), uint64_t{48} << 20);
  std::printf("stalled subscriber, 64 MiB appended: anonymous resident memory %.1f -> %.1f MiB\n",
              static_cast<double>(before) / (1 << 20), static_cast<double>(after) / (1 << 20));
  // The client goes away: the server's blocked write ends and the call is released.
  stalled.TryCancel();
  (void)reader->Finish();
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  server_.reset();
}

}  // namespace
}  // namespace cairn::server

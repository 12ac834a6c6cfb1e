// What the server's tests share: a Server on a memory: store and a free loopback port (started
// by a fixture's SetUp; served by gRPC's library, or by the h2 front when CAIRN_TEST_TRANSPORT=h2),
// and reading a gRPC call's trailers.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "cairn/store.h"
#include "server/server.h"

namespace cairn::server::testing {

// The transport the server tests run against: gRPC's library, or the h2 front when
// CAIRN_TEST_TRANSPORT=h2 (test/CMakeLists.txt runs the server's fixtures again as "h2.").
inline std::string TransportUnderTest() {
  const char* t = std::getenv("CAIRN_TEST_TRANSPORT");
  return t != nullptr ? t : "grpc";
}

// A fixture base: store_ and server_ exist once SetUp has run (fatal failure otherwise).
class LoopbackServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open("memory:");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    ServerOptions options;
    options.grpc_address = "127.0.0.1:0";
    options.shutdown_grace = std::chrono::milliseconds(2000);
    options.transport = TransportUnderTest();
    auto server = Server::Start(store_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  std::string Address() const { return "127.0.0.1:" + std::to_string(server_->grpc_port()); }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<Store> store_;
  std::unique_ptr<Server> server_;
};

// The first trailer named `key` of a finished call, or "" when there is none.
inline std::string Trailer(const grpc::ClientContext& context, const std::string& key) {
  for (const auto& [k, v] : context.GetServerTrailingMetadata()) {
    if (std::string(k.data(), k.size()) == key) return std::string(v.data(), v.size());
  }
  return "";
}

// A JSON event whose metadata names the test that wrote it.
inline EventData JsonEvent(std::string type, std::string data, const std::string& by) {
  EventData e;
  e.type = std::move(type);
  e.data = std::move(data);
  e.metadata = R"({"by":")" + by + R"("})";
  e.content_type = ContentType::kJson;
  return e;
}

}  // namespace cairn::server::testing

// Proves the C++ client of the protocol (server/client.h, what `cairn bench --server` drives):
// appends from many callers and many in flight at once on one connection, errors, $all reads
// larger than gRPC's write buffer (the server corks them), and a server that goes away.
// How: a real Server on a memory store and a loopback port; the store is read back directly.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "server/client.h"
#include "server/server.h"
#include "loopback_server.h"

namespace cairn::server {
namespace {

EventData Event(std::string type, std::string data) {
  return testing::JsonEvent(std::move(type), std::move(data), "client_test");
}

class ClientTest : public testing::LoopbackServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoopbackServerTest::SetUp());
    client_ = std::move(Client::Connect(Address())).value();
  }

  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, AppendReportsVersionsAndPositionAsTheStoreDoes) {
  std::vector<EventData> two = {Event("Opened", R"({"n":1})"), Event("Deposited", R"({"n":2})")};
  auto first = client_->Append("acct-1", ExpectedVersion::NoStream(), two);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->first_version, 0u);
  EXPECT_EQ(first->next_version, 2u);
  auto second = client_->Append("acct-1", ExpectedVersion::Exact(1), std::span<const EventData>(two.data(), 1));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->first_version, 2u);
  EXPECT_GT(second->position.value(), first->position.value());
  auto info = store_->GetStreamInfo("acct-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 2u);
}

TEST_F(ClientTest, WrongExpectedVersionCarriesTheActualVersion) {
  std::vector<EventData> one = {Event("Opened", "{}")};
  ASSERT_TRUE(client_->Append("acct-2", ExpectedVersion::Any(), one).ok());
  auto refused = client_->Append("acct-2", ExpectedVersion::Exact(5), one);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().detail(), ErrorDetail::kWrongExpectedVersion);
  ASSERT_TRUE(refused.status().actual_version().has_value());
  EXPECT_EQ(*refused.status().actual_version(), 0u);
}

// 1,000 appends in flight at once on the connection's one call, started from the answers of
// earlier ones (as `cairn bench --server` does) and from four threads: each is answered once,
// with its own stream's revisions, and the store holds exactly them.
TEST_F(ClientTest, ManyAppendsInFlightAreEachAnsweredOnce) {
  constexpr int kPerThread = 250;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  std::vector<Status> failures;
  std::set<uint64_t> positions;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::vector<EventData> one = {Event("Deposited", "{\"i\":" + std::to_string(i) + "}")};
        client_->AppendAsync("flight-" + std::to_string(t), ExpectedVersion::Any(), one, [&](Result<AppendResult> r) {
          std::lock_guard lock(mu);
          if (r.ok()) {
            positions.insert(r->position.value());
          } else {
            failures.push_back(r.status());
          }
          answered++;
          cv.notify_all();
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return answered == 4 * kPerThread; }));
  ASSERT_TRUE(failures.empty()) << failures.front().ToString();
  EXPECT_EQ(positions.size(), 4u * kPerThread);  // one position each: no answer given twice
  for (int t = 0; t < 4; ++t) {
    auto info = store_->GetStreamInfo("flight-" + std::to_string(t));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->last_version, static_cast<uint64_t>(kPerThread - 1));
  }
}

// A read of $all of about 2 MB: many times gRPC's 64 KiB write buffer, so the server's corked
// writes fill and flush it many times over; every event arrives once, in order, intact.
TEST_F(ClientTest, ReadAllReturnsEveryEventInOrderPastTheWriteBuffer) {
  constexpr int kEvents = 3000;
  for (int i = 0; i < kEvents; i += 100) {
    std::vector<EventData> batch;
    for (int j = i; j < i + 100; ++j) batch.push_back(Event("Big", "{\"i\":" + std::to_string(j) + ",\"pad\":\"" + std::string(600, 'x') + "\"}"));
    ASSERT_TRUE(store_->Append("big-" + std::to_string(i % 7), ExpectedVersion::Any(), batch).ok());
  }
  std::vector<std::string> data;
  std::vector<uint64_t> positions;
  ASSERT_TRUE(client_->ReadAll(UINT64_MAX, [&](const RecordedEventView& e) {
                       data.emplace_back(e.data);
                       positions.push_back(e.position.value());
                       EXPECT_EQ(e.type, "Big");
                     }).ok());
  ASSERT_EQ(data.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) {
    EXPECT_TRUE(data[static_cast<size_t>(i)].starts_with("{\"i\":" + std::to_string(i) + ",")) << i;
    if (i > 0) {
      EXPECT_GT(positions[static_cast<size_t>(i)], positions[static_cast<size_t>(i) - 1]);
    }
  }
  // A read shorter than one corking run ends too.
  int seen = 0;
  ASSERT_TRUE(client_->ReadAll(3, [&](const RecordedEventView&) { seen++; }).ok());
  EXPECT_EQ(seen, 3);
}

// Appends after the server is gone fail with kUnavailable, and each caller is answered.
TEST_F(ClientTest, AppendsAfterTheServerStoppedFailUnavailable) {
  std::vector<EventData> one = {Event("Opened", "{}")};
  ASSERT_TRUE(client_->Append("gone-1", ExpectedVersion::Any(), one).ok());
  server_->Shutdown();
  auto after = client_->Append("gone-1", ExpectedVersion::Any(), one);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << after.status().ToString();
}

}  // namespace
}  // namespace cairn::server

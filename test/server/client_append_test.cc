// Proves Client's appends over both of their transports (ClientOptions::appends: nghttp2 with the
// client's own thread, h2_client.h's H2Appender; or gRPC's C++ library): many appends in flight
// from several threads and from inside their own callbacks, each answered once with its stream's
// versions in order; a wrong expected version; a stream the caller may not write; the answers of
// a long burst, which arrive split across HTTP/2 frames; a server that is not there or goes away
// with appends in flight; and a client destroyed with appends in flight. Every callback is
// counted: each runs exactly once.
// How: a real Server on a memory store and a loopback port (served by gRPC's library, or by the
// h2 front in the "h2." run); the store is read back directly.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth/security.h"
#include "cairn/store.h"
#include "loopback_server.h"
#include "server/client.h"
#include "server/server.h"

namespace cairn::server {
namespace {

EventData Event(std::string type, std::string data) {
  return testing::JsonEvent(std::move(type), std::move(data), "client_append_test");
}

std::string ApiName(AppendTransport t) { return t == AppendTransport::kH2 ? "h2" : "grpc"; }

// Counts answers, and waits until `expected` of them came (or a deadline passed).
class Answers {
 public:
  explicit Answers(size_t n) : calls_(n) {
    for (auto& c : calls_) c.store(0);
    results_.resize(n, Status::Internal("no answer"));
    values_.resize(n);
  }

  // The callback of append `i`.
  std::function<void(Result<AppendResult>)> For(size_t i) {
    return [this, i](Result<AppendResult> r) { Record(i, std::move(r)); };
  }

  void Record(size_t i, Result<AppendResult> r) {
    calls_[i].fetch_add(1);
    std::lock_guard lock(mu_);
    results_[i] = r.status();
    if (r.ok()) values_[i] = *r;
    answered_++;
    cv_.notify_all();
  }

  bool WaitAll(std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return answered_ >= calls_.size(); });
  }

  // Every callback ran exactly once.
  void ExpectEachOnce() {
    for (size_t i = 0; i < calls_.size(); ++i) EXPECT_EQ(calls_[i].load(), 1) << "append " << i;
  }

  Status status(size_t i) {
    std::lock_guard lock(mu_);
    return results_[i];
  }
  AppendResult value(size_t i) {
    std::lock_guard lock(mu_);
    return values_[i];
  }
  size_t size() const { return calls_.size(); }

 private:
  std::vector<std::atomic<int>> calls_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> results_;
  std::vector<AppendResult> values_;
  size_t answered_ = 0;
};

class ClientAppendTest : public testing::LoopbackServerTest, public ::testing::WithParamInterface<AppendTransport> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoopbackServerTest::SetUp());
    auto client = Client::Connect(Address(), ClientOptions{.appends = GetParam()});
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
  }

  std::unique_ptr<Client> client_;
};

// Four threads, each with a chain of appends to a stream of its own, the next started from the
// previous one's callback with the exact expected version; and a fifth thread that sends 500
// appends to one stream without waiting. Each is answered once, with the versions in the order
// the appends were made, and the store holds exactly them.
TEST_P(ClientAppendTest, AppendsFromThreadsAndCallbacksAreAnsweredOnceInOrder) {
  constexpr size_t kChain = 200, kBurst = 500;
  Answers chains(4 * kChain), burst(kBurst);
  std::vector<std::thread> threads;
  const std::vector<EventData> one = {Event("Chained", "{}")};
  // next(t, i): append i of chain t; its callback records it and starts i + 1.
  std::function<void(size_t, size_t)> next = [&](size_t t, size_t i) {
    client_->AppendAsync("chain-" + std::to_string(t), i == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(i - 1),
                         one, [&, t, i](Result<AppendResult> r) {
                           chains.Record(t * kChain + i, std::move(r));
                           if (i + 1 < kChain) next(t, i + 1);
                         });
  };
  for (size_t t = 0; t < 4; ++t) threads.emplace_back([&, t] { next(t, 0); });
  threads.emplace_back([&] {
    for (size_t i = 0; i < kBurst; ++i) {
      const std::vector<EventData> two = {Event("Burst", "{\"i\":" + std::to_string(i) + "}"), Event("Burst", "{}")};
      client_->AppendAsync("burst", ExpectedVersion::Any(), two, burst.For(i));
    }
  });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(chains.WaitAll());
  ASSERT_TRUE(burst.WaitAll());
  chains.ExpectEachOnce();
  burst.ExpectEachOnce();
  for (size_t t = 0; t < 4; ++t) {
    for (size_t i = 0; i < kChain; ++i) {
      const size_t k = t * kChain + i;
      ASSERT_TRUE(chains.status(k).ok()) << chains.status(k).ToString();
      EXPECT_EQ(chains.value(k).first_version, i);
      EXPECT_EQ(chains.value(k).next_version, i + 1);
      if (i > 0) {
        EXPECT_GT(chains.value(k).position.value(), chains.value(k - 1).position.value());
      }
    }
    auto info = store_->GetStreamInfo("chain-" + std::to_string(t));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->last_version, kChain - 1);
  }
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(burst.status(i).ok()) << burst.status(i).ToString();
    EXPECT_EQ(burst.value(i).first_version, 2 * i) << i;  // one caller, one call: in its order
    EXPECT_EQ(burst.value(i).next_version, 2 * i + 2) << i;
  }
  auto info = store_->GetStreamInfo("burst");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 2 * kBurst - 1);
  // The synchronous Append rides the same call.
  auto sync = client_->Append("burst", ExpectedVersion::Exact(2 * kBurst - 1), one);
  ASSERT_TRUE(sync.ok()) << sync.status().ToString();
  EXPECT_EQ(sync->first_version, 2 * kBurst);
}

// 4,000 appends sent at once, each answered in a message of its own: the answers come back in
// many DATA frames of 16 KiB at most, so many messages are split across two frames.
TEST_P(ClientAppendTest, ALongBurstIsAnsweredThoughAnswersSpanFrames) {
  constexpr size_t kAppends = 4000;
  Answers answers(kAppends);
  const std::vector<EventData> one = {Event("Burst", R"({"pad":")" + std::string(100, 'x') + "\"}")};
  for (size_t i = 0; i < kAppends; ++i) {
    client_->AppendAsync("many-" + std::to_string(i % 13), ExpectedVersion::Any(), one, answers.For(i));
  }
  ASSERT_TRUE(answers.WaitAll());
  answers.ExpectEachOnce();
  std::vector<uint64_t> next(13, 0);
  for (size_t i = 0; i < kAppends; ++i) {
    ASSERT_TRUE(answers.status(i).ok()) << answers.status(i).ToString();
    EXPECT_EQ(answers.value(i).first_version, next[i % 13]++) << i;
  }
  for (size_t s = 0; s < 13; ++s) {
    auto info = store_->GetStreamInfo("many-" + std::to_string(s));
    ASSERT_TRUE(info.ok());
    ASSERT_TRUE(info->last_version.has_value());
    EXPECT_EQ(*info->last_version + 1, next[s]);
  }
}

TEST_P(ClientAppendTest, WrongExpectedVersionIsAConflictWithTheActualVersion) {
  const std::vector<EventData> one = {Event("Opened", "{}")};
  ASSERT_TRUE(client_->Append("wev-1", ExpectedVersion::Any(), one).ok());
  ASSERT_TRUE(client_->Append("wev-1", ExpectedVersion::Any(), one).ok());
  auto refused = client_->Append("wev-1", ExpectedVersion::Exact(7), one);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict) << refused.status().ToString();
  EXPECT_EQ(refused.status().detail(), ErrorDetail::kWrongExpectedVersion);
  ASSERT_TRUE(refused.status().actual_version().has_value());
  EXPECT_EQ(*refused.status().actual_version(), 1u);
  auto none = client_->Append("wev-1", ExpectedVersion::NoStream(), one);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().detail(), ErrorDetail::kWrongExpectedVersion);
  // The call goes on after a refusal.
  auto after = client_->Append("wev-1", ExpectedVersion::Exact(1), one);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->first_version, 2u);
}

// The server stops with appends in flight: every callback runs once, none hangs, and appends
// made afterwards fail kUnavailable at once.
TEST_P(ClientAppendTest, ServerGoneMidFlightAnswersEveryAppendOnce) {
  constexpr size_t kAppends = 3000;
  Answers answers(kAppends);
  const std::vector<EventData> one = {Event("Flight", "{}")};
  std::thread sender([&] {
    for (size_t i = 0; i < kAppends; ++i) {
      client_->AppendAsync("flight-" + std::to_string(i % 5), ExpectedVersion::Any(), one, answers.For(i));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  server_->Shutdown();
  sender.join();
  ASSERT_TRUE(answers.WaitAll()) << "appends left unanswered";
  answers.ExpectEachOnce();
  size_t failed = 0;
  for (size_t i = 0; i < kAppends; ++i) {
    const Status s = answers.status(i);
    if (!s.ok()) {
      failed++;
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    }
  }
  // Appends the server acknowledged are in the store; no more than that are.
  uint64_t stored = 0;
  for (int s = 0; s < 5; ++s) {
    auto info = store_->GetStreamInfo("flight-" + std::to_string(s));
    ASSERT_TRUE(info.ok());
    if (info->last_version) stored += *info->last_version + 1;
  }
  EXPECT_GE(stored, kAppends - failed);
  auto after = client_->Append("flight-0", ExpectedVersion::Any(), one);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << after.status().ToString();
}

// Destroying the client with appends in flight: each callback runs once (answered, or
// kUnavailable), and the destructor returns.
TEST_P(ClientAppendTest, DestroyedWithAppendsInFlightAnswersEachOnce) {
  constexpr size_t kAppends = 2000;
  Answers answers(kAppends);
  const std::vector<EventData> one = {Event("Closing", "{}")};
  for (size_t i = 0; i < kAppends; ++i) {
    client_->AppendAsync("closing", ExpectedVersion::Any(), one, answers.For(i));
  }
  client_.reset();
  ASSERT_TRUE(answers.WaitAll(std::chrono::seconds(1))) << "the destructor returned with appends unanswered";
  answers.ExpectEachOnce();
  for (size_t i = 0; i < kAppends; ++i) {
    const Status s = answers.status(i);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    }
  }
}

// Several clients at once (over nghttp2 they share one loop thread): one destroyed with its
// appends in flight leaves the others' appends and later clients unharmed.
TEST_P(ClientAppendTest, ClientsComeAndGoWhileOthersAppend) {
  constexpr size_t kPer = 300;
  const std::vector<EventData> one = {Event("Many", "{}")};
  std::vector<std::unique_ptr<Client>> clients;
  for (int c = 0; c < 4; ++c) clients.push_back(std::move(Client::Connect(Address(), ClientOptions{.appends = GetParam()})).value());
  std::vector<std::unique_ptr<Answers>> answers;
  for (int c = 0; c < 4; ++c) {
    answers.push_back(std::make_unique<Answers>(kPer));
    for (size_t i = 0; i < kPer; ++i) {
      clients[static_cast<size_t>(c)]->AppendAsync("come-go-" + std::to_string(c), ExpectedVersion::Any(), one,
                                                   answers.back()->For(i));
    }
  }
  clients[1].reset();  // with its appends in flight
  auto late = Client::Connect(Address(), ClientOptions{.appends = GetParam()});
  ASSERT_TRUE(late.ok());
  auto r = (*late)->Append("come-go-late", ExpectedVersion::NoStream(), one);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (int c = 0; c < 4; ++c) {
    ASSERT_TRUE(answers[static_cast<size_t>(c)]->WaitAll());
    answers[static_cast<size_t>(c)]->ExpectEachOnce();
    if (c == 1) continue;
    for (size_t i = 0; i < kPer; ++i) {
      ASSERT_TRUE(answers[static_cast<size_t>(c)]->status(i).ok()) << answers[static_cast<size_t>(c)]->status(i).ToString();
      EXPECT_EQ(answers[static_cast<size_t>(c)]->value(i).first_version, i);
    }
  }
  clients.clear();
  late->reset();
  // And a client after all others are gone (over nghttp2: a new loop thread).
  auto again = Client::Connect(Address(), ClientOptions{.appends = GetParam()});
  ASSERT_TRUE(again.ok());
  r = (*again)->Append("come-go-late", ExpectedVersion::Exact(0), one);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->first_version, 1u);
}

// Nothing listens on the port: every append, pending or later, fails kUnavailable, once each.
TEST_P(ClientAppendTest, NoServerFailsEveryAppendUnavailable) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);  // a port nobody listens on (bound, never listened)
  auto client = Client::Connect("127.0.0.1:" + std::to_string(ntohs(a.sin_port)), ClientOptions{.appends = GetParam()});
  ASSERT_TRUE(client.ok()) << client.status().ToString();  // lazy: the error comes with the appends
  Answers answers(20);
  const std::vector<EventData> one = {Event("Nowhere", "{}")};
  for (size_t i = 0; i < answers.size(); ++i) (*client)->AppendAsync("nowhere", ExpectedVersion::Any(), one, answers.For(i));
  ASSERT_TRUE(answers.WaitAll());
  answers.ExpectEachOnce();
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_EQ(answers.status(i).code(), StatusCode::kUnavailable) << answers.status(i).ToString();
  }
}

// A listening socket on a free loopback port whose one connection `serve` handles (on a thread).
class RawServer {
 public:
  explicit RawServer(std::function<void(int fd)> serve) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
    socklen_t len = sizeof a;
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, serve = std::move(serve)] {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd >= 0) {
        serve(fd);
        ::close(fd);
      }
    });
  }
  ~RawServer() {
    thread_.join();
    ::close(listen_fd_);
  }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// Over nghttp2: a server that closes the connection at once, and one that answers with bytes that
// are not HTTP/2, each fail every append kUnavailable, once each, naming what went wrong.
TEST(ClientAppendH2Test, AConnectionClosedOrGarbledFailsEveryAppendOnce) {
  struct Case {
    std::string name;
    std::function<void(int)> serve;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"closed", [](int) {}, "connection"},
      {"garbled",
       [](int fd) {
         char buf[4096];
         [[maybe_unused]] ssize_t n = ::recv(fd, buf, sizeof buf, 0);  // the client's preface
         const std::string junk = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + std::string(100, 'x');
         n = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
         std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the client must see the junk, not a close
       },
       "malformed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawServer raw(c.serve);
    auto client = Client::Connect(raw.Address(), ClientOptions{.appends = AppendTransport::kH2});
    ASSERT_TRUE(client.ok());
    Answers answers(10);
    const std::vector<EventData> one = {Event("Nowhere", "{}")};
    for (size_t i = 0; i < answers.size(); ++i) (*client)->AppendAsync("raw", ExpectedVersion::Any(), one, answers.For(i));
    ASSERT_TRUE(answers.WaitAll());
    answers.ExpectEachOnce();
    for (size_t i = 0; i < answers.size(); ++i) {
      EXPECT_EQ(answers.status(i).code(), StatusCode::kUnavailable) << answers.status(i).ToString();
      EXPECT_NE(answers.status(i).message().find(c.says), std::string::npos) << answers.status(i).ToString();
    }
    auto later = (*client)->Append("raw", ExpectedVersion::Any(), one);
    EXPECT_EQ(later.status().code(), StatusCode::kUnavailable);
    client->reset();
  }
}

INSTANTIATE_TEST_SUITE_P(Apis, ClientAppendTest, ::testing::Values(AppendTransport::kH2, AppendTransport::kGrpc),
                         [](const ::testing::TestParamInfo<AppendTransport>& info) { return ApiName(info.param); });

// With authentication on: a user without write permission on the stream gets kPermissionDenied
// for that append, and the call goes on serving a permitted user's appends on another client.
class ClientAppendAuthTest : public ::testing::TestWithParam<AppendTransport> {
 protected:
  void SetUp() override {
    store_ = std::move(Store::Open("memory:")).value();
    auth::SecurityOptions so;
    so.enabled = true;
    so.kdf_log2_n = 10;
    so.initial_admin_password = "admin-password";
    auth::AclRule acct;
    acct.prefix = "acct-";
    acct.read = {"tellers"};
    acct.write = {"tellers"};
    so.policy.rules = {acct};
    security_ = std::move(auth::Security::Open(store_.get(), so)).value();
    ASSERT_TRUE(security_->CreateUser("teller", "teller-password", {"tellers"}).ok());
    ASSERT_TRUE(security_->CreateUser("nobody", "nobody-password", {}).ok());
    ServerOptions options;
    options.grpc_address = "127.0.0.1:0";
    options.transport = testing::TransportUnderTest();
    options.security = security_.get();
    options.shutdown_grace = std::chrono::milliseconds(1000);
    server_ = std::move(Server::Start(store_.get(), options)).value();
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::unique_ptr<Client> As(const std::string& user, const std::string& password) {
    return std::move(Client::Connect("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     ClientOptions{.appends = GetParam(), .user = user, .password = password}))
        .value();
  }

  std::unique_ptr<Store> store_;
  std::unique_ptr<auth::Security> security_;
  std::unique_ptr<Server> server_;
};

TEST_P(ClientAppendAuthTest, AnAppendTheUserMayNotMakeIsPermissionDenied) {
  const std::vector<EventData> one = {Event("Deposited", "{}")};
  // Without credentials, or with a wrong password: kUnauthenticated.
  auto anonymous = As("", "");
  auto refused = anonymous->Append("acct-1", ExpectedVersion::Any(), one);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated) << refused.status().ToString();
  auto wrong = As("teller", "not-the-password");
  refused = wrong->Append("acct-1", ExpectedVersion::Any(), one);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated) << refused.status().ToString();
  auto nobody = As("nobody", "nobody-password");
  auto denied = nobody->Append("acct-1", ExpectedVersion::Any(), one);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied) << denied.status().ToString();
  EXPECT_FALSE(store_->GetStreamInfo("acct-1")->exists);
  // The same call goes on: a stream no rule covers is denied again, once per append.
  auto again = nobody->Append("acct-2", ExpectedVersion::Any(), one);
  EXPECT_EQ(again.status().code(), StatusCode::kPermissionDenied) << again.status().ToString();
  auto teller = As("teller", "teller-password");
  auto allowed = teller->Append("acct-1", ExpectedVersion::Any(), one);
  ASSERT_TRUE(allowed.ok()) << allowed.status().ToString();
  EXPECT_TRUE(store_->GetStreamInfo("acct-1")->exists);
}

INSTANTIATE_TEST_SUITE_P(Apis, ClientAppendAuthTest, ::testing::Values(AppendTransport::kH2, AppendTransport::kGrpc),
                         [](const ::testing::TestParamInfo<AppendTransport>& info) { return ApiName(info.param); });

}  // namespace
}  // namespace cairn::server

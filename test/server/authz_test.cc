// The authorization matrix of the gRPC front: every RPC, called anonymously, with a wrong
// password, by a user without the permission and by a permitted user; denied calls change
// nothing. Also TLS: a server with a certificate serves TLS clients only, and may then listen
// beyond loopback.
// How: a real Server with Security on a memory store and a loopback port, driven by gRPC stubs
// generated from our .proto files; the certificate is made by the openssl command.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "auth/security.h"
#include "cairn/store.h"
#include "esdb/gossip.grpc.pb.h"
#include "esdb/serverfeatures.grpc.pb.h"
#include "esdb/streams.grpc.pb.h"
#include "server/config.h"
#include "loopback_server.h"
#include "server/server.h"

namespace cairn::server {
namespace {

using testing::TransportUnderTest;

namespace pb = event_store::client::streams;
using ReadOptions = pb::ReadReq::Options;


std::string Trailer(const grpc::ClientContext& context, const std::string& key) {
  for (const auto& [k, v] : context.GetServerTrailingMetadata()) {
    if (std::string(k.data(), k.size()) == key) return std::string(v.data(), v.size());
  }
  return "";
}

pb::AppendReq AppendOptions(const std::string& stream) {
  pb::AppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->mutable_any();
  return req;
}

pb::AppendReq AppendMessage(const std::string& type, const std::string& data) {
  pb::AppendReq req;
  auto* m = req.mutable_proposed_message();
  (*m->mutable_metadata())["type"] = type;
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data(data);
  return req;
}

pb::ReadReq ReadStreamReq(const std::string& stream, bool subscribe) {
  pb::ReadReq req;
  auto* o = req.mutable_options();
  o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
  o->mutable_stream()->mutable_start();
  o->set_read_direction(ReadOptions::Forwards);
  o->set_resolve_links(false);
  if (subscribe) {
    o->mutable_subscription();
  } else {
    o->set_count(100);
  }
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_string();
  return req;
}

pb::ReadReq ReadAllReq(bool subscribe) {
  pb::ReadReq req;
  auto* o = req.mutable_options();
  o->mutable_all()->mutable_start();
  o->set_read_direction(ReadOptions::Forwards);
  o->set_resolve_links(false);
  if (subscribe) {
    o->mutable_subscription();
  } else {
    o->set_count(100);
  }
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_string();
  return req;
}

// Who calls.
enum class Caller { kAnonymous, kWrongPassword, kWithoutPermission, kPermitted };
const char* CallerName(Caller c) {
  switch (c) {
    case Caller::kAnonymous: return "anonymous";
    case Caller::kWrongPassword: return "wrong password";
    case Caller::kWithoutPermission: return "user without the permission";
    case Caller::kPermitted: return "permitted user";
  }
  return "?";
}

class AuthzTest : public ::testing::Test {
 public:  // the matrix's lambdas call these
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
    acct.del = {"tellers"};
    acct.metadata_read = {"tellers"};
    acct.metadata_write = {"tellers"};
    so.policy.rules = {acct};
    so.policy.read_all = {"auditor"};
    security_ = std::move(auth::Security::Open(store_.get(), so)).value();
    ASSERT_TRUE(security_->CreateUser("teller", "teller-password", {"tellers"}).ok());
    ASSERT_TRUE(security_->CreateUser("auditor", "auditor-password", {}).ok());
    ASSERT_TRUE(security_->CreateUser("nobody", "nobody-password", {}).ok());
    // Streams the calls work on: every call gets its own, so that one caller's success does not
    // change what the next sees.
    ServerOptions options;
    options.grpc_address = "127.0.0.1:0";
    options.transport = TransportUnderTest();
    options.security = security_.get();
    options.shutdown_grace = std::chrono::milliseconds(1000);
    server_ = std::move(Server::Start(store_.get(), options)).value();
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                       grpc::InsecureChannelCredentials());
    streams_ = pb::Streams::NewStub(channel);
    features_ = event_store::client::server_features::ServerFeatures::NewStub(channel);
    gossip_ = event_store::client::gossip::Gossip::NewStub(channel);
  }

  void TearDown() override {
    server_->Shutdown();
    server_.reset();
  }

  void Seed(const std::string& stream) {
    std::vector<EventData> events{{Uuid::V7(), "Opened", "{}", "", ContentType::kJson}};
    ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), events).ok());
  }

  void SignIn(grpc::ClientContext* context, Caller caller, const std::string& permitted_user) {
    switch (caller) {
      case Caller::kAnonymous: break;
      case Caller::kWrongPassword: context->AddMetadata("authorization", auth::BasicCredentials(permitted_user, "not-the-password")); break;
      case Caller::kWithoutPermission: context->AddMetadata("authorization", auth::BasicCredentials("nobody", "nobody-password")); break;
      case Caller::kPermitted:
        context->AddMetadata("authorization", auth::BasicCredentials(permitted_user, permitted_user + "-password"));
        break;
    }
  }

  grpc::Status Append(grpc::ClientContext* context, const std::string& stream, const std::string& type,
                      const std::string& data) {
    pb::AppendResp response;
    auto writer = streams_->Append(context, &response);
    writer->Write(AppendOptions(stream));
    writer->Write(AppendMessage(type, data));
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status Read(grpc::ClientContext* context, const pb::ReadReq& req, bool subscription) {
    auto reader = streams_->Read(context, req);
    pb::ReadResp resp;
    if (subscription) {
      // Allowed: the first message is the confirmation. Denied: the call ends at once.
      if (reader->Read(&resp)) {
        const bool confirmed = resp.has_confirmation();
        context->TryCancel();
        (void)reader->Finish();
        return confirmed ? grpc::Status::OK : grpc::Status(grpc::StatusCode::INTERNAL, "no confirmation first");
      }
      return reader->Finish();
    }
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  }

  std::unique_ptr<Store> store_;
  std::unique_ptr<auth::Security> security_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<pb::Streams::Stub> streams_;
  std::unique_ptr<event_store::client::server_features::ServerFeatures::Stub> features_;
  std::unique_ptr<event_store::client::gossip::Gossip::Stub> gossip_;
};

// One RPC of the matrix: what it needs, who may, and how to tell that a denied call changed nothing.
struct Rpc {
  std::string name;
  std::string permitted_user;
  // Prepares the store for a call with suffix n (a fresh stream per call).
  std::function<void(AuthzTest&, const std::string& n)> prepare;
  std::function<grpc::Status(AuthzTest&, grpc::ClientContext*, const std::string& n)> call;
  // After a denied call: true when nothing changed.
  std::function<bool(AuthzTest&, const std::string& n)> unchanged;
  bool trailers = true;  // denials carry the "exception" trailer (BatchAppend's are in its answers)
};

TEST_F(AuthzTest, EveryRpcDeniesAnonymousWrongPasswordAndUnpermittedUsersAndServesPermittedOnes) {
  auto exists = [](AuthzTest& t, const std::string& s) { return t.store_->GetStreamInfo(s)->exists; };
  const std::vector<Rpc> rpcs = {
      {"Streams.Append", "teller", [](AuthzTest&, const std::string&) {},
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) { return t.Append(c, "acct-a" + n, "Deposited", "{}"); },
       [&](AuthzTest& t, const std::string& n) { return !exists(t, "acct-a" + n); }},
      {"Streams.Read (stream)", "teller", [](AuthzTest& t, const std::string& n) { t.Seed("acct-r" + n); },
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
         return t.Read(c, ReadStreamReq("acct-r" + n, false), false);
       },
       nullptr},
      {"Streams.Read (stream subscription)", "teller", [](AuthzTest& t, const std::string& n) { t.Seed("acct-s" + n); },
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
         return t.Read(c, ReadStreamReq("acct-s" + n, true), true);
       },
       nullptr},
      {"Streams.Read ($all)", "auditor", [](AuthzTest&, const std::string&) {},
       [](AuthzTest& t, grpc::ClientContext* c, const std::string&) { return t.Read(c, ReadAllReq(false), false); },
       nullptr},
      {"Streams.Read ($all subscription)", "auditor", [](AuthzTest&, const std::string&) {},
       [](AuthzTest& t, grpc::ClientContext* c, const std::string&) { return t.Read(c, ReadAllReq(true), true); },
       nullptr},
      {"Streams.Append ($$ metadata write)", "teller", [](AuthzTest& t, const std::string& n) { t.Seed("acct-m" + n); },
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
         return t.Append(c, "$$acct-m" + n, "$metadata", R"({"$maxCount": 5})");
       },
       [](AuthzTest& t, const std::string& n) {
         return !t.store_->GetStreamInfo("acct-m" + n)->metadata.max_count.has_value();
       }},
      {"Streams.Read ($$ metadata read)", "teller",
       [](AuthzTest& t, const std::string& n) {
         StreamMetadata md;
         md.max_count = 3;
         ASSERT_TRUE(t.store_->SetStreamMetadata("acct-q" + n, ExpectedVersion::Any(), md).ok());
       },
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
         return t.Read(c, ReadStreamReq("$$acct-q" + n, false), false);
       },
       nullptr},
      {"Streams.Delete", "teller", [](AuthzTest& t, const std::string& n) { t.Seed("acct-d" + n); },
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
         pb::DeleteReq req;
         req.mutable_options()->mutable_stream_identifier()->set_stream_name("acct-d" + n);
         req.mutable_options()->mutable_any();
         pb::DeleteResp resp;
         return t.streams_->Delete(c, req, &resp);
       },
       [&](AuthzTest& t, const std::string& n) { return exists(t, "acct-d" + n); }},
      {"Streams.Tombstone", "teller", [](AuthzTest& t, const std::string& n) { t.Seed("acct-t" + n); },
       [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
         pb::TombstoneReq req;
         req.mutable_options()->mutable_stream_identifier()->set_stream_name("acct-t" + n);
         req.mutable_options()->mutable_any();
         pb::TombstoneResp resp;
         return t.streams_->Tombstone(c, req, &resp);
       },
       [&](AuthzTest& t, const std::string& n) { return exists(t, "acct-t" + n); }},
  };

  // BatchAppend: the call succeeds; each append's answer carries its own status and details.
  Rpc batch{"Streams.BatchAppend", "teller", [](AuthzTest&, const std::string&) {},
            [](AuthzTest& t, grpc::ClientContext* c, const std::string& n) {
              auto call = t.streams_->BatchAppend(c);
              pb::BatchAppendReq req;
              req.mutable_correlation_id()->set_string(Uuid::V7().ToString());
              req.mutable_options()->mutable_stream_identifier()->set_stream_name("acct-b" + n);
              req.mutable_options()->mutable_any();
              auto* m = req.add_proposed_messages();
              (*m->mutable_metadata())["type"] = "Deposited";
              (*m->mutable_metadata())["content-type"] = "application/json";
              m->set_data("{}");
              req.set_is_final(true);
              call->Write(req);
              call->WritesDone();
              pb::BatchAppendResp resp;
              const bool answered = call->Read(&resp);
              grpc::Status s = call->Finish();
              if (!s.ok()) return s;
              if (!answered) return grpc::Status(grpc::StatusCode::INTERNAL, "no answer");
              if (resp.has_success()) return grpc::Status::OK;
              if (!resp.error().details().Is<event_store::client::AccessDenied>()) {
                return grpc::Status(grpc::StatusCode::INTERNAL, "details are not AccessDenied");
              }
              return grpc::Status(static_cast<grpc::StatusCode>(resp.error().code()), resp.error().message());
            },
            [&](AuthzTest& t, const std::string& n) { return !exists(t, "acct-b" + n); }, false};
  std::vector<Rpc> all_rpcs = rpcs;
  all_rpcs.push_back(batch);

  int n = 0;
  for (const Rpc& rpc : all_rpcs) {
    for (Caller caller : {Caller::kAnonymous, Caller::kWrongPassword, Caller::kWithoutPermission, Caller::kPermitted}) {
      const std::string suffix = std::to_string(++n);
      rpc.prepare(*this, suffix);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      SignIn(&context, caller, rpc.permitted_user);
      grpc::Status s = rpc.call(*this, &context, suffix);
      SCOPED_TRACE(rpc.name + ", " + CallerName(caller) + ": " + s.error_message());
      switch (caller) {
        case Caller::kAnonymous:
        case Caller::kWrongPassword:
          EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
          break;
        case Caller::kWithoutPermission:
          EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
          if (rpc.trailers) {
            EXPECT_EQ(Trailer(context, "exception"), "access-denied");
          }
          break;
        case Caller::kPermitted:
          EXPECT_TRUE(s.ok());
          break;
      }
      if (caller != Caller::kPermitted && rpc.unchanged) {
        EXPECT_TRUE(rpc.unchanged(*this, suffix));
      }
    }
  }
}

TEST_F(AuthzTest, PublicRpcsNeedNoCredentials) {
  // The client's first calls, before it knows anything: EventStoreDB serves them to anyone too.
  grpc::ClientContext c1;
  event_store::client::Empty empty;
  event_store::client::server_features::SupportedMethods methods;
  EXPECT_TRUE(features_->GetSupportedMethods(&c1, empty, &methods).ok());
  grpc::ClientContext c2;
  event_store::client::gossip::ClusterInfo info;
  EXPECT_TRUE(gossip_->Read(&c2, empty, &info).ok());
}

TEST_F(AuthzTest, WhatNoRuleGrantsIsDeniedEvenToSignedInUsers) {
  Seed("other-1");
  Seed("acct-1");
  auto as = [&](const std::string& user, const std::string& password, const pb::ReadReq& req) {
    grpc::ClientContext c;
    c.AddMetadata("authorization", auth::BasicCredentials(user, password));
    return Read(&c, req, false).error_code();
  };
  EXPECT_EQ(as("teller", "teller-password", ReadStreamReq("other-1", false)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(as("teller", "teller-password", ReadStreamReq("$users", false)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(as("teller", "teller-password", ReadAllReq(false)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(as("auditor", "auditor-password", ReadStreamReq("acct-1", false)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(as("admin", "admin-password", ReadStreamReq("$users", false)), grpc::StatusCode::OK);
  EXPECT_EQ(as("admin", "admin-password", ReadStreamReq("other-1", false)), grpc::StatusCode::OK);
}

// ---- TLS

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cairn-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                            "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
                            (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string() + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    store_ = std::move(Store::Open("memory:")).value();
    auth::SecurityOptions so;
    so.enabled = true;
    so.kdf_log2_n = 10;
    so.initial_admin_password = "admin-password";
    security_ = std::move(auth::Security::Open(store_.get(), so)).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string ReadFile(const std::string& name) {
    std::ifstream in(dir_ / name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<auth::Security> security_;
};

TEST_F(TlsTest, TlsServerServesTlsClientsAndRefusesPlaintextOnes) {
  ServerOptions options;
  options.grpc_address = "127.0.0.1:0";
  options.transport = TransportUnderTest();
  options.security = security_.get();
  options.tls_cert_file = (dir_ / "cert.pem").string();
  options.tls_key_file = (dir_ / "key.pem").string();
  auto server = Server::Start(store_.get(), options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string target = "127.0.0.1:" + std::to_string((*server)->grpc_port());

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile("cert.pem");
  auto tls_stub = pb::Streams::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(ssl)));
  {
    grpc::ClientContext c;
    c.AddMetadata("authorization", auth::BasicCredentials("admin", "admin-password"));
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::AppendResp resp;
    auto w = tls_stub->Append(&c, &resp);
    w->Write(AppendOptions("tls-1"));
    w->Write(AppendMessage("Sent", "{}"));
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_TRUE(store_->GetStreamInfo("tls-1")->exists);

  auto plain_stub = pb::Streams::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext c;
    c.AddMetadata("authorization", auth::BasicCredentials("admin", "admin-password"));
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::AppendResp resp;
    auto w = plain_stub->Append(&c, &resp);
    w->Write(AppendOptions("plain-1"));
    w->Write(AppendMessage("Sent", "{}"));
    w->WritesDone();
    EXPECT_FALSE(w->Finish().ok());
  }
  EXPECT_FALSE(store_->GetStreamInfo("plain-1")->exists);
  (*server)->Shutdown();
}

TEST_F(TlsTest, OnlyTlsWithAuthenticationOrInsecureMayListenBeyondLoopback) {
  ServerOptions plain;
  plain.grpc_address = "0.0.0.0:0";
  plain.transport = TransportUnderTest();
  auto refused = Server::Start(store_.get(), plain);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("--tls-cert"), std::string::npos);

  ServerOptions auth_only = plain;
  auth_only.security = security_.get();
  EXPECT_FALSE(Server::Start(store_.get(), auth_only).ok());

  ServerOptions secure = auth_only;
  secure.tls_cert_file = (dir_ / "cert.pem").string();
  secure.tls_key_file = (dir_ / "key.pem").string();
  auto ok = Server::Start(store_.get(), secure);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  (*ok)->Shutdown();

  ServerOptions half = secure;
  half.tls_key_file.clear();
  auto bad = Server::Start(store_.get(), half);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--tls-key"), std::string::npos);

  ServerOptions not_pem = secure;
  not_pem.grpc_address = "127.0.0.1:0";
  not_pem.tls_cert_file = (dir_ / "missing.pem").string();
  bad = Server::Start(store_.get(), not_pem);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--tls-cert"), std::string::npos);
}

}  // namespace
}  // namespace cairn::server

namespace cairn::server {
namespace {

class SecurityConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    const auto path = std::filesystem::temp_directory_path() / ("cairn-sec-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(path) << text;
    paths_.push_back(path);
    return path.string();
  }
  void TearDown() override {
    for (const auto& p : paths_) std::filesystem::remove(p);
  }
  std::vector<std::filesystem::path> paths_;
};

TEST_F(SecurityConfigTest, SecurityTableBecomesThePolicy) {
  auto file = LoadConfigFile(Write(R"(
auth = true
tls_cert = "/c.pem"
tls_key = "/k.pem"
[security]
read_all = ["auditors"]
metrics = ["monitoring", "prometheus"]
[[security.acl]]
prefix = ""
read = ["$authenticated"]
[[security.acl]]
prefix = "acct-"
write = ["tellers", "carol"]
delete = []
metadata_read = ["tellers"]
metadata_write = ["$admins"]
)"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->auth, true);
  EXPECT_EQ(file->tls_cert, "/c.pem");
  EXPECT_EQ(file->tls_key, "/k.pem");
  ASSERT_TRUE(file->security.has_value());
  EXPECT_EQ(file->security->read_all, std::vector<std::string>{"auditors"});
  EXPECT_EQ(file->security->metrics, (std::vector<std::string>{"monitoring", "prometheus"}));
  ASSERT_EQ(file->security->rules.size(), 2u);
  EXPECT_EQ(file->security->rules[0].prefix, "");
  EXPECT_EQ(file->security->rules[0].read, std::vector<std::string>{"$authenticated"});
  EXPECT_EQ(file->security->rules[1].write, (std::vector<std::string>{"tellers", "carol"}));
  EXPECT_TRUE(file->security->rules[1].del.empty());
  EXPECT_EQ(file->security->rules[1].metadata_write, std::vector<std::string>{"$admins"});
}

TEST_F(SecurityConfigTest, BadSecurityTablesNameTheLineAndKey) {
  struct Case {
    std::string text;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"[security]\nread_everything = [\"x\"]\n", {"line 2", "security.read_everything"}},
      {"[security]\nread_all = \"x\"\n", {"line 2", "security.read_all", "array"}},
      {"[security]\nmetrics = [\"\"]\n", {"line 2", "security.metrics"}},
      {"[security]\nmetric = [\"ops\"]\n", {"line 2", "security.metric", "known: read_all, metrics, acl"}},
      {"[[security.acl]]\nprefix = \"a-\"\nread = [1]\n", {"line 3", "security.acl.read"}},
      {"[[security.acl]]\nprefix = \"a-\"\nwrite = [\"\"]\n", {"line 3", "security.acl.write"}},
      {"[[security.acl]]\nprefix = \"a-\"\nreed = [\"x\"]\n", {"line 3", "security.acl.reed", "unknown"}},
      {"[[security.acl]]\nread = [\"x\"]\n", {"prefix"}},
      {"auth = \"yes\"\n", {"line 1", "auth", "true or false"}},
  };
  for (const auto& c : cases) {
    auto file = LoadConfigFile(Write(c.text));
    ASSERT_FALSE(file.ok()) << c.text;
    EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument) << c.text;
    for (const auto& w : c.words) EXPECT_NE(file.status().message().find(w), std::string::npos) << file.status().message();
  }
}

}  // namespace
}  // namespace cairn::server

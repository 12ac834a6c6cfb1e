// Server::Start: the gRPC server with the v1 client protocol services, and the small services
// (ServerFeatures, Gossip).
#include "server/server.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <mutex>

#include "server/protocol.h"
#include "server/h2_front.h"
#include "server/services.h"

namespace cairn::server {
namespace {

// A PEM file's text; kInvalidArgument naming the flag when it cannot be read or is not PEM.
Result<std::string> ReadPemFile(const std::string& path, std::string_view field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(fmt::format("{} {}: cannot read the file", field, path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find("-----BEGIN ") == std::string::npos) {
    return Status::InvalidArgument(fmt::format("{} {}: not a PEM file (no -----BEGIN line)", field, path));
  }
  return text;
}

// Official clients ping every 10 s by default, also between calls. gRPC's server default would
// call that abuse (at most one ping per 5 minutes without data) and close the connection.
constexpr int kMinClientPingIntervalMs = 1000;
// Threads serving synchronous calls at once (Delete, Tombstone, persistent subscriptions...); calls
// beyond the limit are refused with RESOURCE_EXHAUSTED rather than queued without bound. Read,
// Append and BatchAppend are on the callback API: no thread per call, except a live catch-up
// subscription, which has its own bound (StreamsService::kMaxSubscriptionThreads).
constexpr int kMaxServerThreads = 512;
// One message: the largest event plus its envelope.
constexpr int kMaxReceiveMessageBytes = static_cast<int>(kMaxEventBytes) + (64 << 10);

class GrpcServer final : public Server {
 public:
  GrpcServer(Store* store, const HostPort& hp, const auth::Security* security)
      : store_(store), security_(security), streams_(store, &stopping_, security), persistent_(store, &stopping_, security),
        gossip_(hp.host, hp.port) {}

  Status Run(const ServerOptions& options) {
    grace_ = options.shutdown_grace;
    CAIRN_RETURN_IF_ERROR(persistent_.Open());
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!options.tls_cert_file.empty()) {
      CAIRN_ASSIGN_OR_RETURN(std::string cert, ReadPemFile(options.tls_cert_file, "--tls-cert"));
      CAIRN_ASSIGN_OR_RETURN(std::string key, ReadPemFile(options.tls_key_file, "--tls-key"));
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({key, cert});
      credentials = grpc::SslServerCredentials(ssl);
    }
    grpc::ServerBuilder builder;
    // With the h2 front, gRPC's server has no port of its own: the front passes it the calls it
    // does not serve itself, in process.
    const bool front = options.transport == "h2";
    if (!front) builder.AddListeningPort(options.grpc_address, credentials, &port_);
    builder.RegisterService(&streams_);
    builder.RegisterService(&persistent_);
    builder.RegisterService(&features_);
    builder.RegisterService(&gossip_);
    builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kMinClientPingIntervalMs);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    grpc::ResourceQuota quota("cairn-serve");
    quota.SetMaxThreads(kMaxServerThreads);
    builder.SetResourceQuota(quota);
    server_ = builder.BuildAndStart();
    if (server_ != nullptr && front) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);
      args.SetMaxSendMessageSize(-1);
      H2FrontOptions fo;
      fo.address = options.grpc_address;
      fo.backend = server_->InProcessChannel(args);
      fo.store = store_;
      fo.blocking_tasks = streams_.blocking_tasks();
      fo.security = security_;
      fo.max_message_bytes = static_cast<size_t>(kMaxReceiveMessageBytes);
      fo.tls_cert_file = options.tls_cert_file;
      fo.tls_key_file = options.tls_key_file;
      auto started = H2Front::Start(std::move(fo));
      if (!started.ok()) {
        server_->Shutdown();
        server_.reset();
        return started.status();
      }
      front_ = std::move(*started);
      port_ = front_->port();
    }
    if (server_ == nullptr || port_ == 0) {
      return Status::Unavailable(fmt::format("grpc: cannot listen on {} (in use, or not an address of this machine)",
                                             options.grpc_address));
    }
    gossip_.set_port(port_);
    return Status::Ok();
  }

  ~GrpcServer() override { Shutdown(); }

  int grpc_port() const override { return port_; }
  PersistentSubscriptions* persistent_subscriptions() override { return persistent_.subscriptions(); }
  LiveSubscriptionCounts live_subscriptions() const override {
    return {streams_.live_stream_subscriptions(), streams_.live_all_subscriptions()};
  }

  void Shutdown() override {
    std::lock_guard lock(shutdown_mu_);
    if (server_ == nullptr) return;
    // Live subscriptions end at their next poll; appends finish normally (an append is answered
    // once the store acknowledged it, and a BatchAppend call ends only after its appends are
    // acknowledged). Calls still open at the grace deadline are cancelled.
    stopping_.store(true);
    if (front_) {
      // The calls passed on end through the in-process channel while it still stands (gRPC's
      // Shutdown closes it at once): live subscriptions at their next poll, appends once acknowledged.
      front_->StopAccepting();
      (void)front_->WaitForPassedOn(std::chrono::steady_clock::now() + grace_);
    }
    server_->Shutdown(std::chrono::system_clock::now() + grace_);
    server_->Wait();
    if (front_) front_->Stop();  // after the calls it passed on have ended
    front_.reset();
    server_.reset();
    persistent_.Close();
  }

 private:
  Store* store_;
  const auth::Security* security_;
  std::atomic<bool> stopping_{false};
  StreamsService streams_;
  PersistentService persistent_;
  ServerFeaturesService features_;
  GossipService gossip_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<H2Front> front_;
  std::mutex shutdown_mu_;
  std::chrono::milliseconds grace_{5000};
  int port_ = 0;
};

}  // namespace

grpc::Status ServerFeaturesService::GetSupportedMethods(grpc::ServerContext*, const event_store::client::Empty*,
                                                        event_store::client::server_features::SupportedMethods* response) {
  // Only what is implemented: clients choose their code paths from this list (an append goes
  // through BatchAppend when that is listed).
  // Features say what a method can do: the clients ask for "stream" and "all" before using a
  // persistent-subscription method on a stream or on $all (else they fall back to HTTP).
  struct Method {
    const char* service;
    const char* method;
    bool stream_and_all = false;
  };
  static constexpr const char* kPersistent = "event_store.client.persistent_subscriptions.persistentsubscriptions";
  static constexpr Method kMethods[] = {
      {"event_store.client.streams.streams", "read"},
      {"event_store.client.streams.streams", "append"},
      {"event_store.client.streams.streams", "batchappend"},
      {"event_store.client.streams.streams", "delete"},
      {"event_store.client.streams.streams", "tombstone"},
      {kPersistent, "create", true},
      {kPersistent, "update", true},
      {kPersistent, "delete", true},
      {kPersistent, "read", true},
      {kPersistent, "getinfo", true},
      {kPersistent, "replayparked", true},
      {kPersistent, "list", true},
      {kPersistent, "restartsubsystem"},
      {"event_store.client.server_features.serverfeatures", "getsupportedmethods"},
      {"event_store.client.gossip.gossip", "read"},
  };
  for (const auto& m : kMethods) {
    auto* out = response->add_methods();
    out->set_service_name(m.service);
    out->set_method_name(m.method);
    if (m.stream_and_all) {
      out->add_features("stream");
      out->add_features("all");
    }
  }
  response->set_event_store_server_version(kProtocolServerVersion);
  return grpc::Status::OK;
}

grpc::Status GossipService::Read(grpc::ServerContext*, const event_store::client::Empty*,
                                 event_store::client::gossip::ClusterInfo* response) {
  auto* member = response->add_members();
  UuidToProto(instance_id_, /*structured=*/false, member->mutable_instance_id());
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  member->set_time_stamp(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() / 100);
  member->set_state(event_store::client::gossip::MemberInfo::Leader);
  member->set_is_alive(true);
  member->mutable_http_end_point()->set_address(host_);
  member->mutable_http_end_point()->set_port(static_cast<uint32_t>(port_));
  return grpc::Status::OK;
}

Result<std::unique_ptr<Server>> Server::Start(Store* store, const ServerOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key: give both (the certificate and its private key) or neither");
  }
  if (options.transport != "grpc" && options.transport != "h2") {
    return Status::InvalidArgument(fmt::format("--transport: \"{}\" is neither grpc nor h2", options.transport));
  }
  const bool secure = !options.tls_cert_file.empty() && options.security != nullptr && options.security->enabled();
  CAIRN_RETURN_IF_ERROR(CheckListenAddress(options.grpc_address, "--grpc", options.insecure, secure));
  CAIRN_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(options.grpc_address, "--grpc"));
  TuneGrpcRuntime();
  auto server = std::make_unique<GrpcServer>(store, hp, options.security);
  CAIRN_RETURN_IF_ERROR(server->Run(options));
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace cairn::server

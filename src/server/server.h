// The cairn server: exposes a Store over the network in the EventStoreDB / KurrentDB v1 gRPC
// client protocol, so that the official clients work unchanged (docs/protocol.md).
//
// Server::Start binds the gRPC address and serves from a pool of threads; the Store is borrowed
// and must outlive the Server. Shutdown stops accepting calls, ends live subscriptions, lets
// appends in flight finish (they are acknowledged by the store before their answer is sent), and
// returns when every call has ended. Closing the store is the caller's step after that.
//
// Secure by default: without TLS and authentication, Start refuses any address that is not
// loopback unless ServerOptions::insecure is set. With ServerOptions::security enabled, every call
// is authenticated (Basic credentials in the "authorization" header) and authorized
// (auth/security.h; docs/security.md has the table of what each call needs).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cairn/status.h"
#include "auth/security.h"
#include "cairn/persistent_subscription.h"
#include "cairn/store.h"

namespace cairn::server {

struct ServerOptions {
  // HOST:PORT for gRPC. Port 0 picks a free port (see Server::grpc_port). Loopback by default:
  // nothing is reachable from other machines until the user asks for it.
  std::string grpc_address = "127.0.0.1:2113";
  // Allow a non-loopback address without TLS and authentication.
  bool insecure = false;
  // Authentication and authorization (borrowed; must outlive the Server). Null: everyone may do
  // everything (loopback only, unless insecure).
  const auth::Security* security = nullptr;
  // TLS: PEM files of the certificate (chain) and its private key. Both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Who speaks HTTP/2 on grpc_address: "h2" (cairn's own front on nghttp2, h2_front.h: reads at a
  // quarter of the CPU per event, TLS with OpenSSL; the default) or "grpc" (gRPC's C++ library).
  std::string transport = "h2";
  // How long Shutdown waits for calls in flight before cancelling them.
  std::chrono::milliseconds shutdown_grace{5000};
};

// HOST:PORT split and checked. Hosts: a name, an IPv4 address, or an IPv6 address in brackets.
struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};
// kInvalidArgument naming `field` when the text is not HOST:PORT with a port in 0..65535.
Result<HostPort> ParseHostPort(std::string_view text, std::string_view field);
// "localhost", 127.0.0.0/8 and ::1.
bool IsLoopbackHost(std::string_view host);
// OK for a loopback address; for any other, kInvalidArgument explaining TLS, --auth and
// --insecure, unless `insecure` or `tls_and_auth`.
Status CheckListenAddress(std::string_view text, std::string_view field, bool insecure, bool tls_and_auth = false);

// gRPC catch-up subscriptions (Streams.Read with subscription options) running at one moment.
struct LiveSubscriptionCounts {
  uint64_t streams = 0;  // to one stream
  uint64_t all = 0;      // to $all
};

class Server {
 public:
  virtual ~Server() = default;
  // Binds and starts serving. kInvalidArgument for a bad or refused address, kUnavailable when
  // the address cannot be bound (in use).
  static Result<std::unique_ptr<Server>> Start(Store* store, const ServerOptions& options);
  // The bound gRPC port (the chosen one when the address asked for port 0).
  virtual int grpc_port() const = 0;
  // The consumer groups this server serves, for status pages (GET /subscriptions). Owned by the
  // server and valid until it is destroyed; after Shutdown() its calls fail (kFailedPrecondition).
  virtual PersistentSubscriptions* persistent_subscriptions() = 0;
  // The catch-up subscriptions running now (counted, not listed). Any thread.
  virtual LiveSubscriptionCounts live_subscriptions() const = 0;
  // See the header comment. Idempotent.
  virtual void Shutdown() = 0;
};

}  // namespace cairn::server

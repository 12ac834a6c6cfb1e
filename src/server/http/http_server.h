// The HTTP side of `cairn serve` (docs/http-api.md): a JSON API over the Store API, live tails
// as server-sent events, /health, /metrics in the Prometheus text format, the status of consumer
// groups and projections (/subscriptions; groups are also created and deleted there), and the
// web UI at /.
//
// HttpServer::Start binds the address and serves from a fixed pool of threads (cpp-httplib);
// the Store is borrowed and must outlive the server. Shutdown stops accepting connections, ends
// every live tail (each is told within about a quarter of a second), lets requests in flight
// finish, and returns when every thread has ended. It is safe to call from any thread, more than
// once.
//
// Live tails read the log, not a queue (include/cairn/subscription.h): what a client has not
// read yet waits in the store, so a slow client costs no memory beyond one batch of at most
// HttpOptions::live_batch_bytes. A client that does not take a write within
// live_write_timeout is cut off; at most max_live_clients tails run at once (each holds a
// thread), further ones get 503.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cairn/persistent_subscription.h"
#include "cairn/status.h"
#include "cairn/store.h"
#include "server/http/http_auth.h"
#include "server/projection_host.h"
#include "server/server.h"

namespace cairn::server::http {

// A request body of a maximal append (kMaxAppendBytes of data and metadata) as JSON text, with
// room for escaping. Larger bodies are refused with 413 before they are read.
inline constexpr size_t kMaxHttpBodyBytes = 2 * kMaxAppendBytes;
// Events of one page of GET /streams/{stream}: a page is built in memory before it is sent.
inline constexpr uint64_t kMaxPageEvents = 1000;
inline constexpr uint64_t kDefaultPageEvents = 20;
// GET /events/{id} looks at most this many of the newest events (a scan; tens of milliseconds).
inline constexpr uint64_t kMaxEventIdScan = 1'000'000;
// The lag of a $all consumer group is counted by reading $all from where the group has read to;
// beyond this many events the count stops and is reported as a lower bound ("lag_exact": false).
inline constexpr uint64_t kMaxLagScanEvents = 100'000;

struct HttpOptions {
  // HOST:PORT. Port 0 picks a free port (see HttpServer::port). Loopback by default.
  std::string address = "127.0.0.1:2114";
  // Allow a non-loopback address without TLS and authentication.
  bool insecure = false;
  // TLS (HTTPS): PEM files of the certificate (chain) and its private key, both or neither. With
  // TLS and an authorizer the server may listen beyond loopback.
  std::string tls_cert_file;
  std::string tls_key_file;
  size_t max_body_bytes = kMaxHttpBodyBytes;
  // Threads serving requests. Each live tail holds one while it runs, so there must be more
  // threads than live tails: the rest serve the API and the UI.
  size_t threads = 32;
  size_t max_live_clients = 24;
  // A live tail whose client does not take a write within this time is cut off.
  std::chrono::milliseconds live_write_timeout{5000};
  // A live tail gathers at most this much before it writes (one batch is all it buffers).
  size_t live_batch_bytes = 256 << 10;
  // An idle live tail sends a comment this often, so proxies keep it and dead clients are found.
  std::chrono::milliseconds live_heartbeat{15000};
  // The authorization hook (http_auth.h); empty allows everything.
  Authorizer authorizer;
  // What GET /subscriptions, /subscriptions/{stream}/{group} and /metrics show besides the live
  // tails. The consumer groups (borrowed; must outlive the server; null: none served here).
  PersistentSubscriptions* persistent = nullptr;
  // The projections the server runs (ProjectionHost::Statuses); empty: none.
  std::function<std::vector<HostedProjectionStatus>()> projections;
  // The gRPC catch-up subscriptions running (Server::live_subscriptions); empty: none.
  std::function<LiveSubscriptionCounts()> grpc_subscriptions;
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and starts serving. kInvalidArgument for a bad or refused address or unreadable TLS
  // files, kUnavailable when it cannot be bound (in use).
  static Result<std::unique_ptr<HttpServer>> Start(Store* store, const HttpOptions& options);
  // The bound port (the chosen one when the address asked for port 0).
  virtual int port() const = 0;
  // See the header comment. Idempotent.
  virtual void Shutdown() = 0;
};

}  // namespace cairn::server::http

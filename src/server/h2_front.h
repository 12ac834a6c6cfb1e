// The protocol's own HTTP/2 front (`cairn serve`, `--transport h2`, the default): gRPC's wire format served with
// nghttp2 instead of gRPC's C++ library, whose per-message machinery costs about 4 µs of CPU per
// message on this project's machines (docs/performance.md, the server's fifth run), three times
// what the same messages cost over nghttp2.
//
// One thread runs every connection (epoll, non-blocking sockets, one nghttp2 session each). A call
// the front serves itself (a "native" call) runs on that thread; every other call is passed on,
// message by message, to the gRPC services through an in-process channel (GrpcBackend below), so
// the front speaks the whole protocol from the first day and moves calls to native code one at a
// time. Native now: plain reads (Streams.Read of a stream or of $all with a count, no filter, no
// subscription) that succeed; a read that would fail (not allowed, stream not found...) is passed
// on, so its error and trailers are the services' own. Streams.BatchAppend without a deadline,
// through the same BatchAppendSession the gRPC service runs (batch_append_session.h), so its
// answers and errors are the service's by construction.
//
// TLS with OpenSSL when given a certificate (HTTP/2 chosen by ALPN, TLS 1.2 or later). Limits:
// request messages with the compressed flag are refused (UNIMPLEMENTED); metadata keys ending in
// "-bin" are not passed on.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "auth/security.h"
#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::server {

class TaskThread;

struct H2FrontOptions {
  std::string address;                      // HOST:PORT, already checked by Server::Start
  std::shared_ptr<grpc::Channel> backend;   // the gRPC services, in process
  Store* store = nullptr;                   // for native calls
  TaskThread* blocking_tasks = nullptr;     // for a native BatchAppend's blocking appends (services.h)
  const auth::Security* security = nullptr; // null: no authentication
  size_t max_message_bytes = 0;             // a larger request message ends its call (RESOURCE_EXHAUSTED)
  std::string tls_cert_file;                // PEM certificate (chain) and key: TLS with ALPN h2; empty: none
  std::string tls_key_file;
};

class H2Front {
 public:
  // Binds and starts the front's thread. kUnavailable when the address cannot be bound,
  // kInvalidArgument (naming --tls-cert or --tls-key) for a certificate or key that cannot be used.
  static Result<std::unique_ptr<H2Front>> Start(H2FrontOptions options);
  virtual ~H2Front() = default;
  virtual int port() const = 0;
  // Stops accepting connections and refuses new calls (UNAVAILABLE); calls in flight go on.
  virtual void StopAccepting() = 0;
  // Waits until every call passed on to the backend has ended here (its status is on its way to
  // the client), or until `deadline`: false then.
  virtual bool WaitForPassedOn(std::chrono::steady_clock::time_point deadline) = 0;
  // Ends every connection (GOAWAY, then closed once written) and joins the thread. Calls passed on
  // to the services must have ended first (the gRPC server's Shutdown cancels them). Idempotent.
  virtual void Stop() = 0;
};

}  // namespace cairn::server

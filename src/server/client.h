// A small C++ client of the v1 gRPC protocol: what `cairn bench --server` drives, and the start
// of the CLI's --server mode. Speaks to cairn or to any EventStoreDB / KurrentDB server.
//
// Its methods are thread-safe: appends from many threads share one BatchAppend call, several in
// flight at once, as an official client's do. How that call travels is ClientOptions::appends:
// over nghttp2 on a loop thread the process's clients share (the default: a fifth to two thirds
// of the CPU per append, h2_client.h), or through gRPC's C++ library on its threads.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::server {

// How a Client's appends travel; the bytes on the wire are the protocol's either way.
enum class AppendTransport {
  kH2,    // a connection of the client's own, nghttp2, the process's one loop thread (H2Appender)
  kGrpc,  // gRPC's C++ library (a callback reactor on its threads)
};

struct ClientOptions {
  AppendTransport appends = AppendTransport::kH2;
  // Sent as HTTP Basic credentials with the appends when user is not empty.
  std::string user;
  std::string password;
};

class Client {
 public:
  // Waits for the appends in flight (kH2: up to about two seconds, then kUnavailable). Not from
  // inside a `done`.
  virtual ~Client() = default;
  // HOST:PORT, without TLS. Connecting is lazy: errors show on the first call.
  static Result<std::unique_ptr<Client>> Connect(std::string_view address, ClientOptions options = {});

  // One append, on a long Streams.BatchAppend call as the official clients do it; it waits for
  // its own answer while other threads' appends are in flight on the call. A wrong expected
  // version is kConflict/kWrongExpectedVersion with the actual version, as from Store::Append.
  virtual Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      std::span<const EventData> events) = 0;

  // The same append without waiting: `done` runs once with the answer, on the loop thread
  // (kH2) or a gRPC thread (kGrpc); or on this thread when the connection's call has already
  // ended. It may call AppendAsync again. The events are copied before it
  // returns. Many appends can be in flight at once; they share the connection's one call.
  virtual void AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                           std::function<void(Result<AppendResult>)> done) = 0;

  // One Streams.Read of $all, forward from the start, at most max_count events; `fn` sees each
  // (the view is valid during the call only). It goes over an HTTP/2 connection of its own with
  // nghttp2, not through gRPC's client (h2_client.h: a third of the CPU per event).
  virtual Status ReadAll(uint64_t max_count, const std::function<void(const RecordedEventView&)>& fn) = 0;
};

}  // namespace cairn::server

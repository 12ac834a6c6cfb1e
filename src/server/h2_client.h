// The calling side of the protocol over nghttp2 instead of gRPC's C++ library, which costs about
// three times the CPU per message (docs/performance.md, the server's fifth and sixth runs):
// - ReadAllOverHttp2: one Streams.Read of $all over an HTTP/2 connection of its own, each answer
//   decoded straight from the wire into a RecordedEventView (no message objects);
// - H2Appender: one long Streams.BatchAppend call over a connection of its own, driven by one
//   loop thread the process's appenders share, which gathers every queued append into as few
//   writes as it can.
// The bytes are the protocol's, so both speak to any server of the v1 protocol without TLS
// (cairn's gRPC-library transport, its h2 front, EventStoreDB / KurrentDB). Internal to src/server.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::server {

// HOST:PORT without TLS; forward from the start, at most max_count events, `fn` sees each (the
// view is valid during the call only). Errors as Client::ReadAll's: the server's status with its
// "exception" trailer, kUnavailable when the connection fails.
Status ReadAllOverHttp2(std::string_view address, uint64_t max_count,
                        const std::function<void(const RecordedEventView&)>& fn);

// Decodes one ReadResp message: true and `out` filled when it carries an event; false for any
// other answer (checkpoint, caught-up...). kCorruption for bytes that are not a ReadResp.
Result<bool> DecodeReadEvent(std::string_view message, RecordedEventView* out);

// One Streams.BatchAppend call on one HTTP/2 connection (no TLS), driven by the loop thread
// that every H2Appender of the process shares (made with the first, ended with the last): a
// poll() loop on their sockets and an eventfd that other threads' appends ring. Each append is
// one BatchAppendReq (is_final set, a correlation id of its own), encoded when it is made and
// queued; the loop sends everything queued at once (one send() for a burst), and each answer
// goes to the append waiting under its correlation id.
//
// Connecting is lazy (the loop connects first): a connection that cannot be made, breaks, or
// whose call the server ends fails every append waiting and every later one, each `done` once:
// kUnavailable for the connection (the outcome is unknown), the server's status (its
// "exception" trailer, as FromGrpcCode maps it) when it ended the call with one. There is no
// reconnection: a new H2Appender makes a new connection.
class H2Appender {
 public:
  using Done = std::function<void(Result<AppendResult>)>;

  // HOST:PORT. `authorization`: the value of the call's authorization header ("" for none).
  static Result<std::unique_ptr<H2Appender>> Start(std::string_view address, std::string authorization);

  // Half-closes the call (END_STREAM on the request side) once the queued appends are sent,
  // waits up to about two seconds for their answers, then closes the connection; an append
  // still waiting then gets kUnavailable. Must not run on the loop thread (in any `done`).
  ~H2Appender();

  // Thread-safe, and may be called from inside a `done`. The events are encoded before it
  // returns. `done` runs once, on the loop thread; or at once on this thread when the
  // call has already failed or the appender is being destroyed.
  void AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events, Done done);

  class Loop;  // the connection (h2_client.cc)

 private:
  explicit H2Appender(std::unique_ptr<Loop> loop);
  std::unique_ptr<Loop> loop_;
};

}  // namespace cairn::server

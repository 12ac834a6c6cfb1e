// The client side of the h2 front's fast path (h2_front.h): one Streams.Read of $all over an
// HTTP/2 connection of its own, with nghttp2, each answer decoded straight from the wire into a
// RecordedEventView (no message objects). The bytes are the protocol's, so it reads from any
// server of the v1 protocol without TLS; gRPC's C++ client spends about three times the CPU per
// message (docs/performance.md, the server's fifth run). Internal to src/server.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cairn/event.h"
#include "cairn/status.h"

namespace cairn::server {

// HOST:PORT without TLS; forward from the start, at most max_count events, `fn` sees each (the
// view is valid during the call only). Errors as Client::ReadAll's: the server's status with its
// "exception" trailer, kUnavailable when the connection fails.
Status ReadAllOverHttp2(std::string_view address, uint64_t max_count,
                        const std::function<void(const RecordedEventView&)>& fn);

// Decodes one ReadResp message: true and `out` filled when it carries an event; false for any
// other answer (checkpoint, caught-up...). kCorruption for bytes that are not a ReadResp.
Result<bool> DecodeReadEvent(std::string_view message, RecordedEventView* out);

}  // namespace cairn::server

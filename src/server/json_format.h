// The JSON shapes of events, append requests and append results, as the CLI prints and reads
// them (one object per line), and as the HTTP API (docs/http-api.md) speaks them. It lives in the
// server layer so that both the server and the CLI (above it) can use it.
//
// An event (RecordedEventToJson):
//   {"stream": "account-1", "version": 0, "position": 4096, "id": "0190...", "type": "Deposited",
//    "recorded_at": "2026-11-26T09:57:44.123456Z", "data": {...}, "metadata": {...}}
//   - data: the JSON value when the content type is JSON and the bytes parse as JSON. Otherwise
//     (bytes content, or JSON content that does not parse) a base64 string (RFC 4648, padded),
//     and the object gets "content_type": "bytes".
//   - metadata: null when empty; the JSON value when it parses; otherwise a base64 string, and
//     the object gets "metadata_content_type": "bytes".
//
// An append request (ParseAppendRequest):
//   {"stream": S, "expected": "any"|"no-stream"|"exists"|N,
//    "events": [{"id": UUID?, "type": T, "data": JSON, "metadata": JSON?}]}
//   "expected" defaults to "any". "data" and "metadata" are any JSON value, stored as their
//   compact JSON text with content type JSON; a missing or null "metadata" stores none. A
//   missing "id" lets the store generate one (a UUIDv7).
//
// An append result (AppendResultToJson):
//   {"stream": S, "first_version": N, "next_version": N, "position": N}
// An error (StatusToJson):
//   {"error": "Conflict", "message": "...", "actual_version": N|null}
//   "actual_version" appears only for a wrong expected version.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/store.h"
#include "cairn/types.h"

namespace cairn::server {

// Objects keep their keys in insertion order: output reads in the documented order, and a
// payload's keys are stored in the order the caller wrote them.
using Json = nlohmann::ordered_json;

struct AppendRequest {
  std::string stream;
  ExpectedVersion expected = ExpectedVersion::Any();
  std::vector<EventData> events;
};

Json RecordedEventToJson(const RecordedEventView& event);
Json AppendResultToJson(std::string_view stream, const AppendResult& result);
Json StatusToJson(const Status& status);

// Validates the shape of a request (kInvalidArgument naming the field, e.g. "events[2].type:
// missing"). Stream names, sizes and ids beyond their shape are left to the store.
Result<AppendRequest> ParseAppendRequest(const Json& request);
// The same from one line of text; malformed JSON is kInvalidArgument.
Result<AppendRequest> ParseAppendRequestLine(std::string_view line);

// "expected" as JSON: "any", "no-stream", "exists" or a non-negative integer.
Result<ExpectedVersion> ParseExpectedVersion(const Json& value);

// Compact JSON text of a value, with invalid UTF-8 replaced rather than thrown on.
std::string JsonText(const Json& value);

// RFC 4648 base64 with padding.
std::string Base64Encode(std::string_view bytes);

}  // namespace cairn::server

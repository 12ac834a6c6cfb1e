// BatchAppendReq to and from its wire bytes, without the generated message.
//
// Reading: the server's
// BatchAppend takes its requests as raw bytes (gRPC's raw callback method, or the h2 front's
// DATA frames) and reads them here by hand, straight into the EventData the store takes. The generated
// parser builds a map of two string pairs per event (the protocol's "type" and "content-type")
// and copies data and metadata twice more on their way to the store; about a quarter of the
// server's CPU per event went to those allocations (docs/performance.md, the server's fifth run).
//
// Same message, same field numbers (proto/esdb/streams.proto and shared.proto) and the same
// protobuf rules as the generated parser: a message accepted by one is accepted by the other
// with the same values (unknown fields skipped, a known field with another wire type skipped as
// unknown, the last of a repeated scalar wins, a repeated message field merges, the last of a
// repeated map key wins, proto3 strings must be UTF-8); bytes it refuses are refused here too.
// test/server/batch_append_wire_test.cc compares the two on a range of messages.
//
// The correlation id and the options are small and come once per append: they are read into
// their generated messages (by protobuf's own parser). Each ProposedMessage is read by hand.
//
// Writing: the C++ client (client.h, which `cairn bench --server` drives) encodes its requests
// straight from the caller's events; building the generated message and its map cost the
// bench's client about a third of its CPU per event.
#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/types.h"
#include "esdb/shared.pb.h"
#include "esdb/streams.pb.h"

namespace cairn::server {

// One BatchAppendReq.ProposedMessage, as the server uses it.
struct WireProposedMessage {
  // type: the "type" metadata entry; content_type: kJson when the "content-type" entry is
  // "application/json"; data and metadata: the message's data and custom_metadata; id: the
  // message's id when it is a UUID (nil when it has none).
  EventData event;
  bool has_type = false;          // the metadata map has a "type" entry
  bool has_content_type = false;  // ... and a "content-type" entry
  bool has_id = false;            // the message has an id field (a UUID message, maybe empty)
  bool id_valid = false;          // ... which is a UUID in either of its forms (then in event.id)
};

struct WireBatchAppendReq {
  bool has_correlation_id = false;
  event_store::client::UUID correlation_id;
  bool has_options = false;
  event_store::client::streams::BatchAppendReq::Options options;
  std::vector<WireProposedMessage> proposed_messages;
  bool is_final = false;

  void Clear();
};

// Reads one BatchAppendReq into `out` (cleared first). kInvalidArgument naming the field when the
// bytes are not a well-formed message: a truncated field, a length past the end, a field number
// 0, an invalid wire type, an unmatched group end, a string that is not UTF-8.
Status ParseBatchAppendReq(grpc::ByteBuffer* bytes, WireBatchAppendReq* out);
Status ParseBatchAppendReq(std::string_view bytes, WireBatchAppendReq* out);

// The bytes of a BatchAppendReq that is a whole append (is_final set): the correlation id in the
// structured form, the options (stream, expected version) and one ProposedMessage per event (its
// id in the string form unless nil, the "type" and "content-type" metadata entries, then
// custom_metadata and data when not empty). Any protobuf parser reads them as the message built
// with those values (test/server/batch_append_wire_test.cc).
std::string EncodeBatchAppendReq(int64_t correlation_most, int64_t correlation_least, std::string_view stream,
                                 ExpectedVersion expected, std::span<const EventData> events);

// The BatchAppendResp of a successful append: the same bytes as the generated message with
// correlation_id, success (current_revision or no_stream; position with commit and prepare both
// `position`, or no_position) and stream_identifier set, serialized. The server answers every
// append with one, on the store's writer thread; building the generated message took five
// message objects and their allocations there.
std::string EncodeBatchAppendSuccess(const event_store::client::UUID& correlation_id,
                                     const event_store::client::StreamIdentifier& stream,
                                     std::optional<StreamVersion> current, std::optional<Position> position);

// A BatchAppendResp read without the generated message, when it is the usual answer: a success
// whose correlation id is in the structured form. False for anything else (an error, the id as a
// string, unknown or repeated fields, malformed bytes): the caller then parses it the generated
// way. The client reads every answer; the generated way took five message objects per answer.
struct BatchAppendSuccessView {
  uint64_t correlation_most = 0;
  uint64_t correlation_least = 0;
  std::optional<StreamVersion> current;  // none: no_stream
  std::optional<Position> position;      // the commit position; none: no_position
};
bool ReadBatchAppendSuccess(std::string_view bytes, BatchAppendSuccessView* out);

}  // namespace cairn::server

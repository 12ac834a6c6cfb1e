// The calling side's pieces shared by Client (client.h) and the remote store (remote.h).
// Internal to src/server.
#pragma once

#include <grpcpp/grpcpp.h>

#include <span>
#include <string_view>

#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/store.h"
#include "esdb/streams.grpc.pb.h"
#include "server/batch_append_wire.h"

namespace cairn::server {

// A failed call as a cairn Status, from its gRPC status and the "exception" trailer.
Status FromGrpc(const grpc::Status& s, const grpc::ClientContext& context, std::string_view what);
// The same from the status and the "exception" trailer's value (empty when none).
Status FromGrpcCode(const grpc::Status& s, std::string_view exception, std::string_view what);

// BatchAppend's answer to one append of `events` events to `stream` as what Store::Append returns:
// the versions and position, kConflict/kWrongExpectedVersion with the actual version, or the
// answer's error status (as FromGrpcCode maps it).
Result<AppendResult> BatchAppendResult(const event_store::client::streams::BatchAppendResp& resp,
                                       std::string_view stream, size_t events);
// The same for a success read by ReadBatchAppendSuccess (batch_append_wire.h).
AppendResult BatchAppendResult(const BatchAppendSuccessView& success, size_t events);

// One Streams.Append call on `context` (credentials and deadline already set on it).
Result<AppendResult> AppendCall(event_store::client::streams::Streams::Stub* stub, grpc::ClientContext* context,
                                std::string_view stream, ExpectedVersion expected, std::span<const EventData> events);

}  // namespace cairn::server

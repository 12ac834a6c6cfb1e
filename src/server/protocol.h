// Conversions between cairn's types and the v1 protocol's messages, and the mapping of a cairn
// Status to a gRPC status with the "exception" trailers the official clients read
// (docs/protocol.md lists them). Internal to src/server.
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/security.h"
#include "cairn/event.h"
#include "cairn/status.h"
#include "cairn/types.h"
#include "cairn/read.h"
#include "esdb/shared.pb.h"
#include "esdb/streams.pb.h"

namespace cairn::server {

// The "content-type" values of the protocol's system metadata.
inline constexpr std::string_view kContentTypeJson = "application/json";
inline constexpr std::string_view kContentTypeBytes = "application/octet-stream";

// nullopt when the message is neither form or the text is not a UUID.
std::optional<Uuid> UuidFromProto(const event_store::client::UUID& message);
// The structured form's two halves (big-endian: most significant first) as a Uuid.
Uuid UuidFromHalves(uint64_t most_significant, uint64_t least_significant);
void UuidToProto(const Uuid& id, bool structured, event_store::client::UUID* out);

// .NET ticks (100 ns) since the Unix epoch: the protocol's "created".
inline int64_t TicksSinceEpoch(Timestamp t) { return t.nanos / 100; }

// The trailer's number for an expected version: EventStoreDB's -2 any, -1 no stream,
// -4 stream exists, else the version.
int64_t ExpectedVersionNumber(ExpectedVersion expected);

// Maps a failed Status to the gRPC status clients understand, adding trailers to `context`:
// wrong expected version (with stream-name, expected-version, actual-version), stream deleted,
// stream not found, access denied; the rest by code. `stream` and `expected` fill the trailers.
grpc::Status ToGrpcStatus(const Status& status, grpc::ServerContextBase* context, std::string_view stream,
                          std::optional<ExpectedVersion> expected = std::nullopt);
// The same, with the trailers appended to a list (a call not served by gRPC's library: h2_front.h).
using Trailers = std::vector<std::pair<std::string, std::string>>;
grpc::Status ToGrpcStatus(const Status& status, Trailers* trailers, std::string_view stream,
                          std::optional<ExpectedVersion> expected = std::nullopt);

// Authenticates the call (its "authorization" header) and checks that the caller has `what` on
// `stream`. OK when allowed (always, when `security` is null); otherwise the gRPC status to
// return: UNAUTHENTICATED for bad credentials or a refused anonymous caller, PERMISSION_DENIED
// with the "access-denied" trailer for a signed-in user without the permission.
// `user`, when given, receives the caller's name (empty when anonymous or without security).
grpc::Status Authorize(const auth::Security* security, grpc::ServerContextBase* context, auth::Permission what,
                       std::string_view stream, std::string* user = nullptr);

// Process-wide settings of the libraries under gRPC, for a process that serves or calls the
// protocol (idempotent): turns off abseil's mutex deadlock detection, which Debian's abseil
// build leaves on and which costs about a tenth of gRPC's CPU per message
// (docs/performance.md, the server's fourth run).
void TuneGrpcRuntime();

// The client's address in gRPC's form ("ipv4:127.0.0.1:50000"). A call that came in process from
// the h2 front carries it in the metadata key kPeerMetadataKey (set by the front, which drops that
// key from what clients send); a call from the network never has it read.
inline constexpr const char* kPeerMetadataKey = "cairn-peer";
std::string PeerOf(const grpc::ServerContextBase* context);

// The store's options of a plain read (Streams.Read with a count) of a stream or of $all, from
// the request's options; nullopt when the read is empty by definition (forward from the end, or
// $all backward from the start). Used by the gRPC service and by the h2 front alike.
std::optional<ReadStreamOptions> PlainStreamReadOptions(const event_store::client::streams::ReadReq::Options& o);
std::optional<ReadAllOptions> PlainAllReadOptions(const event_store::client::streams::ReadReq::Options& o);

// An INVALID_ARGUMENT for a malformed request (names the field).
grpc::Status InvalidRequest(std::string message);

}  // namespace cairn::server

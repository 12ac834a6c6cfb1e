// Protocol conversions and the error mapping (see protocol.h and docs/protocol.md).
#include "server/protocol.h"

#include <absl/synchronization/mutex.h>
#include <fmt/format.h>

namespace cairn::server {
namespace {

void PutBigEndian(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

uint64_t GetBigEndian(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

}  // namespace

Uuid UuidFromHalves(uint64_t most_significant, uint64_t least_significant) {
  Uuid id;
  PutBigEndian(most_significant, id.bytes.data());
  PutBigEndian(least_significant, id.bytes.data() + 8);
  return id;
}

std::optional<Uuid> UuidFromProto(const event_store::client::UUID& message) {
  switch (message.value_case()) {
    case event_store::client::UUID::kStructured:
      return UuidFromHalves(static_cast<uint64_t>(message.structured().most_significant_bits()),
                            static_cast<uint64_t>(message.structured().least_significant_bits()));
    case event_store::client::UUID::kString:
      return Uuid::Parse(message.string());
    default:
      return std::nullopt;
  }
}

void UuidToProto(const Uuid& id, bool structured, event_store::client::UUID* out) {
  if (structured) {
    auto* s = out->mutable_structured();
    s->set_most_significant_bits(static_cast<int64_t>(GetBigEndian(id.bytes.data())));
    s->set_least_significant_bits(static_cast<int64_t>(GetBigEndian(id.bytes.data() + 8)));
  } else {
    out->set_string(id.ToString());
  }
}

void TuneGrpcRuntime() {
  static const bool done = [] {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    return true;
  }();
  (void)done;
}

int64_t ExpectedVersionNumber(ExpectedVersion expected) {
  switch (expected.kind()) {
    case ExpectedVersion::Kind::kAny:
      return -2;
    case ExpectedVersion::Kind::kNoStream:
      return -1;
    case ExpectedVersion::Kind::kStreamExists:
      return -4;
    case ExpectedVersion::Kind::kExact:
      return static_cast<int64_t>(expected.version());
  }
  return -2;
}

grpc::Status ToGrpcStatus(const Status& status, Trailers* trailers, std::string_view stream,
                          std::optional<ExpectedVersion> expected) {
  const std::string message = status.ToString();
  auto exception = [&](const char* name) {
    trailers->emplace_back("exception", name);
    if (!stream.empty()) trailers->emplace_back("stream-name", std::string(stream));
  };
  switch (status.detail()) {
    case ErrorDetail::kWrongExpectedVersion:
      exception("wrong-expected-version");
      if (expected) trailers->emplace_back("expected-version", std::to_string(ExpectedVersionNumber(*expected)));
      if (status.actual_version()) trailers->emplace_back("actual-version", std::to_string(*status.actual_version()));
      return {grpc::StatusCode::FAILED_PRECONDITION, message};
    case ErrorDetail::kStreamDeleted:
      exception("stream-deleted");
      return {grpc::StatusCode::FAILED_PRECONDITION, message};
    case ErrorDetail::kStreamNotFound:
      exception("stream-not-found");
      return {grpc::StatusCode::NOT_FOUND, message};
    default:
      break;
  }
  switch (status.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, message};
    case StatusCode::kAlreadyExists:
      return {grpc::StatusCode::ALREADY_EXISTS, message};
    case StatusCode::kInvalidArgument:
      return {grpc::StatusCode::INVALID_ARGUMENT, message};
    case StatusCode::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, message};
    case StatusCode::kConflict:
      return {grpc::StatusCode::ABORTED, message};
    case StatusCode::kCorruption:
      return {grpc::StatusCode::DATA_LOSS, message};
    case StatusCode::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, message};
    case StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, message};
    case StatusCode::kUnauthenticated:
      return {grpc::StatusCode::UNAUTHENTICATED, message};
    case StatusCode::kPermissionDenied:
      trailers->emplace_back("exception", "access-denied");
      return {grpc::StatusCode::PERMISSION_DENIED, message};
    case StatusCode::kNotSupported:
      return {grpc::StatusCode::UNIMPLEMENTED, message};
    case StatusCode::kIOError:
    case StatusCode::kInternal:
      return {grpc::StatusCode::INTERNAL, message};
  }
  return {grpc::StatusCode::UNKNOWN, message};
}

grpc::Status ToGrpcStatus(const Status& status, grpc::ServerContextBase* context, std::string_view stream,
                          std::optional<ExpectedVersion> expected) {
  Trailers trailers;
  grpc::Status out = ToGrpcStatus(status, &trailers, stream, expected);
  for (auto& [key, value] : trailers) context->AddTrailingMetadata(key, value);
  return out;
}

grpc::Status Authorize(const auth::Security* security, grpc::ServerContextBase* context, auth::Permission what,
                       std::string_view stream, std::string* user) {
  if (security == nullptr || !security->enabled()) return grpc::Status::OK;
  std::string_view header;
  const auto& md = context->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) header = std::string_view(it->second.data(), it->second.size());
  auto who = security->Authenticate(header);
  if (!who.ok()) return ToGrpcStatus(who.status(), context, stream);
  Status allowed = security->Authorize(*who, what, stream);
  if (!allowed.ok()) return ToGrpcStatus(allowed, context, stream);
  if (user != nullptr) *user = who->name;
  return grpc::Status::OK;
}

std::string PeerOf(const grpc::ServerContextBase* context) {
  std::string peer = context->peer();
  if (peer.starts_with("ipv4:") || peer.starts_with("ipv6:") || peer.starts_with("unix:")) return peer;
  const auto& md = context->client_metadata();
  if (auto it = md.find(kPeerMetadataKey); it != md.end()) return std::string(it->second.data(), it->second.size());
  return peer;
}

std::optional<ReadStreamOptions> PlainStreamReadOptions(const event_store::client::streams::ReadReq::Options& o) {
  using Options = event_store::client::streams::ReadReq::Options;
  ReadStreamOptions ro;
  const bool forward = o.read_direction() == Options::Forwards;
  ro.direction = forward ? ReadDirection::kForward : ReadDirection::kBackward;
  ro.max_count = o.count();
  const auto& so = o.stream();
  if (so.has_revision()) {
    ro.from = so.revision();
  } else if (so.has_end() && forward) {
    return std::nullopt;  // nothing comes after the end
  } else if (so.has_start() && !forward) {
    ro.from = 0;
  }
  return ro;
}

std::optional<ReadAllOptions> PlainAllReadOptions(const event_store::client::streams::ReadReq::Options& o) {
  using Options = event_store::client::streams::ReadReq::Options;
  ReadAllOptions ro;
  const bool forward = o.read_direction() == Options::Forwards;
  ro.direction = forward ? ReadDirection::kForward : ReadDirection::kBackward;
  const auto& ao = o.all();
  if (ao.has_position()) {
    ro.from = Position(ao.position().commit_position());
  } else if (ao.has_end()) {
    ro.from = Position::End();
  } else {
    ro.from = Position::Start();
  }
  if ((forward && ro.from == Position::End()) || (!forward && ro.from == Position::Start())) return std::nullopt;
  return ro;
}

grpc::Status InvalidRequest(std::string message) {
  return {grpc::StatusCode::INVALID_ARGUMENT, std::move(message)};
}

}  // namespace cairn::server

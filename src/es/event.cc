// Event metadata (context keys, schema version), upcaster chains, decode errors and the
// repository's status messages.
#include "cairn/es/event.h"

#include <fmt/format.h>

#include <charconv>
#include <set>

#include "cairn/es/codec.h"
#include "cairn/es/repository.h"
#include "cairn/es/schema.h"
#include "util/check.h"

namespace cairn::es {

CommandContext CommandContext::New(std::string user) {
  CommandContext c;
  c.correlation_id = Uuid::V7().ToString();
  c.user = std::move(user);
  return c;
}

CommandContext CommandContext::CausedBy(const RecordedEventView& event) {
  CommandContext c;
  c.causation_id = event.id.ToString();
  Json m = Json::parse(event.metadata, nullptr, false);
  if (m.is_object()) {
    auto corr = m.find(kMetadataCorrelationId);
    if (corr != m.end() && corr->is_string()) c.correlation_id = corr->get<std::string>();
    auto user = m.find(kMetadataUser);
    if (user != m.end() && user->is_string()) c.user = user->get<std::string>();
  }
  if (c.correlation_id.empty()) c.correlation_id = c.causation_id;
  return c;
}

namespace {

void AppendKey(std::string& out, std::string_view key, const Json& value) {
  out += ',';
  out += Json(key).dump();
  out += ':';
  out += value.dump();
}

}  // namespace

Result<std::string> EncodeMetadata(const CommandContext& context, uint32_t version) {
  // Written by hand rather than through a Json object so that "$schemaVersion" comes first (see
  // SchemaVersionOf) and the hot path builds no tree.
  std::string out = fmt::format("{{\"{}\":{}", kMetadataSchemaVersion, version);
  if (!context.correlation_id.empty()) AppendKey(out, kMetadataCorrelationId, context.correlation_id);
  if (!context.causation_id.empty()) AppendKey(out, kMetadataCausationId, context.causation_id);
  if (!context.user.empty()) AppendKey(out, kMetadataUser, context.user);
  if (!context.extra.is_null()) {
    if (!context.extra.is_object()) {
      return Status::InvalidArgument(
          fmt::format("CommandContext.extra must be a JSON object, not {}", context.extra.type_name()));
    }
    for (const auto& [key, value] : context.extra.items()) {
      if (!key.empty() && key[0] == '$') {
        return Status::InvalidArgument(
            fmt::format("CommandContext.extra key \"{}\": keys starting with '$' are reserved", key));
      }
      AppendKey(out, key, value);
    }
  }
  out += '}';
  return out;
}

Result<uint32_t> SchemaVersionOf(std::string_view metadata) {
  // The toolkit writes the key first; other writers may put it anywhere or leave it out. A full
  // parse happens only when the key appears somewhere other than first.
  constexpr std::string_view kFirst = "{\"$schemaVersion\":";
  uint64_t v = 0;
  if (metadata.starts_with(kFirst)) {
    const char* begin = metadata.data() + kFirst.size();
    const char* end = metadata.data() + metadata.size();
    auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec == std::errc() && ptr != begin && ptr < end && (*ptr == ',' || *ptr == '}')) {
      if (v == 0 || v > UINT32_MAX) {
        return Status::InvalidArgument(fmt::format("metadata \"{}\" is {}: must be 1 to {}", kMetadataSchemaVersion, v, UINT32_MAX));
      }
      return static_cast<uint32_t>(v);
    }
  }
  if (metadata.find(kMetadataSchemaVersion) == std::string_view::npos) return 1u;
  Json m = Json::parse(metadata, nullptr, false);
  if (!m.is_object()) return 1u;
  auto it = m.find(kMetadataSchemaVersion);
  if (it == m.end()) return 1u;
  if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 || it->get<uint64_t>() > UINT32_MAX) {
    return Status::InvalidArgument(
        fmt::format("metadata \"{}\" is {}: must be an integer from 1 to {}", kMetadataSchemaVersion, it->dump(), UINT32_MAX));
  }
  return static_cast<uint32_t>(it->get<uint64_t>());
}

Upcasters& Upcasters::Add(std::string type, uint32_t from_version, Step step) {
  CAIRN_CHECK(from_version >= 1);
  steps_[{std::move(type), from_version}] = std::move(step);
  return *this;
}

Upcasters& Upcasters::Rename(std::string old_name, std::string new_name) {
  CAIRN_CHECK(old_name != new_name);
  renames_[std::move(old_name)] = std::move(new_name);
  // A cycle would make Resolve loop forever: refuse it here, once.
  for (const auto& [from, to] : renames_) {
    std::set<std::string_view> seen{from};
    std::string_view at = to;
    for (auto it = renames_.find(at); it != renames_.end(); it = renames_.find(at)) {
      CAIRN_CHECK(seen.insert(at).second);
      at = it->second;
    }
  }
  return *this;
}

std::string_view Upcasters::Resolve(std::string_view stored_name) const {
  std::string_view at = stored_name;
  for (auto it = renames_.find(at); it != renames_.end(); it = renames_.find(at)) at = it->second;
  return at;
}

Status Upcasters::Upcast(std::string_view type, uint32_t from_version, uint32_t to_version, Json& data) const {
  if (from_version > to_version) {
    return Status::NotSupported(fmt::format(
        "schema version {} is newer than this code's version {} of {} (written by newer code)", from_version,
        to_version, type));
  }
  for (uint32_t v = from_version; v < to_version; ++v) {
    auto it = steps_.find(std::pair<std::string, uint32_t>(std::string(type), v));
    if (it == steps_.end()) {
      return Status::NotSupported(fmt::format("no upcaster for {} from schema version {} to {} (stored version {}, "
                                              "code version {})",
                                              type, v, v + 1, from_version, to_version));
    }
    try {
      it->second(data);
    } catch (const std::exception& e) {
      return Status::InvalidArgument(fmt::format("upcaster of {} from version {} to {} threw: {}", type, v, v + 1, e.what()));
    }
  }
  return Status::Ok();
}

namespace internal {

std::string DescribeEvent(std::string_view type, std::string_view stream, StreamVersion version) {
  return fmt::format("event {} (stream {}, version {})", type, stream, version);
}

Status DecodeError(StatusCode code, std::string_view type, std::string_view stream, StreamVersion version,
                   std::string_view what) {
  return Status(code, fmt::format("{}: {}", DescribeEvent(type, stream, version), what));
}

Status MissingStream(std::string_view stream, const LoadPoint& point) {
  if (point.time) {
    return Status::NotFound(fmt::format("load {}: no events at or before {}", stream, point.time->ToRfc3339()),
                            ErrorDetail::kStreamNotFound);
  }
  return Status::NotFound(fmt::format("load {}: the stream has no events", stream), ErrorDetail::kStreamNotFound);
}

Status GaveUp(std::string_view stream, int attempts, const Status& last) {
  Status s = Status::WrongExpectedVersion(
      fmt::format("execute on {}: still conflicting after {} attempts: {}", stream, attempts, last.message()),
      last.actual_version());
  return s;
}

Status BadId(std::string_view id) {
  return Status::InvalidArgument(fmt::format("aggregate id \"{}\": must not be empty", id));
}

bool IsMissing(const Status& s) { return s.IsNotFound() && s.detail() != ErrorDetail::kStreamDeleted; }

}  // namespace internal
}  // namespace cairn::es

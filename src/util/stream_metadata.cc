// StreamMetadata <-> JSON, with EventStoreDB's key names.
#include <nlohmann/json.hpp>

#include "cairn/stream.h"

namespace cairn {

namespace {

using nlohmann::json;

constexpr const char* kMaxAge = "$maxAge";
constexpr const char* kMaxCount = "$maxCount";
constexpr const char* kTruncateBefore = "$tb";
constexpr const char* kCacheControl = "$cacheControl";
constexpr const char* kAcl = "$acl";

Status ReadCount(const json& j, const char* key, std::optional<uint64_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer() || (it->is_number_integer() && !it->is_number_unsigned() && it->get<int64_t>() < 0)) {
    return Status::InvalidArgument(std::string("stream metadata: \"") + key +
                                   "\" must be a non-negative integer");
  }
  *out = it->get<uint64_t>();
  return Status::Ok();
}

}  // namespace

std::string StreamMetadata::ToJson() const {
  json j = json::object();
  if (!custom_json.empty()) {
    json custom = json::parse(custom_json, nullptr, /*allow_exceptions=*/false);
    if (custom.is_object()) j = custom;
  }
  if (max_age_seconds) j[kMaxAge] = *max_age_seconds;
  if (max_count) j[kMaxCount] = *max_count;
  if (truncate_before) j[kTruncateBefore] = *truncate_before;
  if (cache_control_seconds) j[kCacheControl] = *cache_control_seconds;
  if (!acl_json.empty()) {
    json acl = json::parse(acl_json, nullptr, false);
    if (!acl.is_discarded()) j[kAcl] = acl;
  }
  return j.dump();
}

Result<StreamMetadata> StreamMetadata::Parse(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("stream metadata: not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("stream metadata: must be a JSON object");
  StreamMetadata m;
  CAIRN_RETURN_IF_ERROR(ReadCount(j, kMaxAge, &m.max_age_seconds));
  CAIRN_RETURN_IF_ERROR(ReadCount(j, kMaxCount, &m.max_count));
  CAIRN_RETURN_IF_ERROR(ReadCount(j, kCacheControl, &m.cache_control_seconds));
  std::optional<uint64_t> tb;
  CAIRN_RETURN_IF_ERROR(ReadCount(j, kTruncateBefore, &tb));
  m.truncate_before = tb;
  if (auto it = j.find(kAcl); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Status::InvalidArgument("stream metadata: \"$acl\" must be an object");
    m.acl_json = it->dump();
  }
  json custom = json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == kMaxAge || k == kMaxCount || k == kTruncateBefore || k == kCacheControl || k == kAcl) continue;
    custom[k] = it.value();
  }
  if (!custom.empty()) m.custom_json = custom.dump();
  return m;
}

}  // namespace cairn

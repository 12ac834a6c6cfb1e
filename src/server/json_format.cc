// The JSON line formats of events, append requests and results (see json_format.h).
#include "server/json_format.h"

#include <fmt/format.h>

#include <optional>

namespace cairn::server {
namespace {

using json = Json;

// Parses `text` as JSON without throwing; nullopt when it is not one JSON value.
std::optional<json> TryParse(std::string_view text) {
  json value = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

std::string_view TypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::binary:
      return "binary";
    case json::value_t::discarded:
      return "nothing";
    default:
      return "a number";
  }
}

Status FieldError(std::string_view field, std::string_view problem) {
  return Status::InvalidArgument(fmt::format("{}: {}", field, problem));
}

Result<EventData> ParseEvent(const json& event, size_t index) {
  std::string prefix = fmt::format("events[{}]", index);
  if (!event.is_object())
    return FieldError(prefix, fmt::format("must be an object, not {}", TypeName(event)));
  EventData data;
  data.content_type = ContentType::kJson;

  if (auto it = event.find("id"); it != event.end() && !it->is_null()) {
    if (!it->is_string())
      return FieldError(prefix + ".id", fmt::format("must be a UUID string, not {}", TypeName(*it)));
    auto id = Uuid::Parse(it->get_ref<const std::string&>());
    if (!id) return FieldError(prefix + ".id", "not a UUID (want the 8-4-4-4-12 hex form)");
    data.id = *id;
  }

  auto type = event.find("type");
  if (type == event.end()) return FieldError(prefix + ".type", "missing");
  if (!type->is_string())
    return FieldError(prefix + ".type", fmt::format("must be a string, not {}", TypeName(*type)));
  data.type = type->get<std::string>();

  auto payload = event.find("data");
  if (payload == event.end()) return FieldError(prefix + ".data", "missing");
  data.data = JsonText(*payload);

  if (auto it = event.find("metadata"); it != event.end() && !it->is_null()) data.metadata = JsonText(*it);
  return data;
}

}  // namespace

Json RecordedEventToJson(const RecordedEventView& event) {
  json out = json::object();
  out["stream"] = std::string(event.stream);
  out["version"] = event.version;
  out["position"] = event.position.value();
  out["id"] = event.id.ToString();
  out["type"] = std::string(event.type);
  out["recorded_at"] = event.recorded_at.ToRfc3339();

  std::optional<json> data;
  if (event.content_type == ContentType::kJson) data = TryParse(event.data);
  if (data) {
    out["data"] = std::move(*data);
  } else {
    out["data"] = Base64Encode(event.data);
    out["content_type"] = "bytes";
  }

  if (event.metadata.empty()) {
    out["metadata"] = nullptr;
  } else if (auto metadata = TryParse(event.metadata)) {
    out["metadata"] = std::move(*metadata);
  } else {
    out["metadata"] = Base64Encode(event.metadata);
    out["metadata_content_type"] = "bytes";
  }
  return out;
}

Json AppendResultToJson(std::string_view stream, const AppendResult& result) {
  json out = json::object();
  out["stream"] = std::string(stream);
  out["first_version"] = result.first_version;
  out["next_version"] = result.next_version;
  out["position"] = result.position.value();
  return out;
}

Json StatusToJson(const Status& status) {
  json out = json::object();
  out["error"] = std::string(StatusCodeName(status.code()));
  out["message"] = status.message();
  if (status.detail() == ErrorDetail::kWrongExpectedVersion) {
    if (status.actual_version()) {
      out["actual_version"] = *status.actual_version();
    } else {
      out["actual_version"] = nullptr;
    }
  }
  return out;
}

Result<ExpectedVersion> ParseExpectedVersion(const Json& value) {
  constexpr std::string_view kWant = "want \"any\", \"no-stream\", \"exists\" or a version number";
  if (value.is_number_unsigned()) return ExpectedVersion::Exact(value.get<uint64_t>());
  if (value.is_string()) {
    auto parsed = ExpectedVersion::Parse(value.get_ref<const std::string&>());
    if (parsed) return *parsed;
    return FieldError("expected", fmt::format("{} is not valid; {}", JsonText(value), kWant));
  }
  return FieldError("expected", fmt::format("{} is not valid; {}", JsonText(value), kWant));
}

Result<AppendRequest> ParseAppendRequest(const Json& request) {
  if (!request.is_object())
    return FieldError("request", fmt::format("must be an object, not {}", TypeName(request)));
  AppendRequest out;

  auto stream = request.find("stream");
  if (stream == request.end()) return FieldError("stream", "missing");
  if (!stream->is_string())
    return FieldError("stream", fmt::format("must be a string, not {}", TypeName(*stream)));
  out.stream = stream->get<std::string>();

  if (auto it = request.find("expected"); it != request.end()) {
    auto expected = ParseExpectedVersion(*it);
    if (!expected.ok()) return expected.status();
    out.expected = *expected;
  }

  auto events = request.find("events");
  if (events == request.end()) return FieldError("events", "missing");
  if (!events->is_array())
    return FieldError("events", fmt::format("must be an array, not {}", TypeName(*events)));
  out.events.reserve(events->size());
  for (size_t i = 0; i < events->size(); ++i) {
    auto event = ParseEvent((*events)[i], i);
    if (!event.ok()) return event.status();
    out.events.push_back(std::move(event).value());
  }
  return out;
}

Result<AppendRequest> ParseAppendRequestLine(std::string_view line) {
  json request = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return Status::InvalidArgument("request: not valid JSON");
  return ParseAppendRequest(request);
}

std::string JsonText(const Json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

std::string Base64Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                 (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) | static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) n |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace cairn::server

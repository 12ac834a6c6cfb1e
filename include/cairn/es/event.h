// Typed events for the event-sourcing toolkit: a plain struct plus one CAIRN_EVENT declaration
// gives it a type name, a schema version and JSON (de)serialization with nlohmann::json.
//
//   struct Deposited { int64_t amount = 0; };
//   CAIRN_EVENT(Deposited, "Deposited", 1, amount)
//
// The declaration goes at namespace scope, in the struct's namespace (it defines to_json /
// from_json and the type information for argument-dependent lookup). Fields missing from a stored
// event keep the value of a default-constructed struct ("weak schema": give new fields a default in
// the struct, and old events load with it). A field with the wrong JSON type is an error that
// names the field. Structs with no fields are allowed: CAIRN_EVENT(Closed, "Closed", 1).
// A struct that already has its own to_json / from_json uses CAIRN_EVENT_TYPE(T, "Name", version).
//
// Binary encoding (opt-in, RepositoryOptions::encoding): an event type whose fields are all numbers,
// enums, bools or std::strings also gets a compact binary form, stored with content type bytes:
// the byte 0xCE, then each field in declaration order (numbers and enums as their in-memory
// little-endian bytes, bools as one byte 0 or 1, strings as a u32 length and the bytes). Reading it
// needs no JSON parse (see docs/performance.md, "Toolkit"). A stored binary event that ends before a
// field leaves it at the default, so fields may be added at the end; upcasters (schema.h) work on
// JSON and do not apply to binary events. Reading always follows the stored content type, so
// switching an aggregate's encoding never breaks old events.
//
// Also here: CommandContext (correlation id, causation id, user) and the metadata the toolkit
// writes with every event. Everything in this header is a plain value, safe to share read-only.
#pragma once

#include <concepts>
#include <cstring>
#include <type_traits>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <nlohmann/json.hpp>

#include "cairn/event.h"
#include "cairn/status.h"

namespace cairn::es {

using Json = nlohmann::json;

// What CAIRN_EVENT declares about an event type. `name` is the stored type ("Deposited"); `version`
// is the schema version the code writes and reads (1 for the first; bump it and add an upcaster
// when the shape changes, see schema.h).
struct EventTypeInfo {
  std::string_view name;
  uint32_t version = 1;
};

// The metadata key under which the toolkit stores an event's schema version (a JSON number). An
// event without it is version 1, so events appended by other writers load as the first version.
// The toolkit writes it first in the metadata object so that readers find it without a full parse.
inline constexpr std::string_view kMetadataSchemaVersion = "$schemaVersion";

// A type declared with CAIRN_EVENT or CAIRN_EVENT_TYPE: default-constructible and convertible to
// and from JSON.
template <class T>
concept EventType = std::default_initializable<T> && requires(const T* p, Json& j, const T& t, T& out) {
  { CairnEventTypeInfo(p) } -> std::same_as<EventTypeInfo>;
  to_json(j, t);
  from_json(std::as_const(j), out);
};

template <EventType T>
constexpr EventTypeInfo TypeInfo() {
  return CairnEventTypeInfo(static_cast<const T*>(nullptr));
}
template <EventType T>
constexpr std::string_view TypeName() {
  return TypeInfo<T>().name;
}
template <EventType T>
constexpr uint32_t SchemaVersion() {
  return TypeInfo<T>().version;
}

// Who and what caused a command: copied into the metadata of every event the command produces,
// under the keys of cairn/event.h ("$correlationId", "$causationId", "$user"). Empty fields are
// left out. `extra` (a JSON object, or null) adds application keys; keys starting with '$' are
// reserved and rejected.
struct CommandContext {
  std::string correlation_id;
  std::string causation_id;
  std::string user;
  Json extra;

  // A context with a fresh correlation id (a UUIDv7) and the given user.
  static CommandContext New(std::string user = {});
  // The context of work caused by a stored event: the same correlation id (or the event's id when it
  // has none), and the event's id as causation id. The user is carried over.
  static CommandContext CausedBy(const RecordedEventView& event);
};

// The metadata JSON text the toolkit stores with an event of schema `version` under `context`.
// kInvalidArgument when `extra` is not an object or uses a reserved key.
Result<std::string> EncodeMetadata(const CommandContext& context, uint32_t version);

// The schema version stored in metadata (1 when absent); kInvalidArgument when the key is there but
// not a positive integer.
Result<uint32_t> SchemaVersionOf(std::string_view metadata);

// Thrown by generated from_json on a field of the wrong type; the toolkit turns it into a Status
// naming the event, the stream and the field.
class FieldError : public std::exception {
 public:
  FieldError(std::string field, std::string message) : field_(std::move(field)), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& field() const { return field_; }

 private:
  std::string field_;
  std::string message_;
};

namespace internal {

template <class T>
void WriteField(Json& j, const char* name, const T& value) {
  j[name] = value;
}

// A missing field (or null, except for a Json-typed field) takes the default-constructed value.
template <class T>
void ReadField(const Json& j, const char* name, T& out, const T& fallback) {
  auto it = j.find(name);
  if (it == j.end() || (it->is_null() && !std::is_same_v<T, Json>)) {
    out = fallback;
    return;
  }
  try {
    it->get_to(out);
  } catch (const Json::exception& e) {
    throw FieldError(name, std::string("field '") + name + "': " + e.what());
  }
}

inline void RequireObject(const Json& j) {
  if (!j.is_object()) throw FieldError("", "event data is not a JSON object but " + std::string(j.type_name()));
}


// The binary form of CAIRN_EVENT types (see "Binary encoding" in the header comment).
inline constexpr char kBinaryTag = static_cast<char>(0xCE);

template <class T>
concept BinaryField = std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_same_v<T, std::string>;

struct BinaryWriter {
  std::string* out;
  template <class T>
  void Field(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      const uint32_t n = static_cast<uint32_t>(v.size());
      Raw(&n, sizeof n);
      out->append(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      out->push_back(v ? 1 : 0);
    } else {
      Raw(&v, sizeof v);  // little-endian hosts only (x86-64, arm64), as the log format
    }
  }
  void Raw(const void* p, size_t n) { out->append(static_cast<const char*>(p), n); }
};

// Reads fields in order. A record that ends before a field leaves it (and all later ones) at the
// default: fields added at the end load old events (weak schema). A field cut in the middle, or a
// bool that is not 0 or 1, is an error.
struct BinaryReader {
  const char* p;
  const char* end;
  const char* error = nullptr;  // the field that failed
  template <class T>
  void Field(const char* name, T& v) {
    if (error != nullptr || p == end) return;
    if constexpr (std::is_same_v<T, std::string>) {
      uint32_t n;
      if (end - p < 4) { error = name; return; }
      std::memcpy(&n, p, 4);
      if (static_cast<size_t>(end - p - 4) < n) { error = name; return; }
      v.assign(p + 4, n);
      p += 4 + n;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (static_cast<unsigned char>(*p) > 1) { error = name; return; }
      v = *p++ == 1;
    } else {
      if (static_cast<size_t>(end - p) < sizeof v) { error = name; return; }
      std::memcpy(&v, p, sizeof v);
      p += sizeof v;
    }
  }
};

}  // namespace internal

// An event type that also has the binary form: every field is a number, an enum, a bool or a
// std::string (CAIRN_EVENT generates it then).
template <class T>
concept BinaryEventType = EventType<T> && requires(internal::BinaryWriter& w, internal::BinaryReader& r, const T& t, T& out) {
  CairnWriteBinary(w, t);
  CairnReadBinary(r, out);
};

namespace internal {
}  // namespace internal
}  // namespace cairn::es

// A for-each over macro arguments (C++20 __VA_OPT__), for CAIRN_EVENT's field list.
#define CAIRN_ES_PARENS_ ()
#define CAIRN_ES_EXPAND_(...) CAIRN_ES_EXPAND3_(CAIRN_ES_EXPAND3_(CAIRN_ES_EXPAND3_(CAIRN_ES_EXPAND3_(__VA_ARGS__))))
#define CAIRN_ES_EXPAND3_(...) CAIRN_ES_EXPAND2_(CAIRN_ES_EXPAND2_(CAIRN_ES_EXPAND2_(CAIRN_ES_EXPAND2_(__VA_ARGS__))))
#define CAIRN_ES_EXPAND2_(...) CAIRN_ES_EXPAND1_(CAIRN_ES_EXPAND1_(CAIRN_ES_EXPAND1_(CAIRN_ES_EXPAND1_(__VA_ARGS__))))
#define CAIRN_ES_EXPAND1_(...) __VA_ARGS__
#define CAIRN_ES_FOR_EACH_(macro, ...) __VA_OPT__(CAIRN_ES_EXPAND_(CAIRN_ES_FOR_EACH_HELPER_(macro, __VA_ARGS__)))
#define CAIRN_ES_FOR_EACH_HELPER_(macro, a1, ...) \
  macro(a1) __VA_OPT__(CAIRN_ES_FOR_EACH_AGAIN_ CAIRN_ES_PARENS_(macro, __VA_ARGS__))
#define CAIRN_ES_FOR_EACH_AGAIN_() CAIRN_ES_FOR_EACH_HELPER_
#define CAIRN_ES_TO_(field) ::cairn::es::internal::WriteField(cairn_j_, #field, cairn_t_.field);
#define CAIRN_ES_FROM_(field) ::cairn::es::internal::ReadField(cairn_j_, #field, cairn_t_.field, cairn_d_.field);
#define CAIRN_ES_BIN_OK_(field) &&::cairn::es::internal::BinaryField<std::remove_cvref_t<decltype(cairn_t_.field)>>
#define CAIRN_ES_BIN_TO_(field) cairn_w_.Field(cairn_t_.field);
#define CAIRN_ES_BIN_FROM_(field) cairn_r_.Field(#field, cairn_t_.field);

// Declares a type name and schema version for an event type (its JSON functions are the caller's).
#define CAIRN_EVENT_TYPE(Type, name, version)                                           \
  [[maybe_unused]] inline constexpr ::cairn::es::EventTypeInfo CairnEventTypeInfo(const Type*) { \
    return ::cairn::es::EventTypeInfo{name, version};                                   \
  }

// Declares an event type: name, schema version, and the fields that go to JSON (under their own
// names). See the header comment.
#define CAIRN_EVENT(Type, name, version, ...)                                                   \
  CAIRN_EVENT_TYPE(Type, name, version)                                                         \
  [[maybe_unused]] inline void to_json(::cairn::es::Json& cairn_j_, const Type& cairn_t_) {     \
    cairn_j_ = ::cairn::es::Json::object();                                                     \
    (void)cairn_t_;                                                                             \
    CAIRN_ES_FOR_EACH_(CAIRN_ES_TO_, __VA_ARGS__)                                               \
  }                                                                                             \
  [[maybe_unused]] inline void from_json(const ::cairn::es::Json& cairn_j_, Type& cairn_t_) {   \
    ::cairn::es::internal::RequireObject(cairn_j_);                                             \
    [[maybe_unused]] const Type cairn_d_{};                                                     \
    (void)cairn_t_;                                                                             \
    CAIRN_ES_FOR_EACH_(CAIRN_ES_FROM_, __VA_ARGS__)                                             \
  }                                                                                             \
  template <class CairnW_>                                                                      \
  void CairnWriteBinary(CairnW_& cairn_w_, const Type& cairn_t_)                                \
    requires(true CAIRN_ES_FOR_EACH_(CAIRN_ES_BIN_OK_, __VA_ARGS__))                            \
  {                                                                                             \
    (void)cairn_w_;                                                                             \
    (void)cairn_t_;                                                                             \
    CAIRN_ES_FOR_EACH_(CAIRN_ES_BIN_TO_, __VA_ARGS__)                                           \
  }                                                                                             \
  template <class CairnR_>                                                                      \
  void CairnReadBinary(CairnR_& cairn_r_, Type& cairn_t_)                                       \
    requires(true CAIRN_ES_FOR_EACH_(CAIRN_ES_BIN_OK_, __VA_ARGS__))                            \
  {                                                                                             \
    (void)cairn_r_;                                                                             \
    (void)cairn_t_;                                                                             \
    CAIRN_ES_FOR_EACH_(CAIRN_ES_BIN_FROM_, __VA_ARGS__)                                         \
  }

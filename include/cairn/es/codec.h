// EventCodec<Variant>: turns the typed events of one aggregate (a std::variant of CAIRN_EVENT types)
// into EventData to append, and stored events back into the variant, through renames and upcasters
// (schema.h).
//
// Errors on decode, each naming the event type, the stream and the version:
//   kNotSupported     the type is none of the variant's (an unknown event is never dropped silently),
//                     or its schema version has no upcaster path to the code's version
//   kInvalidArgument  the data is not JSON, not an object, or a field has the wrong type (named)
// The codec is immutable after construction and safe to share between threads.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "cairn/es/event.h"
#include "cairn/es/schema.h"
#include "cairn/event.h"
#include "cairn/status.h"

namespace cairn::es {

template <class V>
struct IsEventVariant : std::false_type {};
template <EventType... Es>
struct IsEventVariant<std::variant<Es...>> : std::true_type {};

// A std::variant whose alternatives are all event types.
template <class V>
concept EventVariant = IsEventVariant<V>::value;

// The type name and schema version of the alternative an event variant holds.
template <EventVariant V>
EventTypeInfo TypeInfoOf(const V& event) {
  return std::visit([](const auto& e) { return TypeInfo<std::decay_t<decltype(e)>>(); }, event);
}

// The data of an event as JSON, with its type name: {"type": "...", "data": {...}}. For messages
// and the test kit.
template <EventVariant V>
Json ToJson(const V& event) {
  return std::visit(
      [](const auto& e) {
        Json data;
        to_json(data, e);
        return Json{{"type", TypeName<std::decay_t<decltype(e)>>()}, {"data", std::move(data)}};
      },
      event);
}

namespace internal {
std::string DescribeEvent(std::string_view type, std::string_view stream, StreamVersion version);
Status DecodeError(StatusCode code, std::string_view type, std::string_view stream, StreamVersion version,
                   std::string_view what);
}  // namespace internal

// How new events are stored. Reading follows each stored event's content type, whatever this says.
enum class Encoding : uint8_t {
  kJson,    // JSON data (content type JSON): readable by every tool and client; upcasters apply
  kBinary,  // the binary form (event.h) for types that have one, JSON for the others
};

template <EventVariant V>
class EventCodec {
 public:
  explicit EventCodec(std::shared_ptr<const Upcasters> upcasters = nullptr) : upcasters_(std::move(upcasters)) {
    if (upcasters_ && upcasters_->empty()) upcasters_.reset();
  }

  // One event to append, with the toolkit's metadata (schema version, context). The id is a fresh
  // UUIDv7, so that a retried append of the same EventData is idempotent.
  static Result<EventData> Encode(const V& event, const CommandContext& context, Encoding encoding = Encoding::kJson) {
    return std::visit(
        [&](const auto& e) -> Result<EventData> {
          using E = std::decay_t<decltype(e)>;
          auto metadata = EncodeMetadata(context, SchemaVersion<E>());
          if (!metadata.ok()) return metadata.status();
          EventData out;
          out.id = Uuid::V7();
          out.type = std::string(TypeName<E>());
          out.metadata = std::move(*metadata);
          if constexpr (BinaryEventType<E>) {
            if (encoding == Encoding::kBinary) {
              out.data.push_back(internal::kBinaryTag);
              internal::BinaryWriter w{&out.data};
              CairnWriteBinary(w, e);
              out.content_type = ContentType::kBytes;
              return out;
            }
          }
          Json data;
          to_json(data, e);
          out.data = data.dump();
          out.content_type = ContentType::kJson;
          return out;
        },
        event);
  }

  // Whether the stored type (after renames) is one of the variant's.
  bool Knows(std::string_view stored_type) const { return Find(Resolve(stored_type)) != kNone; }

  Result<V> Decode(const RecordedEventView& stored) const {
    std::string_view type = Resolve(stored.type);
    size_t index = Find(type);
    if (index == kNone) {
      return internal::DecodeError(StatusCode::kNotSupported, stored.type, stored.stream, stored.version,
                                   "unknown event type: not one of this aggregate's events (add it, a "
                                   "rename, or skip unknown events in the repository options)");
    }
    return kDecoders[index](*this, type, stored);
  }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  static constexpr size_t kCount = std::variant_size_v<V>;
  using Decoder = Result<V> (*)(const EventCodec&, std::string_view, const RecordedEventView&);

  std::string_view Resolve(std::string_view type) const { return upcasters_ ? upcasters_->Resolve(type) : type; }

  static size_t Find(std::string_view type) {
    for (size_t i = 0; i < kCount; ++i) {
      if (kNames[i] == type) return i;
    }
    return kNone;
  }

  template <size_t I>
  static Result<V> DecodeAs(const EventCodec& codec, std::string_view type, const RecordedEventView& stored) {
    using E = std::variant_alternative_t<I, V>;
    auto version = SchemaVersionOf(stored.metadata);
    if (!version.ok()) {
      return internal::DecodeError(StatusCode::kInvalidArgument, stored.type, stored.stream, stored.version,
                                   version.status().message());
    }
    if (stored.content_type == ContentType::kBytes) return DecodeBinary<I>(stored, *version);
    Json data = Json::parse(stored.data, nullptr, /*allow_exceptions=*/false);
    if (data.is_discarded()) {
      return internal::DecodeError(StatusCode::kInvalidArgument, stored.type, stored.stream, stored.version,
                                   "data is not valid JSON");
    }
    if (*version != SchemaVersion<E>()) {
      Status s = codec.upcasters_ ? codec.upcasters_->Upcast(type, *version, SchemaVersion<E>(), data)
                                  : Upcasters().Upcast(type, *version, SchemaVersion<E>(), data);
      if (!s.ok()) return internal::DecodeError(s.code(), stored.type, stored.stream, stored.version, s.message());
    }
    try {
      E event;
      from_json(std::as_const(data), event);
      return V(std::in_place_index<I>, std::move(event));
    } catch (const std::exception& e) {
      return internal::DecodeError(StatusCode::kInvalidArgument, stored.type, stored.stream, stored.version,
                                   e.what());
    }
  }

  template <size_t I>
  static Result<V> DecodeBinary(const RecordedEventView& stored, uint32_t version) {
    using E = std::variant_alternative_t<I, V>;
    if constexpr (BinaryEventType<E>) {
      if (version > SchemaVersion<E>()) {
        return internal::DecodeError(StatusCode::kNotSupported, stored.type, stored.stream, stored.version,
                                     "binary event of a newer schema version than this code's");
      }
      if (stored.data.empty() || stored.data[0] != internal::kBinaryTag) {
        return internal::DecodeError(StatusCode::kInvalidArgument, stored.type, stored.stream, stored.version,
                                     "bytes that are not cairn's binary event form (no 0xCE tag)");
      }
      V out(std::in_place_index<I>);
      internal::BinaryReader r{stored.data.data() + 1, stored.data.data() + stored.data.size()};
      CairnReadBinary(r, std::get<I>(out));
      if (r.error != nullptr) {
        return internal::DecodeError(StatusCode::kInvalidArgument, stored.type, stored.stream, stored.version,
                                     std::string("binary field '") + r.error + "' is cut short or invalid");
      }
      if (r.p != r.end) {
        return internal::DecodeError(StatusCode::kInvalidArgument, stored.type, stored.stream, stored.version,
                                     "binary event has bytes after its last field");
      }
      return out;
    } else {
      (void)version;
      return internal::DecodeError(StatusCode::kNotSupported, stored.type, stored.stream, stored.version,
                                   "stored as bytes, but this event type has no binary form");
    }
  }

  template <size_t... I>
  static constexpr std::array<Decoder, kCount> MakeDecoders(std::index_sequence<I...>) {
    return {&DecodeAs<I>...};
  }
  template <size_t... I>
  static constexpr std::array<std::string_view, kCount> MakeNames(std::index_sequence<I...>) {
    return {TypeName<std::variant_alternative_t<I, V>>()...};
  }
  static constexpr std::array<Decoder, kCount> kDecoders = MakeDecoders(std::make_index_sequence<kCount>());
  static constexpr std::array<std::string_view, kCount> kNames = MakeNames(std::make_index_sequence<kCount>());

  std::shared_ptr<const Upcasters> upcasters_;
};

}  // namespace cairn::es

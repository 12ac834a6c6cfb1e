// BatchAppendReq from its wire bytes (see batch_append_wire.h).
//
// The reader walks the message's bytes in one flat buffer (a gRPC ByteBuffer of several slices is
// joined first) and takes every string as a view into it, so an event costs two copies (its data
// and custom metadata, into the EventData the store takes) and nothing else: no stream object,
// no allocation for the id's text or the map's entries. It follows the limits of protobuf's
// generated parser (parse_context.h): a tag is a varint of at most 5 bytes, a length one of at
// most 5 bytes that must fit in what is left of its enclosing message, a value varint at most 10
// bytes; embedded messages and groups nest at most 100 deep; an end-group tag ends only the group
// it closes.
#include "server/batch_append_wire.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/wire_format_lite.h>

#include <limits>
#include <utility>

#include "server/protocol.h"
#include "util/check.h"

namespace cairn::server {
namespace {

using Wire = google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

constexpr uint32_t Tag(int field, Wire::WireType type) {
  return (static_cast<uint32_t>(field) << 3) | static_cast<uint32_t>(type);
}
constexpr uint32_t kLen(int field) { return Tag(field, Wire::WIRETYPE_LENGTH_DELIMITED); }
constexpr uint32_t kVarint(int field) { return Tag(field, Wire::WIRETYPE_VARINT); }

bool IsUtf8(std::string_view s) {
  // The short keys and values of a request (metadata entries, a uuid's text) are ASCII nearly
  // always: a plain loop decides those without the library's call.
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      return google::protobuf::internal::IsStructurallyValidUTF8(s.data(), static_cast<int>(s.size()));
    }
  }
  return true;
}

// protobuf's default recursion limit: embedded messages and groups below the top-level message.
constexpr int kMaxDepth = 100;

// The bytes of one message (or of the part of it that is left), read front to back. Every read
// returns false on bytes that are no well-formed protobuf; the reader is then of no further use.
class Bytes {
 public:
  Bytes(const uint8_t* p, const uint8_t* end) : p_(p), end_(end) {}

  bool empty() const { return p_ == end_; }

  // A field's tag: false at a zero tag, field number 0 or a broken varint.
  bool ReadTag(uint32_t* tag) {
    uint32_t v = 0;
    for (int i = 0; i < 5; i++) {
      if (p_ == end_) return false;
      const uint32_t byte = *p_++;
      v |= (byte & 0x7f) << (7 * i);  // bits past 32 in the fifth byte are dropped, as protobuf does
      if (byte < 0x80) {
        *tag = v;
        return Wire::GetTagFieldNumber(v) != 0;
      }
    }
    return false;
  }

  bool ReadVarint(uint64_t* out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
      if (p_ == end_) return false;
      const uint64_t byte = *p_++;
      v |= (byte & 0x7f) << (7 * i);
      if (byte < 0x80) {
        *out = v;
        return true;
      }
    }
    return false;
  }

  // A length-delimited field's body.
  bool ReadView(std::string_view* out) {
    uint64_t length = 0;
    const uint8_t* start = p_;
    if (!ReadVarint(&length) || p_ - start > 5) return false;
    if (length > static_cast<uint64_t>(end_ - p_)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), length);
    p_ += length;
    return true;
  }

  // The body of a length-delimited field, as a reader of its own.
  bool ReadEmbedded(Bytes* out) {
    std::string_view body;
    if (!ReadView(&body)) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(body.data());
    *out = Bytes(p, p + body.size());
    return true;
  }

  // Skips a field this reader does not use, as protobuf keeps unknown fields: false for an
  // invalid wire type, an end-group tag outside its group, or nesting past `depth`.
  bool Skip(uint32_t tag, int depth) {
    switch (Wire::GetTagWireType(tag)) {
      case Wire::WIRETYPE_VARINT: {
        uint64_t ignored = 0;
        return ReadVarint(&ignored);
      }
      case Wire::WIRETYPE_FIXED64: return Advance(8);
      case Wire::WIRETYPE_FIXED32: return Advance(4);
      case Wire::WIRETYPE_LENGTH_DELIMITED: {
        std::string_view ignored;
        return ReadView(&ignored);
      }
      case Wire::WIRETYPE_START_GROUP: {
        if (depth <= 0) return false;
        const uint32_t end = Tag(static_cast<int>(Wire::GetTagFieldNumber(tag)), Wire::WIRETYPE_END_GROUP);
        for (;;) {
          uint32_t t = 0;
          if (!ReadTag(&t)) return false;
          if (t == end) return true;
          if (!Skip(t, depth - 1)) return false;
        }
      }
      default: return false;  // an end-group tag without its start, or wire type 6 or 7
    }
  }

 private:
  bool Advance(size_t n) {
    if (n > static_cast<size_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

// Reads every field of `in` through `field(tag)`, which returns false on malformed bytes.
template <typename Field>
bool ReadFields(Bytes in, Field&& field) {
  while (!in.empty()) {
    uint32_t tag = 0;
    if (!in.ReadTag(&tag) || !field(in, tag)) return false;
  }
  return true;
}

// A length-delimited embedded message, read field by field by `field(in, tag)`.
template <typename Field>
bool ReadEmbedded(Bytes& in, int depth, Field&& field) {
  Bytes body(nullptr, nullptr);
  return depth > 0 && in.ReadEmbedded(&body) && ReadFields(body, field);
}

// A length-delimited embedded message merged into its generated message, as protobuf merges a
// message field that occurs more than once.
bool MergeEmbedded(Bytes& in, google::protobuf::MessageLite* message) {
  std::string_view body;
  if (!in.ReadView(&body)) return false;
  google::protobuf::io::ArrayInputStream stream(body.data(), static_cast<int>(body.size()));
  return message->MergeFromBoundedZeroCopyStream(&stream, static_cast<int>(body.size()));
}

// event_store.client.UUID: a oneof of Structured (two int64 halves) and a string. A later
// occurrence of the other member replaces the value; of the same member, merges into it.
struct UuidFields {
  enum class Kind : uint8_t { kNone, kStructured, kString } kind = Kind::kNone;
  uint64_t most = 0;
  uint64_t least = 0;
  std::string_view text;
};

bool ReadUuid(Bytes& in, int depth, UuidFields* u) {
  return ReadEmbedded(in, depth, [&](Bytes& uuid, uint32_t tag) {
    if (tag == kLen(1)) {  // structured
      if (u->kind != UuidFields::Kind::kStructured) {
        u->kind = UuidFields::Kind::kStructured;
        u->most = u->least = 0;
      }
      return ReadEmbedded(uuid, depth - 1, [&](Bytes& s, uint32_t t) {
        if (t == kVarint(1)) return s.ReadVarint(&u->most);
        if (t == kVarint(2)) return s.ReadVarint(&u->least);
        return s.Skip(t, depth - 2);
      });
    }
    if (tag == kLen(2)) {  // string (proto3: UTF-8)
      u->kind = UuidFields::Kind::kString;
      return uuid.ReadView(&u->text) && IsUtf8(u->text);
    }
    return uuid.Skip(tag, depth - 1);
  });
}

// BatchAppendReq.ProposedMessage: 1 id, 2 metadata (map<string, string>: entries of 1 key and
// 2 value), 3 custom_metadata, 4 data. `depth` is the nesting left for the message itself.
bool ReadProposed(Bytes& in, int depth, WireProposedMessage* m) {
  UuidFields id;
  m->event.content_type = ContentType::kBytes;
  const bool ok = ReadEmbedded(in, depth, [&](Bytes& msg, uint32_t tag) {
    std::string_view view;
    switch (tag) {
      case kLen(1):
        m->has_id = true;
        return ReadUuid(msg, depth - 1, &id);
      case kLen(2): {
        std::string_view key;
        std::string_view value;
        const bool entry_ok = ReadEmbedded(msg, depth - 1, [&](Bytes& entry, uint32_t t) {
          if (t == kLen(1)) return entry.ReadView(&key);
          if (t == kLen(2)) return entry.ReadView(&value);
          return entry.Skip(t, depth - 2);
        });
        if (!entry_ok || !IsUtf8(key) || !IsUtf8(value)) return false;
        if (key == "type") {
          m->has_type = true;
          m->event.type.assign(value);
        } else if (key == "content-type") {
          m->has_content_type = true;
          m->event.content_type = value == kContentTypeJson ? ContentType::kJson : ContentType::kBytes;
        }
        return true;
      }
      case kLen(3):
        if (!msg.ReadView(&view)) return false;
        m->event.metadata.assign(view);
        return true;
      case kLen(4):
        if (!msg.ReadView(&view)) return false;
        m->event.data.assign(view);
        return true;
      default:
        return msg.Skip(tag, depth - 1);
    }
  });
  if (!ok) return false;
  switch (id.kind) {
    case UuidFields::Kind::kStructured:
      m->event.id = UuidFromHalves(id.most, id.least);
      m->id_valid = true;
      break;
    case UuidFields::Kind::kString:
      if (auto parsed = Uuid::Parse(id.text)) {
        m->event.id = *parsed;
        m->id_valid = true;
      }
      break;
    case UuidFields::Kind::kNone:
      break;
  }
  return true;
}

// Writing protobuf fields of numbers below 16 (a one-byte tag) into a buffer sized beforehand.
size_t VarintSize(uint64_t v) { return CodedOutputStream::VarintSize64(v); }
// A length-delimited field with a body of `size` bytes behind its length.
size_t Field(int /*number*/, size_t size) { return 1 + VarintSize(size) + size; }
uint8_t* Header(int number, size_t size, uint8_t* p) {
  *p++ = static_cast<uint8_t>(Tag(number, Wire::WIRETYPE_LENGTH_DELIMITED));
  return CodedOutputStream::WriteVarint64ToArray(size, p);
}
uint8_t* VarintField(int number, uint64_t v, uint8_t* p) {
  *p++ = static_cast<uint8_t>(kVarint(number));
  return CodedOutputStream::WriteVarint64ToArray(v, p);
}
uint8_t* BytesField(int number, std::string_view bytes, uint8_t* p) {
  p = Header(number, bytes.size(), p);
  return CodedOutputStream::WriteRawToArray(bytes.data(), static_cast<int>(bytes.size()), p);
}

// The encoder behind EncodeBatchAppendReq: sizes first (each embedded message's length comes
// before it), then one pass of writes into a string of exactly that size.
class BatchAppendBytes {
 public:
  static std::string Encode(int64_t id_high, int64_t id_low, std::string_view stream, ExpectedVersion expected,
                            std::span<const EventData> events) {
    const size_t structured = 1 + VarintSize(static_cast<uint64_t>(id_high)) + 1 + VarintSize(static_cast<uint64_t>(id_low));
    const size_t correlation = Field(1, structured);
    const size_t options = Field(1, Field(3, stream.size())) + ExpectedSize(expected);
    size_t total = Field(1, correlation) + Field(2, options) + 2;  // + is_final
    for (const EventData& e : events) total += Field(3, ProposedSize(e));

    std::string out(total, '\0');
    uint8_t* p = reinterpret_cast<uint8_t*>(out.data());
    p = Header(1, correlation, p);
    p = Header(1, structured, p);
    p = VarintField(1, static_cast<uint64_t>(id_high), p);
    p = VarintField(2, static_cast<uint64_t>(id_low), p);
    p = Header(2, options, p);
    p = Header(1, Field(3, stream.size()), p);
    p = BytesField(3, stream, p);
    switch (expected.kind()) {
      case ExpectedVersion::Kind::kAny: p = Header(4, 0, p); break;
      case ExpectedVersion::Kind::kNoStream: p = Header(3, 0, p); break;
      case ExpectedVersion::Kind::kStreamExists: p = Header(5, 0, p); break;
      case ExpectedVersion::Kind::kExact: p = VarintField(2, expected.version(), p); break;
    }
    for (const EventData& e : events) {
      p = Header(3, ProposedSize(e), p);
      if (!e.id.IsNil()) {  // in the string form, as the official clients send it
        p = Header(1, Field(2, kUuidTextBytes), p);
        p = BytesField(2, e.id.ToString(), p);
      }
      p = Entry("type", e.type, p);
      p = Entry("content-type", ContentTypeOf(e), p);
      if (!e.metadata.empty()) p = BytesField(3, e.metadata, p);
      if (!e.data.empty()) p = BytesField(4, e.data, p);
    }
    p = VarintField(4, 1, p);  // is_final
    CAIRN_CHECK(p == reinterpret_cast<uint8_t*>(out.data()) + out.size());
    return out;
  }

 private:
  static constexpr size_t kUuidTextBytes = 36;  // 8-4-4-4-12 hex digits
  static std::string_view ContentTypeOf(const EventData& e) {
    return e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes;
  }
  static size_t EntrySize(std::string_view key, std::string_view value) {
    return Field(2, Field(1, key.size()) + Field(2, value.size()));
  }
  static size_t ExpectedSize(ExpectedVersion expected) {
    return expected.kind() == ExpectedVersion::Kind::kExact ? 1 + VarintSize(expected.version()) : 2;
  }
  static size_t ProposedSize(const EventData& e) {
    size_t n = EntrySize("type", e.type) + EntrySize("content-type", ContentTypeOf(e));
    if (!e.id.IsNil()) n += Field(1, Field(2, kUuidTextBytes));
    if (!e.metadata.empty()) n += Field(3, e.metadata.size());
    if (!e.data.empty()) n += Field(4, e.data.size());
    return n;
  }
  static uint8_t* Entry(std::string_view key, std::string_view value, uint8_t* p) {
    p = Header(2, Field(1, key.size()) + Field(2, value.size()), p);
    p = BytesField(1, key, p);
    return BytesField(2, value, p);
  }
};

Status Malformed(std::string_view where) {
  return Status::InvalidArgument(fmt::format("BatchAppendReq: malformed bytes in {}", where));
}

Status Parse(std::string_view bytes, WireBatchAppendReq* out) {
  out->Clear();
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return Malformed("the message (over 2 GiB)");
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const char* where = "the message";
  const bool ok = ReadFields(Bytes(p, p + bytes.size()), [&](Bytes& in, uint32_t tag) {
    switch (tag) {
      case kLen(1):
        where = "correlation_id";
        out->has_correlation_id = true;
        return MergeEmbedded(in, &out->correlation_id);
      case kLen(2):
        where = "options";
        out->has_options = true;
        return MergeEmbedded(in, &out->options);
      case kLen(3):
        where = "proposed_messages";
        return ReadProposed(in, kMaxDepth, &out->proposed_messages.emplace_back());
      case kVarint(4): {
        where = "is_final";
        uint64_t v = 0;
        if (!in.ReadVarint(&v)) return false;
        out->is_final = v != 0;
        return true;
      }
      default:
        where = "an unknown field";
        return in.Skip(tag, kMaxDepth);
    }
  });
  if (!ok) {
    if (std::string_view(where) == "proposed_messages") {
      return Malformed(fmt::format("proposed_messages[{}]", out->proposed_messages.size() - 1));
    }
    return Malformed(where);
  }
  return Status::Ok();
}

}  // namespace

std::string EncodeBatchAppendReq(int64_t correlation_most, int64_t correlation_least, std::string_view stream,
                                 ExpectedVersion expected, std::span<const EventData> events) {
  return BatchAppendBytes::Encode(correlation_most, correlation_least, stream, expected, events);
}

std::string EncodeBatchAppendSuccess(const event_store::client::UUID& correlation_id,
                                     const event_store::client::StreamIdentifier& stream,
                                     std::optional<StreamVersion> current, std::optional<Position> position) {
  size_t success = current ? 1 + VarintSize(*current) : 2;
  const size_t where = position ? 2 * (1 + VarintSize(position->value())) : 0;  // commit and prepare
  success += position ? Field(3, where) : 2;
  const size_t id_size = correlation_id.ByteSizeLong();
  const size_t stream_size = stream.ByteSizeLong();
  std::string out(Field(1, id_size) + Field(3, success) + Field(4, stream_size), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p = Header(1, id_size, p);
  p = correlation_id.SerializeWithCachedSizesToArray(p);
  p = Header(3, success, p);
  p = current ? VarintField(1, *current, p) : Header(2, 0, p);  // or no_stream
  if (position) {
    p = Header(3, where, p);
    p = VarintField(1, position->value(), p);
    p = VarintField(2, position->value(), p);
  } else {
    p = Header(4, 0, p);  // no_position
  }
  p = Header(4, stream_size, p);
  p = stream.SerializeWithCachedSizesToArray(p);
  CAIRN_CHECK(p == reinterpret_cast<uint8_t*>(out.data()) + out.size());
  return out;
}

bool ReadBatchAppendSuccess(std::string_view bytes, BatchAppendSuccessView* out) {
  *out = BatchAppendSuccessView{};
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  bool id = false;
  bool success = false;
  bool stream = false;
  // Each field once, in any order, and nothing else; every other shape goes the generated way.
  const bool ok = ReadFields(Bytes(p, p + bytes.size()), [&](Bytes& in, uint32_t tag) {
    switch (tag) {
      case kLen(1): {  // correlation_id: only `structured`, with only its two halves
        if (std::exchange(id, true)) return false;
        bool structured = false;
        return ReadEmbedded(in, kMaxDepth, [&](Bytes& uuid, uint32_t t) {
          if (t != kLen(1) || std::exchange(structured, true)) return false;
          bool most = false;
          bool least = false;
          return ReadEmbedded(uuid, kMaxDepth - 1, [&](Bytes& halves, uint32_t h) {
            if (h == kVarint(1) && !std::exchange(most, true)) return halves.ReadVarint(&out->correlation_most);
            if (h == kVarint(2) && !std::exchange(least, true)) return halves.ReadVarint(&out->correlation_least);
            return false;
          });
        });
      }
      case kLen(3): {  // success: current_revision or no_stream, position or no_position
        if (std::exchange(success, true)) return false;
        bool revision = false;
        bool where = false;
        return ReadEmbedded(in, kMaxDepth, [&](Bytes& ok, uint32_t t) {
          std::string_view empty;
          if (t == kVarint(1) && !std::exchange(revision, true)) {
            uint64_t v = 0;
            if (!ok.ReadVarint(&v)) return false;
            out->current = v;
            return true;
          }
          if (t == kLen(2) && !std::exchange(revision, true)) return ok.ReadView(&empty) && empty.empty();
          if (t == kLen(4) && !std::exchange(where, true)) return ok.ReadView(&empty) && empty.empty();
          if (t == kLen(3) && !std::exchange(where, true)) {
            out->position = Position(0);  // a position message without its field: 0, as protobuf reads it
            bool commit = false;
            bool prepare = false;
            return ReadEmbedded(ok, kMaxDepth - 1, [&](Bytes& pos, uint32_t f) {
              uint64_t v = 0;
              if (f == kVarint(1) && !std::exchange(commit, true)) {
                if (!pos.ReadVarint(&v)) return false;
                out->position = Position(v);
                return true;
              }
              if (f == kVarint(2) && !std::exchange(prepare, true)) return pos.ReadVarint(&v);
              return false;
            });
          }
          return false;
        });
      }
      case kLen(4): {  // stream_identifier, checked only (the caller knows its stream): its name once
        if (std::exchange(stream, true)) return false;
        bool name = false;
        return ReadEmbedded(in, kMaxDepth, [&](Bytes& identifier, uint32_t t) {
          std::string_view ignored;
          return t == kLen(3) && !std::exchange(name, true) && identifier.ReadView(&ignored);
        });
      }
      default:
        return false;
    }
  });
  return ok && id && success;
}

void WireBatchAppendReq::Clear() {
  has_correlation_id = false;
  correlation_id.Clear();
  has_options = false;
  options.Clear();
  proposed_messages.clear();
  is_final = false;
}

Status ParseBatchAppendReq(grpc::ByteBuffer* bytes, WireBatchAppendReq* out) {
  // gRPC hands a message over as one slice unless it is large; several are joined (one copy).
  grpc::Slice slice;
  if (!bytes->TrySingleSlice(&slice).ok() && !bytes->DumpToSingleSlice(&slice).ok()) {
    return Status::InvalidArgument("BatchAppendReq: no message bytes");
  }
  return Parse(std::string_view(reinterpret_cast<const char*>(slice.begin()), slice.size()), out);
}

Status ParseBatchAppendReq(std::string_view bytes, WireBatchAppendReq* out) { return Parse(bytes, out); }

}  // namespace cairn::server

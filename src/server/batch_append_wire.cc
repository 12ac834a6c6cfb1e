// BatchAppendReq from its wire bytes (see batch_append_wire.h).
//
// Every field is read inside a limit (CodedInputStream::PushLimit) equal to its length, and the
// whole message inside the buffer's own length, so a length that points past the end is caught
// before anything is allocated for it. Tags are dispatched on number and wire type together: a
// known number with another wire type is an unknown field, as in the generated parser.
#include "server/batch_append_wire.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <limits>

#include "server/protocol.h"
#include "util/check.h"

namespace cairn::server {
namespace {

using google::protobuf::io::CodedInputStream;
using Wire = google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

constexpr uint32_t Tag(int field, Wire::WireType type) {
  return (static_cast<uint32_t>(field) << 3) | static_cast<uint32_t>(type);
}
constexpr uint32_t kLen(int field) { return Tag(field, Wire::WIRETYPE_LENGTH_DELIMITED); }
constexpr uint32_t kVarint(int field) { return Tag(field, Wire::WIRETYPE_VARINT); }

bool IsUtf8(const std::string& s) {
  return google::protobuf::internal::IsStructurallyValidUTF8(s.data(), static_cast<int>(s.size()));
}

// Skips a field this reader does not use, as protobuf does with unknown fields (groups
// included). False for field number 0, a group end without its start, or an invalid wire type.
bool SkipUnknown(CodedInputStream* in, uint32_t tag) {
  if (Wire::GetTagFieldNumber(tag) == 0) return false;
  return Wire::SkipField(in, tag);
}

// A length prefix that fits in what is left of the enclosing message.
bool ReadLength(CodedInputStream* in, int* length) {
  return in->ReadVarintSizeAsInt(length) && *length <= in->BytesUntilLimit();
}

bool ReadBytes(CodedInputStream* in, std::string* out) {
  int length = 0;
  return ReadLength(in, &length) && in->ReadString(out, length);
}

// Reads fields up to the current limit, each through `field(tag)`, which returns false on
// malformed bytes.
template <typename Field>
bool ReadFields(CodedInputStream* in, Field&& field) {
  while (in->BytesUntilLimit() > 0) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return false;  // a zero tag or a broken varint: bytes are left
    if (!field(tag)) return false;
  }
  return true;
}

// A length-delimited embedded message, read field by field by `field`.
template <typename Field>
bool ReadEmbedded(CodedInputStream* in, Field&& field) {
  int length = 0;
  if (!ReadLength(in, &length)) return false;
  const CodedInputStream::Limit limit = in->PushLimit(length);
  const bool ok = ReadFields(in, field);
  in->PopLimit(limit);
  return ok;
}

// A length-delimited embedded message merged into its generated message, as protobuf merges a
// message field that occurs more than once.
bool MergeEmbedded(CodedInputStream* in, google::protobuf::MessageLite* message) {
  std::string bytes;
  return ReadBytes(in, &bytes) && message->MergeFromString(bytes);
}

// event_store.client.UUID: a oneof of Structured (two int64 halves) and a string. A later
// occurrence of the other member replaces the value; of the same member, merges into it.
struct UuidFields {
  enum class Kind : uint8_t { kNone, kStructured, kString } kind = Kind::kNone;
  uint64_t most = 0;
  uint64_t least = 0;
  std::string text;
};

bool ReadUuid(CodedInputStream* in, UuidFields* u) {
  return ReadEmbedded(in, [&](uint32_t tag) {
    if (tag == kLen(1)) {  // structured
      if (u->kind != UuidFields::Kind::kStructured) {
        u->kind = UuidFields::Kind::kStructured;
        u->most = u->least = 0;
      }
      return ReadEmbedded(in, [&](uint32_t t) {
        if (t == kVarint(1)) return in->ReadVarint64(&u->most);
        if (t == kVarint(2)) return in->ReadVarint64(&u->least);
        return SkipUnknown(in, t);
      });
    }
    if (tag == kLen(2)) {  // string (proto3: UTF-8)
      u->kind = UuidFields::Kind::kString;
      return ReadBytes(in, &u->text) && IsUtf8(u->text);
    }
    return SkipUnknown(in, tag);
  });
}

// BatchAppendReq.ProposedMessage: 1 id, 2 metadata (map<string, string>: entries of 1 key and
// 2 value), 3 custom_metadata, 4 data.
bool ReadProposed(CodedInputStream* in, WireProposedMessage* m) {
  UuidFields id;
  std::string key;
  std::string value;
  m->event.content_type = ContentType::kBytes;
  const bool ok = ReadEmbedded(in, [&](uint32_t tag) {
    switch (tag) {
      case kLen(1):
        m->has_id = true;
        return ReadUuid(in, &id);
      case kLen(2): {
        key.clear();
        value.clear();
        const bool entry_ok = ReadEmbedded(in, [&](uint32_t t) {
          if (t == kLen(1)) return ReadBytes(in, &key);
          if (t == kLen(2)) return ReadBytes(in, &value);
          return SkipUnknown(in, t);
        });
        if (!entry_ok || !IsUtf8(key) || !IsUtf8(value)) return false;
        if (key == "type") {
          m->has_type = true;
          m->event.type.swap(value);
        } else if (key == "content-type") {
          m->has_content_type = true;
          m->event.content_type = value == kContentTypeJson ? ContentType::kJson : ContentType::kBytes;
        }
        return true;
      }
      case kLen(3):
        return ReadBytes(in, &m->event.metadata);
      case kLen(4):
        return ReadBytes(in, &m->event.data);
      default:
        return SkipUnknown(in, tag);
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
  static size_t VarintSize(uint64_t v) { return CodedOutputStream::VarintSize64(v); }
  // A field of numbers below 16 (a one-byte tag) with a body of `size` bytes behind its length.
  static size_t Field(int /*number*/, size_t size) { return 1 + VarintSize(size) + size; }
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
  static uint8_t* Tag(int number, int wire_type, uint8_t* p) {
    *p++ = static_cast<uint8_t>((number << 3) | wire_type);
    return p;
  }
  static uint8_t* Header(int number, size_t size, uint8_t* p) {
    return CodedOutputStream::WriteVarint64ToArray(size, Tag(number, 2, p));
  }
  static uint8_t* VarintField(int number, uint64_t v, uint8_t* p) {
    return CodedOutputStream::WriteVarint64ToArray(v, Tag(number, 0, p));
  }
  static uint8_t* BytesField(int number, std::string_view bytes, uint8_t* p) {
    p = Header(number, bytes.size(), p);
    return CodedOutputStream::WriteRawToArray(bytes.data(), static_cast<int>(bytes.size()), p);
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

Status Parse(CodedInputStream* in, size_t size, WireBatchAppendReq* out) {
  out->Clear();
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) return Malformed("the message (over 2 GiB)");
  in->SetTotalBytesLimit(static_cast<int>(size));
  in->PushLimit(static_cast<int>(size));
  const char* where = "the message";
  const bool ok = ReadFields(in, [&](uint32_t tag) {
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
        return ReadProposed(in, &out->proposed_messages.emplace_back());
      case kVarint(4): {
        where = "is_final";
        uint64_t v = 0;
        if (!in->ReadVarint64(&v)) return false;
        out->is_final = v != 0;
        return true;
      }
      default:
        where = "an unknown field";
        return SkipUnknown(in, tag);
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

void WireBatchAppendReq::Clear() {
  has_correlation_id = false;
  correlation_id.Clear();
  has_options = false;
  options.Clear();
  proposed_messages.clear();
  is_final = false;
}

Status ParseBatchAppendReq(grpc::ByteBuffer* bytes, WireBatchAppendReq* out) {
  grpc::ProtoBufferReader reader(bytes);
  if (!reader.status().ok()) return Status::InvalidArgument("BatchAppendReq: no message bytes");
  CodedInputStream in(&reader);
  return Parse(&in, bytes->Length(), out);
}

Status ParseBatchAppendReq(std::string_view bytes, WireBatchAppendReq* out) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::InvalidArgument("BatchAppendReq: malformed bytes in the message (over 2 GiB)");
  }
  google::protobuf::io::ArrayInputStream stream(bytes.data(), static_cast<int>(bytes.size()));
  CodedInputStream in(&stream);
  return Parse(&in, bytes.size(), out);
}

}  // namespace cairn::server

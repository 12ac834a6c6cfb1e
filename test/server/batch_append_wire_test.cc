// The server reads BatchAppendReq from its bytes by hand (src/server/batch_append_wire.h). These
// tests hold it to protobuf's generated parser for the same .proto: on every input both accept
// or both refuse, and when both accept they say the same thing (correlation id, options, is_final,
// and per proposed message: id, "type" and "content-type" entries, data, custom metadata). The
// inputs: typical messages, empty and large data, missing fields, unknown fields of every wire
// type at every level, known field numbers with another wire type, repeated fields (last wins,
// messages merge), every truncation of a message, invalid UTF-8, broken tags and lengths, and
// a few thousand deterministic byte mutations. The bytes also go through a gRPC ByteBuffer cut
// into several slices, as the server receives them. Last, the client's encoder
// (EncodeBatchAppendReq) against the generated message built with the same values.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/unknown_field_set.h>

#include "esdb/streams.pb.h"
#include "server/batch_append_wire.h"
#include "server/protocol.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;

std::string Hex(const std::string& bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

// Wire helpers for hand-made bytes.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Key(int field, int wire_type) { return Varint((static_cast<uint64_t>(field) << 3) | wire_type); }
std::string Len(int field, const std::string& bytes) { return Key(field, 2) + Varint(bytes.size()) + bytes; }
std::string VarintField(int field, uint64_t v) { return Key(field, 0) + Varint(v); }

// The same bytes as a ByteBuffer of several slices (cut every `piece` bytes).
grpc::ByteBuffer Sliced(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) slices.emplace_back(bytes.substr(at, piece));
  if (slices.empty()) slices.emplace_back("");
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// Both parsers on `bytes`; returns whether they accepted. Fails the test when they disagree.
bool ExpectSame(const std::string& bytes, const std::string& what) {
  SCOPED_TRACE(what + ": " + (bytes.size() <= 256 ? Hex(bytes) : Hex(bytes.substr(0, 256)) + "..."));
  pb::BatchAppendReq generated;
  google::protobuf::LogSilencer quiet;  // the generated parser logs each string that is not UTF-8
  const bool generated_ok = generated.ParseFromString(bytes);
  WireBatchAppendReq raw;
  const Status raw_status = ParseBatchAppendReq(bytes, &raw);
  EXPECT_EQ(raw_status.ok(), generated_ok) << raw_status.ToString();
  if (!raw_status.ok()) {
    EXPECT_EQ(raw_status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(raw_status.message().find("BatchAppendReq: malformed bytes in "), std::string::npos)
        << raw_status.message();
  }
  // The same through a sliced ByteBuffer, as gRPC hands it over.
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}}) {
    if (bytes.size() > 4096 && piece < 4096) continue;  // large inputs: one cut size is enough
    grpc::ByteBuffer buffer = Sliced(bytes, piece);
    WireBatchAppendReq from_buffer;
    const Status s = ParseBatchAppendReq(&buffer, &from_buffer);
    EXPECT_EQ(s.ok(), raw_status.ok()) << "slices of " << piece << ": " << s.ToString();
    if (s.ok() && raw_status.ok()) {
      EXPECT_EQ(from_buffer.proposed_messages.size(), raw.proposed_messages.size());
      for (size_t i = 0; i < raw.proposed_messages.size() && i < from_buffer.proposed_messages.size(); ++i) {
        EXPECT_EQ(from_buffer.proposed_messages[i].event.data, raw.proposed_messages[i].event.data);
        EXPECT_EQ(from_buffer.proposed_messages[i].event.type, raw.proposed_messages[i].event.type);
      }
    }
  }
  if (!generated_ok || !raw_status.ok()) return false;

  EXPECT_EQ(raw.has_correlation_id, generated.has_correlation_id());
  EXPECT_EQ(raw.correlation_id.SerializeAsString(), generated.correlation_id().SerializeAsString());
  EXPECT_EQ(raw.has_options, generated.has_options());
  EXPECT_EQ(raw.options.SerializeAsString(), generated.options().SerializeAsString());
  EXPECT_EQ(raw.is_final, generated.is_final());
  EXPECT_EQ(raw.proposed_messages.size(), static_cast<size_t>(generated.proposed_messages_size()));
  for (int i = 0; i < generated.proposed_messages_size() && static_cast<size_t>(i) < raw.proposed_messages.size();
       ++i) {
    SCOPED_TRACE("proposed message " + std::to_string(i));
    const auto& g = generated.proposed_messages(i);
    const WireProposedMessage& r = raw.proposed_messages[static_cast<size_t>(i)];
    EXPECT_EQ(r.has_id, g.has_id());
    const std::optional<Uuid> id = g.has_id() ? UuidFromProto(g.id()) : std::nullopt;
    EXPECT_EQ(r.id_valid, id.has_value());
    if (id) {
      EXPECT_EQ(r.event.id, *id);
    }
    if (!g.has_id()) {
      EXPECT_TRUE(r.event.id.IsNil());
    }
    auto type = g.metadata().find("type");
    EXPECT_EQ(r.has_type, type != g.metadata().end());
    if (type != g.metadata().end()) {
      EXPECT_EQ(r.event.type, type->second);
    }
    auto content_type = g.metadata().find("content-type");
    EXPECT_EQ(r.has_content_type, content_type != g.metadata().end());
    if (content_type != g.metadata().end()) {
      EXPECT_EQ(r.event.content_type,
                content_type->second == kContentTypeJson ? ContentType::kJson : ContentType::kBytes);
    }
    EXPECT_EQ(r.event.data, g.data());
    EXPECT_EQ(r.event.metadata, g.custom_metadata());
  }
  return true;
}

pb::BatchAppendReq Typical() {
  pb::BatchAppendReq req;
  req.mutable_correlation_id()->mutable_structured()->set_most_significant_bits(0x0123456789abcdefLL);
  req.mutable_correlation_id()->mutable_structured()->set_least_significant_bits(-42);
  auto* o = req.mutable_options();
  o->mutable_stream_identifier()->set_stream_name("account-1");
  o->set_stream_position(7);
  o->mutable_deadline()->set_seconds(1700000000);
  for (int i = 0; i < 3; ++i) {
    auto* m = req.add_proposed_messages();
    if (i == 0) m->mutable_id()->set_string("0190d7a8-8c3e-7b1a-9f00-00000000000" + std::to_string(i));
    if (i == 1) {
      m->mutable_id()->mutable_structured()->set_most_significant_bits(-1);
      m->mutable_id()->mutable_structured()->set_least_significant_bits(5);
    }
    (*m->mutable_metadata())["type"] = "Deposited";
    (*m->mutable_metadata())["content-type"] = i == 2 ? "application/octet-stream" : "application/json";
    (*m->mutable_metadata())["other"] = "ignored";
    m->set_data("{\"amount\":" + std::to_string(i) + "}");
    if (i == 1) m->set_custom_metadata("{\"$correlationId\":\"x\"}");
  }
  req.set_is_final(true);
  return req;
}

TEST(BatchAppendWireTest, TypicalMessagesReadTheSame) {
  EXPECT_TRUE(ExpectSame(Typical().SerializeAsString(), "typical"));
  pb::BatchAppendReq no_final = Typical();
  no_final.set_is_final(false);
  no_final.clear_options();
  EXPECT_TRUE(ExpectSame(no_final.SerializeAsString(), "continuation without options"));
  EXPECT_TRUE(ExpectSame("", "empty message"));
  // What the C++ client and the bench send: string ids or none, 100 events.
  pb::BatchAppendReq hundred;
  hundred.mutable_correlation_id()->set_string("0190d7a8-8c3e-7b1a-9f00-000000000001");
  hundred.mutable_options()->mutable_stream_identifier()->set_stream_name("s-1");
  hundred.mutable_options()->mutable_any();
  for (int i = 0; i < 100; ++i) {
    auto* m = hundred.add_proposed_messages();
    (*m->mutable_metadata())["type"] = "T" + std::to_string(i);
    (*m->mutable_metadata())["content-type"] = "application/json";
    m->set_data(std::string(static_cast<size_t>(i) * 7, 'd'));
  }
  hundred.set_is_final(true);
  EXPECT_TRUE(ExpectSame(hundred.SerializeAsString(), "100 events"));
}

TEST(BatchAppendWireTest, EmptyAndLargeDataAndMissingFields) {
  pb::BatchAppendReq req = Typical();
  req.mutable_proposed_messages(0)->clear_data();
  req.mutable_proposed_messages(1)->set_data(std::string(3 << 20, '\xff'));  // bytes: not UTF-8 is fine
  EXPECT_TRUE(ExpectSame(req.SerializeAsString(), "empty and 3 MiB data"));

  pb::BatchAppendReq missing = Typical();
  missing.mutable_proposed_messages(0)->mutable_metadata()->erase("type");
  missing.mutable_proposed_messages(1)->mutable_metadata()->erase("content-type");
  missing.mutable_proposed_messages(2)->mutable_metadata()->clear();
  missing.clear_correlation_id();
  EXPECT_TRUE(ExpectSame(missing.SerializeAsString(), "missing metadata entries and correlation id"));

  pb::BatchAppendReq ids = Typical();
  ids.mutable_proposed_messages(0)->mutable_id()->set_string("not a uuid");
  ids.mutable_proposed_messages(1)->mutable_id()->Clear();  // present but neither form
  EXPECT_TRUE(ExpectSame(ids.SerializeAsString(), "ids that are no UUID"));

  pb::BatchAppendReq only_messages;
  only_messages.add_proposed_messages();  // an empty proposed message
  EXPECT_TRUE(ExpectSame(only_messages.SerializeAsString(), "one empty proposed message"));
}

TEST(BatchAppendWireTest, UnknownFieldsAreSkippedAtEveryLevel) {
  // Unknown fields of each wire type: varint, fixed64, length-delimited, group, fixed32.
  const std::string unknown = VarintField(1999, 7) + Key(15, 1) + std::string(8, 'x') + Len(16, "abc") +
                              Key(17, 3) + VarintField(1, 5) + Len(2, "in a group") + Key(17, 4) + Key(18, 5) +
                              std::string(4, 'y');
  const std::string structured_id = Len(1, VarintField(1, 11) + unknown + VarintField(2, 22));
  const std::string entry_type = Len(2, Len(1, "type") + unknown + Len(2, "Deposited"));
  const std::string entry_ct = Len(2, unknown + Len(2, "application/json") + Len(1, "content-type"));
  const std::string proposed =
      Len(3, Len(1, unknown + structured_id) + entry_type + unknown + entry_ct + Len(4, "{}") + Len(3, "md"));
  const std::string bytes = unknown + Len(1, Len(2, "0190d7a8-8c3e-7b1a-9f00-000000000001") + unknown) +
                            Len(2, Len(1, Len(3, "s-1")) + unknown + Len(4, "")) + proposed + unknown +
                            VarintField(4, 1) + unknown;
  ASSERT_TRUE(ExpectSame(bytes, "unknown fields everywhere"));
  WireBatchAppendReq raw;
  ASSERT_TRUE(ParseBatchAppendReq(bytes, &raw).ok());
  ASSERT_EQ(raw.proposed_messages.size(), 1u);
  EXPECT_EQ(raw.proposed_messages[0].event.type, "Deposited");
  EXPECT_EQ(raw.proposed_messages[0].event.content_type, ContentType::kJson);
  EXPECT_EQ(raw.proposed_messages[0].event.data, "{}");
  EXPECT_TRUE(raw.is_final);

  // Unknown fields set through the generated message's own unknown-field set serialize the same.
  pb::BatchAppendReq req = Typical();
  req.GetReflection()->MutableUnknownFields(&req)->AddVarint(1999, 7);
  req.GetReflection()->MutableUnknownFields(req.mutable_proposed_messages(1))->AddLengthDelimited(99, "zz");
  EXPECT_TRUE(ExpectSame(req.SerializeAsString(), "unknown fields through reflection"));
}

TEST(BatchAppendWireTest, KnownNumbersWithAnotherWireTypeAreUnknownFields) {
  const std::string entry = Len(2, Len(1, "type") + Len(2, "A")) + Len(2, Len(1, "content-type") + Len(2, "x"));
  EXPECT_TRUE(ExpectSame(Len(4, "yes") + Len(3, entry), "is_final as bytes"));
  EXPECT_TRUE(ExpectSame(VarintField(3, 1) + VarintField(1, 2) + VarintField(2, 3), "messages as varints"));
  EXPECT_TRUE(ExpectSame(Len(3, VarintField(4, 1) + VarintField(3, 2) + VarintField(2, 3) + VarintField(1, 4) + entry),
                         "proposed fields as varints"));
  EXPECT_TRUE(ExpectSame(Len(3, entry + Len(2, VarintField(1, 1) + Len(2, "B"))), "map key as varint"));
  EXPECT_TRUE(ExpectSame(Len(3, Len(1, Len(1, Len(1, "x") + Len(2, "y")))), "structured halves as bytes"));
  EXPECT_TRUE(ExpectSame(Len(3, Len(1, VarintField(2, 5))), "uuid string as varint"));
}

TEST(BatchAppendWireTest, RepeatedFieldsFollowProtobufRules) {
  const auto entry = [](const std::string& k, const std::string& v) { return Len(2, Len(1, k) + Len(2, v)); };
  // Scalars: the last wins; messages: merge; map keys: the last wins; oneof: the last member.
  EXPECT_TRUE(ExpectSame(VarintField(4, 1) + VarintField(4, 0) + VarintField(4, 300), "is_final three times"));
  EXPECT_TRUE(ExpectSame(Len(2, Len(1, Len(3, "first"))) + Len(2, VarintField(2, 9)) + Len(2, Len(1, Len(3, "last"))),
                         "options merged"));
  EXPECT_TRUE(ExpectSame(Len(1, Len(2, "a")) + Len(1, Len(1, VarintField(1, 3))), "correlation id: string then structured"));
  const std::string message = entry("type", "A") + entry("content-type", "application/json") + entry("type", "B") +
                              entry("content-type", "text/plain") + Len(4, "one") + Len(4, "two") + Len(3, "m1") +
                              Len(3, "m2");
  EXPECT_TRUE(ExpectSame(Len(3, message), "map keys and bytes twice"));
  const std::string ids = Len(1, Len(1, VarintField(1, 1))) + Len(1, Len(1, VarintField(2, 2)));
  EXPECT_TRUE(ExpectSame(Len(3, ids + message), "structured id in two parts (merged)"));
  const std::string switched = Len(1, Len(1, VarintField(1, 1) + VarintField(2, 2))) +
                               Len(1, Len(2, "0190d7a8-8c3e-7b1a-9f00-000000000001")) +
                               Len(1, Len(1, VarintField(2, 3)));
  EXPECT_TRUE(ExpectSame(Len(3, switched + message), "id structured, string, structured again"));
  EXPECT_TRUE(ExpectSame(Len(3, Len(1, "") + message), "empty id message"));
  EXPECT_TRUE(ExpectSame(Len(3, Len(2, "") + Len(2, Len(1, "type")) + message), "empty map entries"));
}

TEST(BatchAppendWireTest, MalformedBytesAreRefusedByBoth) {
  const std::string good = Typical().SerializeAsString();
  // Every truncation of a message.
  int refused = 0;
  for (size_t n = 0; n < good.size(); ++n) refused += ExpectSame(good.substr(0, n), "truncated to " + std::to_string(n)) ? 0 : 1;
  EXPECT_GT(refused, 0);
  const std::string entry = Len(2, Len(1, "type") + Len(2, "A"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"tag 0", std::string(1, '\0')},
      {"tag 0 after a field", VarintField(4, 1) + std::string(1, '\0')},
      {"field number 0", Key(0, 0) + Varint(1)},
      {"field number 0, bytes", Key(0, 2) + Varint(1) + "x"},
      {"group end without start", Key(5, 4)},
      {"group without end", Key(5, 3) + VarintField(1, 1)},
      {"group ended by another number", Key(5, 3) + Key(6, 4)},
      {"wire type 6", Key(5, 6) + "abcdefgh"},
      {"wire type 7", Key(5, 7) + "abcdefgh"},
      {"length past the end", Key(3, 2) + Varint(50) + "short"},
      {"inner length past its message", Len(3, Key(4, 2) + Varint(10) + "abc") + VarintField(4, 1)},
      {"varint of 11 bytes", Key(4, 0) + std::string(10, '\x80') + std::string(1, '\x01')},
      {"tag 0 inside a proposed message", Len(3, entry + std::string(1, '\0'))},
      {"group end inside a proposed message", Len(3, entry + Key(9, 4))},
      {"map key not UTF-8", Len(3, Len(2, Len(1, "\xff\xfe") + Len(2, "v")))},
      {"map value not UTF-8", Len(3, Len(2, Len(1, "type") + Len(2, "\xc3\x28")))},
      {"map key with a surrogate", Len(3, Len(2, Len(1, "\xed\xa0\x80") + Len(2, "v")))},
      {"uuid string not UTF-8", Len(3, Len(1, Len(2, "\x80\x80")))},
      {"correlation id string not UTF-8", Len(1, Len(2, "\xff"))},
      {"options with a truncated field", Len(2, Key(2, 0))},
      {"huge length", Key(3, 2) + Varint(0x7fffffff) + "x"},
      {"length over 2^31", Key(3, 2) + Varint(0xffffffffULL) + "x"},
      {"data not UTF-8 (bytes: fine)", Len(3, entry + Len(4, "\xff\xfe"))},
  };
  for (const auto& [what, bytes] : cases) ExpectSame(bytes, what);
  WireBatchAppendReq raw;
  const Status s = ParseBatchAppendReq(Len(3, Len(2, Len(1, "\xff") + Len(2, "v"))), &raw);
  EXPECT_EQ(s.message(), "BatchAppendReq: malformed bytes in proposed_messages[0]");
}

// The reader's own limits against the generated parser's: varint lengths of tags, lengths and
// values at and one past their maximum, and groups nested up to and past the recursion limit,
// at the top level and inside a proposed message.
TEST(BatchAppendWireTest, VarintAndNestingLimitsMatchTheGeneratedParser) {
  const std::string entry = Len(2, Len(1, "type") + Len(2, "A"));
  // A tag in k bytes: field 4 (is_final), wire type 0, padded with continuation bytes.
  const auto long_tag = [](int bytes) {
    std::string tag(1, static_cast<char>(0x80 | (4 << 3)));
    for (int i = 1; i < bytes - 1; ++i) tag.push_back('\x80');
    tag.push_back('\0');
    return tag;
  };
  const auto long_length = [](size_t length, int bytes) {
    std::string out;
    for (int i = 0; i < bytes - 1; ++i) {
      out.push_back(static_cast<char>((length & 0x7f) | 0x80));
      length >>= 7;
    }
    out.push_back(static_cast<char>(length));
    return out;
  };
  EXPECT_TRUE(ExpectSame(long_tag(5) + Varint(1), "tag in 5 bytes"));
  EXPECT_FALSE(ExpectSame(long_tag(6) + Varint(1), "tag in 6 bytes"));
  EXPECT_TRUE(ExpectSame(Key(3, 2) + long_length(entry.size(), 5) + entry, "length in 5 bytes"));
  EXPECT_FALSE(ExpectSame(Key(3, 2) + long_length(entry.size(), 6) + entry, "length in 6 bytes"));
  EXPECT_TRUE(ExpectSame(Key(4, 0) + std::string(9, '\x81') + std::string(1, '\x01'), "value varint in 10 bytes"));
  EXPECT_TRUE(ExpectSame(Key(4, 0) + std::string(9, '\xff') + std::string(1, '\x7f'), "value varint past 64 bits"));
  // Unknown groups nested `depth` deep, at the top level and inside a proposed message.
  const auto groups = [](int depth) {
    std::string open;
    std::string close;
    for (int i = 0; i < depth; ++i) {
      open += Key(20 + i % 3, 3);
      close = Key(20 + i % 3, 4) + close;
    }
    return open + VarintField(1, 1) + close;
  };
  int accepted = 0;
  for (int depth : {98, 99, 100, 101, 102}) {
    accepted += ExpectSame(groups(depth) + VarintField(4, 1), "top-level groups " + std::to_string(depth) + " deep");
    accepted += ExpectSame(Len(3, entry + groups(depth)), "groups " + std::to_string(depth) + " deep in a message");
  }
  EXPECT_GT(accepted, 0);  // the limit falls inside the range tried: some depths pass, some do not
  EXPECT_LT(accepted, 10);
}

TEST(BatchAppendWireTest, MutatedBytesReadTheSameOrAreRefusedByBoth) {
  std::mt19937 rng(20261127);
  const std::string base = Typical().SerializeAsString();
  int accepted = 0;
  int refused = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = base;
    const int edits = 1 + static_cast<int>(rng() % 2);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[at] = static_cast<char>(rng()); break;                    // replace a byte
        case 1: bytes.erase(at, 1 + rng() % 3); break;                          // drop bytes
        case 2: bytes.insert(at, 1, static_cast<char>(rng())); break;           // insert a byte
        case 3: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8))); break;  // flip a bit
      }
      if (bytes.empty()) bytes = base;
    }
    (ExpectSame(bytes, "mutation round " + std::to_string(round)) ? accepted : refused)++;
    if (HasFailure()) break;  // one disagreement is enough to read
  }
  // Both outcomes are well represented (so the comparison covers values and refusals).
  EXPECT_GT(accepted, 200);
  EXPECT_GT(refused, 200);
  std::printf("mutations: %d read the same by both parsers, %d refused by both\n", accepted, refused);
}

// The client's encoder: the generated parser reads its bytes as the message built with the same
// values, for each expected-version kind, ids or none, empty and large data, and 1,000 events.
TEST(BatchAppendWireTest, EncodedRequestsReadAsTheMessageTheyStandFor) {
  std::vector<EventData> events;
  events.push_back(EventData{Uuid{}, "Deposited", "{\"amount\":1}", "", ContentType::kJson});
  events.push_back(EventData{*Uuid::Parse("0190d7a8-8c3e-7b1a-9f00-000000000007"), "Bytes", std::string(300, '\0'),
                             "{\"$correlationId\":\"x\"}", ContentType::kBytes});
  events.push_back(EventData{Uuid{}, "", "", "", ContentType::kJson});  // empty type and data
  events.push_back(EventData{Uuid::V7(), std::string(500, 't'), std::string(1 << 20, 'd'), "", ContentType::kJson});
  const std::vector<std::pair<ExpectedVersion, std::string>> kinds = {
      {ExpectedVersion::Any(), "any"},
      {ExpectedVersion::NoStream(), "no stream"},
      {ExpectedVersion::StreamExists(), "stream exists"},
      {ExpectedVersion::Exact(0), "exact 0"},
      {ExpectedVersion::Exact(uint64_t{1} << 40), "exact 2^40"}};
  for (const auto& [expected, name] : kinds) {
    SCOPED_TRACE(name);
    const int64_t most = -7;  // negative halves take ten bytes each
    const int64_t least = 300;
    const std::string bytes = EncodeBatchAppendReq(most, least, "account-\xc3\xa9", expected, events);
    pb::BatchAppendReq parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    // The message the bytes stand for, built with the generated API.
    pb::BatchAppendReq want;
    want.mutable_correlation_id()->mutable_structured()->set_most_significant_bits(most);
    want.mutable_correlation_id()->mutable_structured()->set_least_significant_bits(least);
    auto* o = want.mutable_options();
    o->mutable_stream_identifier()->set_stream_name("account-\xc3\xa9");
    switch (expected.kind()) {
      case ExpectedVersion::Kind::kAny: o->mutable_any(); break;
      case ExpectedVersion::Kind::kNoStream: o->mutable_no_stream(); break;
      case ExpectedVersion::Kind::kStreamExists: o->mutable_stream_exists(); break;
      case ExpectedVersion::Kind::kExact: o->set_stream_position(expected.version()); break;
    }
    for (const EventData& e : events) {
      auto* m = want.add_proposed_messages();
      if (!e.id.IsNil()) m->mutable_id()->set_string(e.id.ToString());
      (*m->mutable_metadata())["type"] = e.type;
      (*m->mutable_metadata())["content-type"] =
          std::string(e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes);
      m->set_custom_metadata(e.metadata);
      m->set_data(e.data);
    }
    want.set_is_final(true);
    // Map order is not part of the encoding: compare deterministic serializations.
    std::string a;
    std::string b;
    {
      google::protobuf::io::StringOutputStream sa(&a);
      google::protobuf::io::CodedOutputStream ca(&sa);
      ca.SetSerializationDeterministic(true);
      parsed.SerializeToCodedStream(&ca);
    }
    {
      google::protobuf::io::StringOutputStream sb(&b);
      google::protobuf::io::CodedOutputStream cb(&sb);
      cb.SetSerializationDeterministic(true);
      want.SerializeToCodedStream(&cb);
    }
    EXPECT_TRUE(a == b) << "the encoded request differs from the message it stands for";
    EXPECT_EQ(bytes.size(), want.ByteSizeLong());
    // And the server's reader agrees with the generated parser on them.
    EXPECT_TRUE(ExpectSame(bytes, "encoded " + name));
  }
  // 1,000 events with ids: sizes past one-byte lengths everywhere.
  std::vector<EventData> many;
  for (int i = 0; i < 1000; ++i) {
    many.push_back(EventData{Uuid::V7(), "T" + std::to_string(i), std::string(static_cast<size_t>(i), 'x'), "",
                             ContentType::kJson});
  }
  const std::string bytes = EncodeBatchAppendReq(1, 2, "s", ExpectedVersion::Any(), many);
  pb::BatchAppendReq parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_EQ(parsed.proposed_messages_size(), 1000);
  EXPECT_EQ(parsed.proposed_messages(999).data(), std::string(999, 'x'));
  EXPECT_EQ(parsed.proposed_messages(999).metadata().at("type"), "T999");
  EXPECT_EQ(UuidFromProto(parsed.proposed_messages(5).id()), many[5].id);
}

// The server's answer to a successful append, written by hand: byte for byte what the generated
// message with the same values serializes to, for ids in both forms (and with unknown fields),
// revisions and positions small and large, and no stream / no position.
TEST(BatchAppendWireTest, EncodedSuccessIsTheGeneratedMessagesBytes) {
  std::vector<event_store::client::UUID> ids(4);
  ids[0].mutable_structured()->set_most_significant_bits(0x0123456789abcdefLL);
  ids[0].mutable_structured()->set_least_significant_bits(-42);
  ids[1].set_string("0190d7a8-8c3e-7b1a-9f00-000000000001");
  ids[2].mutable_structured();  // both halves zero
  ASSERT_TRUE(ids[3].ParseFromString(Len(1, VarintField(1, 5) + VarintField(7, 9)) + VarintField(9, 1)));
  std::vector<event_store::client::StreamIdentifier> streams(3);
  streams[0].set_stream_name("account-1");
  streams[1].set_stream_name(std::string(300, 's'));  // a two-byte length
  const std::vector<std::optional<StreamVersion>> currents = {std::nullopt, 0, 127, 128, kMaxStreamVersion};
  const std::vector<std::optional<Position>> positions = {std::nullopt, Position(64), Position(1ULL << 40),
                                                          Position(UINT64_MAX)};
  int compared = 0;
  for (const auto& id : ids) {
    for (const auto& stream : streams) {
      for (const auto& current : currents) {
        for (const auto& position : positions) {
          pb::BatchAppendResp want;
          *want.mutable_correlation_id() = id;
          *want.mutable_stream_identifier() = stream;
          auto* success = want.mutable_success();
          if (current) {
            success->set_current_revision(*current);
          } else {
            success->mutable_no_stream();
          }
          if (position) {
            success->mutable_position()->set_commit_position(position->value());
            success->mutable_position()->set_prepare_position(position->value());
          } else {
            success->mutable_no_position();
          }
          const std::string got = EncodeBatchAppendSuccess(id, stream, current, position);
          ASSERT_EQ(Hex(got), Hex(want.SerializeAsString()))
              << "id " << id.ShortDebugString() << ", stream of " << stream.stream_name().size() << " bytes, current "
              << (current ? std::to_string(*current) : "none") << ", position "
              << (position ? std::to_string(position->value()) : "none");
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 4 * 3 * 5 * 4);
}

// The client's reading of answers: whatever ReadBatchAppendSuccess accepts, the generated parser
// reads as a success with the same id, revision and position; what it declines (errors, the id
// as a string, unknown fields, odd shapes) is left to the generated parser. Typical answers must
// be accepted, and mutated ones either agree or are declined.
TEST(BatchAppendWireTest, ReadSuccessAgreesWithTheGeneratedParserOrDeclines) {
  const auto check = [](const std::string& bytes, const std::string& what) {
    SCOPED_TRACE(what + ": " + Hex(bytes));
    BatchAppendSuccessView view;
    if (!ReadBatchAppendSuccess(bytes, &view)) return false;
    pb::BatchAppendResp g;
    google::protobuf::LogSilencer quiet;
    EXPECT_TRUE(g.ParseFromString(bytes));
    EXPECT_TRUE(g.has_success());
    EXPECT_TRUE(g.correlation_id().has_structured());
    EXPECT_EQ(view.correlation_most, static_cast<uint64_t>(g.correlation_id().structured().most_significant_bits()));
    EXPECT_EQ(view.correlation_least, static_cast<uint64_t>(g.correlation_id().structured().least_significant_bits()));
    EXPECT_EQ(view.current.has_value(), g.success().has_current_revision());
    if (view.current) {
      EXPECT_EQ(*view.current, g.success().current_revision());
    }
    EXPECT_EQ(view.position.has_value(), g.success().has_position());
    if (view.position) {
      EXPECT_EQ(view.position->value(), g.success().position().commit_position());
    }
    return true;
  };
  event_store::client::UUID id;
  id.mutable_structured()->set_most_significant_bits(77);
  id.mutable_structured()->set_least_significant_bits(-5);
  event_store::client::StreamIdentifier stream;
  stream.set_stream_name("account-1");
  std::vector<std::string> typical;
  for (auto current : {std::optional<StreamVersion>(), std::optional<StreamVersion>(0), std::optional<StreamVersion>(1u << 20)}) {
    for (auto position : {std::optional<Position>(), std::optional<Position>(Position(4096))}) {
      typical.push_back(EncodeBatchAppendSuccess(id, stream, current, position));
      EXPECT_TRUE(check(typical.back(), "typical")) << "declined a typical answer";
    }
  }
  // Declined: an error answer, the id as a string, an unknown field, a field twice.
  pb::BatchAppendResp error;
  *error.mutable_correlation_id() = id;
  error.mutable_error()->set_code(9);
  EXPECT_FALSE(check(error.SerializeAsString(), "error"));
  event_store::client::UUID text;
  text.set_string("0190d7a8-8c3e-7b1a-9f00-000000000001");
  EXPECT_FALSE(check(EncodeBatchAppendSuccess(text, stream, 3, Position(64)), "string id"));
  EXPECT_FALSE(check(typical[0] + VarintField(15, 1), "unknown field"));
  EXPECT_FALSE(check(typical[0] + Len(3, VarintField(1, 9)), "success twice"));
  // A position message without its commit field reads as position 0 in both.
  EXPECT_TRUE(check(Len(1, Len(1, VarintField(2, 1))) + Len(3, VarintField(1, 2) + Len(3, VarintField(2, 5))), "no commit"));
  std::mt19937 rng(27);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = typical[rng() % typical.size()];
    const size_t at = rng() % bytes.size();
    switch (rng() % 3) {
      case 0: bytes[at] = static_cast<char>(rng()); break;
      case 1: bytes.erase(at, 1); break;
      case 2: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8))); break;
    }
    accepted += check(bytes, "mutation " + std::to_string(round)) ? 1 : 0;
    if (HasFailure()) break;
  }
  EXPECT_GT(accepted, 100);  // mutated values, still successes, are read (and agree)
}

}  // namespace
}  // namespace cairn::server

// Typed events, metadata and schema evolution: what CAIRN_EVENT generates, how events are encoded,
// and how stored events of older schemas, renamed types and unknown types decode.
// How: EventCodec on hand-built RecordedEventViews, and on events appended to a memory: store.
#include <gtest/gtest.h>

#include "cairn/es/codec.h"
#include "cairn/es/event.h"
#include "cairn/es/schema.h"
#include "es/test_domain.h"

namespace cairn::es {
namespace {

using test::AccountClosed;
using test::AccountCreated;
using test::Deposited;
using test::Withdrew;
using AccountEvent = std::variant<AccountCreated, Deposited, Withdrew, AccountClosed>;

// Three schema versions of one event, as code evolves: v1 {id, total}, v2 adds currency, v3
// stores cents. Only v3 is in the code; the older shapes exist only as stored JSON.
struct OrderCreated {
  std::string id;
  int64_t total_cents = 0;
  std::string currency;
  std::string channel = "web";  // weak schema: added without an upcaster, defaults when missing
};
CAIRN_EVENT(OrderCreated, "OrderCreated", 3, id, total_cents, currency, channel)
using OrderEvent = std::variant<OrderCreated>;

std::shared_ptr<Upcasters> OrderUpcasters() {
  auto u = std::make_shared<Upcasters>();
  u->Rename("OrderPlaced", "OrderCreated")
      .Add("OrderCreated", 1, [](Json& d) { d["currency"] = "USD"; })
      .Add("OrderCreated", 2, [](Json& d) {
        d["total_cents"] = static_cast<int64_t>(d["total"].get<double>() * 100 + 0.5);
        d.erase("total");
      });
  return u;
}

RecordedEventView Stored(std::string_view type, std::string_view data, std::string_view metadata) {
  RecordedEventView v;
  v.stream = "order-1";
  v.version = 7;
  v.type = type;
  v.data = data;
  v.metadata = metadata;
  return v;
}

TEST(EventTypeTest, DeclarationGivesNameVersionAndJson) {
  static_assert(EventType<Deposited>);
  static_assert(TypeName<Deposited>() == "Deposited");
  static_assert(SchemaVersion<OrderCreated>() == 3);
  Json j;
  to_json(j, Deposited{42});
  EXPECT_EQ(j, Json::parse(R"({"amount":42})"));
  Json empty;
  to_json(empty, AccountClosed{});
  EXPECT_EQ(empty, Json::object());
  Deposited back;
  from_json(Json::parse(R"({"amount":7})"), back);
  EXPECT_EQ(back.amount, 7);
}

TEST(EventTypeTest, MissingFieldsTakeTheStructDefaults) {
  OrderCreated o;
  from_json(Json::parse(R"({"id":"o1","total_cents":5})"), o);
  EXPECT_EQ(o.channel, "web");
  EXPECT_EQ(o.currency, "");
  EXPECT_EQ(o.total_cents, 5);
}

TEST(EventTypeTest, WrongFieldTypeNamesTheField) {
  Deposited d;
  try {
    from_json(Json::parse(R"({"amount":"lots"})"), d);
    FAIL() << "no exception";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "amount");
    EXPECT_NE(std::string(e.what()).find("field 'amount'"), std::string::npos) << e.what();
  }
}

TEST(EventCodecTest, EncodeWritesTypeDataSchemaVersionAndContext) {
  CommandContext ctx;
  ctx.correlation_id = "corr-1";
  ctx.causation_id = "cause-1";
  ctx.user = "alice";
  ctx.extra = Json{{"ip", "10.0.0.1"}};
  auto e = EventCodec<AccountEvent>::Encode(Deposited{5}, ctx);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->type, "Deposited");
  EXPECT_EQ(Json::parse(e->data), Json::parse(R"({"amount":5})"));
  EXPECT_FALSE(e->id.IsNil());
  EXPECT_TRUE(e->metadata.starts_with(R"({"$schemaVersion":1,)")) << e->metadata;
  Json m = Json::parse(e->metadata);
  EXPECT_EQ(m["$correlationId"], "corr-1");
  EXPECT_EQ(m["$causationId"], "cause-1");
  EXPECT_EQ(m["$user"], "alice");
  EXPECT_EQ(m["ip"], "10.0.0.1");
}

TEST(EventCodecTest, ReservedOrNonObjectExtraIsRejected) {
  CommandContext ctx;
  ctx.extra = Json{{"$user", "mallory"}};
  auto e = EventCodec<AccountEvent>::Encode(Deposited{5}, ctx);
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(e.status().IsInvalidArgument());
  EXPECT_NE(e.status().message().find("\"$user\""), std::string::npos) << e.status().ToString();
  ctx.extra = Json::array();
  EXPECT_TRUE(EventCodec<AccountEvent>::Encode(Deposited{5}, ctx).status().IsInvalidArgument());
}

TEST(EventCodecTest, RoundTrip) {
  EventCodec<AccountEvent> codec;
  auto e = EventCodec<AccountEvent>::Encode(Withdrew{9}, {});
  ASSERT_TRUE(e.ok());
  auto back = codec.Decode(Stored(e->type, e->data, e->metadata));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(std::holds_alternative<Withdrew>(*back));
  EXPECT_EQ(std::get<Withdrew>(*back).amount, 9);
}

TEST(EventCodecTest, UnknownTypeIsReportedWithNameAndStream) {
  EventCodec<AccountEvent> codec;
  auto r = codec.Decode(Stored("InterestPaid", R"({"amount":1})", ""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(r.status().message().find("InterestPaid"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("order-1"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("version 7"), std::string::npos) << r.status().ToString();
}

TEST(EventCodecTest, BadDataNamesEventAndField) {
  EventCodec<AccountEvent> codec;
  auto bad_json = codec.Decode(Stored("Deposited", "{not json", ""));
  EXPECT_TRUE(bad_json.status().IsInvalidArgument());
  auto bad_field = codec.Decode(Stored("Deposited", R"({"amount":"x"})", ""));
  ASSERT_TRUE(bad_field.status().IsInvalidArgument());
  EXPECT_NE(bad_field.status().message().find("field 'amount'"), std::string::npos) << bad_field.status().ToString();
  EXPECT_NE(bad_field.status().message().find("event Deposited"), std::string::npos);
  auto not_object = codec.Decode(Stored("Deposited", "[1]", ""));
  EXPECT_TRUE(not_object.status().IsInvalidArgument()) << not_object.status().ToString();
}

TEST(EventCodecTest, UpcasterChainRunsV1ToV3) {
  EventCodec<OrderEvent> codec(OrderUpcasters());
  auto v1 = codec.Decode(Stored("OrderCreated", R"({"id":"o1","total":12.5})", ""));  // no version: 1
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  const auto& o = std::get<OrderCreated>(*v1);
  EXPECT_EQ(o.currency, "USD");
  EXPECT_EQ(o.total_cents, 1250);
  EXPECT_EQ(o.channel, "web");
  auto v2 = codec.Decode(Stored("OrderCreated", R"({"id":"o2","total":3,"currency":"EUR"})", R"({"$schemaVersion":2})"));
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(std::get<OrderCreated>(*v2).currency, "EUR");
  EXPECT_EQ(std::get<OrderCreated>(*v2).total_cents, 300);
  auto v3 = codec.Decode(Stored("OrderCreated", R"({"id":"o3","total_cents":1,"currency":"GBP","channel":"app"})",
                                R"({"$user":"x","$schemaVersion":3})"));  // not first: full parse
  ASSERT_TRUE(v3.ok()) << v3.status().ToString();
  EXPECT_EQ(std::get<OrderCreated>(*v3).channel, "app");
}

TEST(EventCodecTest, RenamedTypeDecodesAsTheNewName) {
  EventCodec<OrderEvent> codec(OrderUpcasters());
  auto r = codec.Decode(Stored("OrderPlaced", R"({"id":"o1","total":1})", ""));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::get<OrderCreated>(*r).id, "o1");
  EXPECT_TRUE(codec.Knows("OrderPlaced"));
}

TEST(EventCodecTest, MissingUpcasterOrNewerVersionIsNotSupported) {
  EventCodec<OrderEvent> without;  // no upcasters
  auto r = without.Decode(Stored("OrderCreated", R"({"id":"o1","total":1})", ""));
  ASSERT_EQ(r.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(r.status().message().find("no upcaster for OrderCreated from schema version 1 to 2"), std::string::npos)
      << r.status().ToString();
  EventCodec<OrderEvent> codec(OrderUpcasters());
  auto newer = codec.Decode(Stored("OrderCreated", "{}", R"({"$schemaVersion":4})"));
  ASSERT_EQ(newer.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(newer.status().message().find("newer"), std::string::npos) << newer.status().ToString();
}

TEST(EventCodecTest, ThrowingUpcasterIsReported) {
  auto u = std::make_shared<Upcasters>();
  u->Add("OrderCreated", 1, [](Json&) { throw std::runtime_error("boom"); });
  EventCodec<OrderEvent> codec(u);
  auto r = codec.Decode(Stored("OrderCreated", "{}", ""));
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("boom"), std::string::npos);
  EXPECT_NE(r.status().message().find("from version 1 to 2"), std::string::npos) << r.status().ToString();
}

TEST(SchemaVersionTest, ParsedFastOrSlowAndValidated) {
  EXPECT_EQ(*SchemaVersionOf(""), 1u);
  EXPECT_EQ(*SchemaVersionOf("{}"), 1u);
  EXPECT_EQ(*SchemaVersionOf(R"({"$schemaVersion":12})"), 12u);
  EXPECT_EQ(*SchemaVersionOf(R"({"$schemaVersion":3,"$user":"a"})"), 3u);
  EXPECT_EQ(*SchemaVersionOf(R"({ "a": 1, "$schemaVersion" : 5 })"), 5u);
  auto zero = SchemaVersionOf(R"({"$schemaVersion":0})");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("$schemaVersion"), std::string::npos);
  EXPECT_FALSE(SchemaVersionOf(R"({"a":1,"$schemaVersion":"2"})").ok());
  EXPECT_FALSE(SchemaVersionOf(R"({"$schemaVersion":99999999999})").ok());
}

TEST(CommandContextTest, CausedByCarriesCorrelationAndUser) {
  RecordedEvent cause;
  cause.id = Uuid::V7();
  cause.metadata = R"({"$schemaVersion":1,"$correlationId":"c-9","$user":"bob"})";
  CommandContext c = CommandContext::CausedBy(cause.View());
  EXPECT_EQ(c.correlation_id, "c-9");
  EXPECT_EQ(c.causation_id, cause.id.ToString());
  EXPECT_EQ(c.user, "bob");
  cause.metadata = "";
  EXPECT_EQ(CommandContext::CausedBy(cause.View()).correlation_id, cause.id.ToString());
  EXPECT_FALSE(CommandContext::New("u").correlation_id.empty());
}

}  // namespace
}  // namespace cairn::es

namespace cairn::es {
namespace {

struct Typed {
  int32_t small = 0;
  double ratio = 0;
  bool flag = false;
  std::string name;
  uint64_t added_later = 7;  // a field appended by a later version of the code
};
CAIRN_EVENT(Typed, "Typed", 1, small, ratio, flag, name, added_later)
struct WithVector {
  std::vector<int> values;
};
CAIRN_EVENT(WithVector, "WithVector", 1, values)
using BinaryVariant = std::variant<Typed, WithVector, test::Deposited>;

static_assert(BinaryEventType<Typed>);
static_assert(!BinaryEventType<WithVector>);  // a vector has no binary form: JSON only

TEST(BinaryCodecTest, RoundTripAndFallbackToJson) {
  EventCodec<BinaryVariant> codec;
  auto e = EventCodec<BinaryVariant>::Encode(Typed{-5, 0.25, true, std::string("x\0y", 3), 9}, {}, Encoding::kBinary);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->content_type, ContentType::kBytes);
  EXPECT_EQ(e->data.size(), 1u + 4 + 8 + 1 + 4 + 3 + 8);
  EXPECT_TRUE(e->metadata.starts_with(R"({"$schemaVersion":1)"));
  RecordedEventView v = Stored(e->type, e->data, e->metadata);
  v.content_type = ContentType::kBytes;
  auto back = codec.Decode(v);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  const Typed& t = std::get<Typed>(*back);
  EXPECT_EQ(t.small, -5);
  EXPECT_EQ(t.ratio, 0.25);
  EXPECT_TRUE(t.flag);
  EXPECT_EQ(t.name, std::string("x\0y", 3));
  EXPECT_EQ(t.added_later, 9u);
  auto json_only = EventCodec<BinaryVariant>::Encode(WithVector{{1, 2}}, {}, Encoding::kBinary);
  EXPECT_EQ(json_only->content_type, ContentType::kJson);
}

TEST(BinaryCodecTest, OldRecordWithoutTrailingFieldTakesTheDefault) {
  EventCodec<BinaryVariant> codec;
  auto e = EventCodec<BinaryVariant>::Encode(Typed{1, 2, false, "n", 99}, {}, Encoding::kBinary);
  std::string old = e->data.substr(0, e->data.size() - 8);  // as written before added_later existed
  RecordedEventView v = Stored("Typed", old, "");
  v.content_type = ContentType::kBytes;
  auto back = codec.Decode(v);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(std::get<Typed>(*back).added_later, 7u);
  EXPECT_EQ(std::get<Typed>(*back).name, "n");
}

TEST(BinaryCodecTest, DamagedBytesAreErrorsNamingTheField) {
  EventCodec<BinaryVariant> codec;
  auto e = EventCodec<BinaryVariant>::Encode(Typed{1, 2, true, "name", 3}, {}, Encoding::kBinary);
  auto decode = [&](std::string data) {
    RecordedEventView v = Stored("Typed", data, "");
    v.content_type = ContentType::kBytes;
    return codec.Decode(v).status();
  };
  Status cut = decode(e->data.substr(0, 1 + 4 + 8 + 1 + 4 + 2));  // inside the string
  ASSERT_TRUE(cut.IsInvalidArgument());
  EXPECT_NE(cut.message().find("'name'"), std::string::npos) << cut.ToString();
  std::string bad_bool = e->data;
  bad_bool[1 + 4 + 8] = 2;
  EXPECT_NE(decode(bad_bool).message().find("'flag'"), std::string::npos);
  EXPECT_TRUE(decode("x" + e->data.substr(1)).IsInvalidArgument());  // no tag
  EXPECT_TRUE(decode(e->data + "zz").IsInvalidArgument());           // trailing bytes
  RecordedEventView v = Stored("WithVector", "\xCE", "");
  v.content_type = ContentType::kBytes;
  EXPECT_EQ(codec.Decode(v).status().code(), StatusCode::kNotSupported);
}

}  // namespace
}  // namespace cairn::es

// Proves the small utilities behave as their formats and RFCs say: CRC32C's check value, UUID
// and RFC 3339 round trips, UTF-8 validation and expected-version spelling.
#include <gtest/gtest.h>

#include "cairn/stream.h"
#include "cairn/types.h"
#include "util/crc32c.h"
#include "util/utf8.h"

namespace cairn {
namespace {

TEST(Crc32cTest, CheckValueMatchesTheStandard) {
  EXPECT_EQ(util::Crc32c("123456789", 9), 0xe3069283u);
  EXPECT_EQ(util::Crc32cExtend(util::Crc32c("1234", 4), "56789", 5), 0xe3069283u);
  EXPECT_EQ(util::Crc32c("", 0), 0u);
}

TEST(UuidTest, ParsesAndFormatsTheCanonicalForm) {
  auto u = Uuid::Parse("0190F1E2-3a4b-7c5d-8e6f-0123456789ab");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->ToString(), "0190f1e2-3a4b-7c5d-8e6f-0123456789ab");
  EXPECT_FALSE(Uuid::Parse("0190f1e2-3a4b-7c5d-8e6f-0123456789a").has_value());
  EXPECT_FALSE(Uuid::Parse("0190f1e2x3a4b-7c5d-8e6f-0123456789ab").has_value());
  EXPECT_FALSE(Uuid::Parse("0190f1e2-3a4b-7c5d-8e6f-0123456789ag").has_value());
}

TEST(UuidTest, V7HasVersionAndVariantBitsAndDiffers) {
  Uuid a = Uuid::V7(), b = Uuid::V7();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.bytes[6] >> 4, 7);
  EXPECT_EQ(a.bytes[8] >> 6, 2);
  EXPECT_FALSE(a.IsNil());
  EXPECT_TRUE(Uuid{}.IsNil());
}

TEST(TimestampTest, Rfc3339RoundTrip) {
  auto t = Timestamp::ParseRfc3339("2026-11-26T09:57:44.123456Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->ToRfc3339(), "2026-11-26T09:57:44.123456Z");
  auto offset = Timestamp::ParseRfc3339("2026-11-26T10:57:44.123456+01:00");
  ASSERT_TRUE(offset.has_value());
  EXPECT_EQ(*offset, *t);
  EXPECT_EQ(Timestamp::ParseRfc3339("1970-01-01T00:00:00Z")->nanos, 0);
  EXPECT_FALSE(Timestamp::ParseRfc3339("2026-13-01T00:00:00Z").has_value());
  EXPECT_FALSE(Timestamp::ParseRfc3339("2026-11-26T09:57:44").has_value());
}

TEST(Utf8Test, RejectsMalformedSequences) {
  EXPECT_TRUE(util::IsValidUtf8("account-1"));
  EXPECT_TRUE(util::IsValidUtf8("konto-\xc3\xa4"));
  EXPECT_FALSE(util::IsValidUtf8("\xc3"));          // truncated
  EXPECT_FALSE(util::IsValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(util::IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(util::IsValidUtf8("\xff"));
}

TEST(ExpectedVersionTest, ParsesTheCliSpelling) {
  EXPECT_EQ(ExpectedVersion::Parse("any"), ExpectedVersion::Any());
  EXPECT_EQ(ExpectedVersion::Parse("no-stream"), ExpectedVersion::NoStream());
  EXPECT_EQ(ExpectedVersion::Parse("exists"), ExpectedVersion::StreamExists());
  EXPECT_EQ(ExpectedVersion::Parse("17"), ExpectedVersion::Exact(17));
  EXPECT_FALSE(ExpectedVersion::Parse("-1").has_value());
  EXPECT_FALSE(ExpectedVersion::Parse("1x").has_value());
  EXPECT_FALSE(ExpectedVersion::Parse("99999999999999999999999").has_value());
}

TEST(StreamMetadataTest, JsonRoundTripKeepsCustomKeys) {
  auto m = StreamMetadata::Parse(R"({"$maxCount": 5, "$tb": 2, "owner": "ops"})");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->max_count, 5u);
  EXPECT_EQ(m->truncate_before, 2u);
  EXPECT_FALSE(m->max_age_seconds.has_value());
  auto again = StreamMetadata::Parse(m->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *m);
}

TEST(StreamMetadataTest, WrongTypesNameTheKey) {
  auto m = StreamMetadata::Parse(R"({"$maxCount": "five"})");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("$maxCount"), std::string::npos);
  EXPECT_FALSE(StreamMetadata::Parse("[1]").ok());
  EXPECT_FALSE(StreamMetadata::Parse("{").ok());
  EXPECT_FALSE(StreamMetadata::Parse(R"({"$maxAge": -3})").ok());
}

}  // namespace
}  // namespace cairn

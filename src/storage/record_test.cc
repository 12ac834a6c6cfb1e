// Proves the record decoder accepts exactly the records the encoder writes and reports every kind
// of damage (flipped byte, bad checksum, truncation, zeroed tail, wrong position, bad length).
// How: encode records, then damage copies of their bytes one way at a time.
#include <gtest/gtest.h>

#include <string>

#include "storage/record.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace cairn::storage {
namespace {

std::string Encoded(uint64_t position, std::string_view data = R"({"amount":100})") {
  std::string buf;
  Uuid id = Uuid::V7();
  EncodeRecord(RecordFields{position, 1'700'000'000'000'000'000, 7, id, kFlagCommit, ContentType::kJson, "account-1",
                            "Deposited", data, R"({"$correlationId":"c"})"},
               &buf);
  return buf;
}

DecodeError Decode(const std::string& b, uint64_t position, RecordView* rv) {
  return DecodeRecord(reinterpret_cast<const std::byte*>(b.data()), b.size(), position, rv);
}

TEST(RecordTest, RoundTrip) {
  std::string b = Encoded(4096);
  EXPECT_EQ(b.size() % kRecordAlignment, 0u);
  RecordView rv;
  ASSERT_EQ(Decode(b, 4096, &rv), DecodeError::kOk);
  EXPECT_EQ(rv.stream, "account-1");
  EXPECT_EQ(rv.type, "Deposited");
  EXPECT_EQ(rv.data, R"({"amount":100})");
  EXPECT_EQ(rv.metadata, R"({"$correlationId":"c"})");
  EXPECT_EQ(rv.version, 7u);
  EXPECT_EQ(rv.length, b.size());
  EXPECT_TRUE(rv.commit());
  EXPECT_FALSE(rv.tombstone());
}

TEST(RecordTest, EveryFlippedByteIsDetected) {
  std::string good = Encoded(64);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string b = good;
    b[i] = static_cast<char>(b[i] ^ 0x01);
    RecordView rv;
    EXPECT_NE(Decode(b, 64, &rv), DecodeError::kOk) << "flip at byte " << i;
  }
}

TEST(RecordTest, TruncatedAtEveryLengthIsNotOk) {
  std::string good = Encoded(64);
  for (size_t n = 0; n < good.size(); ++n) {
    RecordView rv;
    DecodeError e = DecodeRecord(reinterpret_cast<const std::byte*>(good.data()), n, 64, &rv);
    EXPECT_NE(e, DecodeError::kOk) << "length " << n;
  }
}

TEST(RecordTest, ZeroedTailAndZeroLength) {
  std::string good = Encoded(64);
  for (size_t cut = 8; cut < good.size(); cut += 8) {
    std::string b = good;
    std::fill(b.begin() + static_cast<long>(cut), b.end(), '\0');
    RecordView rv;
    EXPECT_NE(Decode(b, 64, &rv), DecodeError::kOk) << "zeroed from " << cut;
  }
  std::string zeros(128, '\0');
  RecordView rv;
  EXPECT_EQ(Decode(zeros, 64, &rv), DecodeError::kZero);
}

TEST(RecordTest, WrongPositionIsReported) {
  std::string b = Encoded(64);
  RecordView rv;
  EXPECT_EQ(Decode(b, 72, &rv), DecodeError::kBadPosition);
}

TEST(RecordTest, BadChecksumIsReported) {
  std::string b = Encoded(64);
  util::EncodeU32(b.data(), util::DecodeU32(b.data()) ^ 0xffffffffu);
  RecordView rv;
  EXPECT_EQ(Decode(b, 64, &rv), DecodeError::kBadChecksum);
}

TEST(RecordTest, InconsistentLengthsAreReported) {
  std::string b = Encoded(64);
  util::EncodeU32(b.data() + kRecDataLenOffset, 1'000'000);
  RecordView rv;
  EXPECT_EQ(Decode(b, 64, &rv), DecodeError::kBadLength);
  std::string c = Encoded(64);
  util::EncodeU32(c.data() + kRecLengthOffset, 13);
  EXPECT_EQ(Decode(c, 64, &rv), DecodeError::kBadLength);
}

TEST(RecordTest, UnknownKindIsReported) {
  std::string b = Encoded(64);
  b[kRecKindOffset] = 9;
  // Re-seal the checksum so that only the kind is wrong.
  util::EncodeU32(b.data(), util::Crc32c(b.data() + 4, b.size() - 4));
  RecordView rv;
  EXPECT_EQ(Decode(b, 64, &rv), DecodeError::kBadKind);
}

}  // namespace
}  // namespace cairn::storage

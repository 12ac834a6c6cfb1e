// The binary COPY read path of the PostgreSQL backend: forward `$all` reads without a filter fetch
// their position ranges with `COPY (SELECT ...) TO STDOUT (FORMAT binary)` and decode the tuples
// where libpq received them. Proves the tuple splitter on malformed bytes, Conn::CopyOut against a
// real server (every column type cairn reads, NULLs, empty and large values, no rows, a failing
// statement, a per-tuple callback and its error), and whole events through the store: every field of every event read through `$all`
// (COPY) equals the same event read through its stream (a statement's binary result), including
// empty data and metadata, raw bytes with NULs, events near the size limit, and ranges with gaps.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "postgres/pg.h"
#include "util/pg_test_util.h"

namespace cairn {
namespace {

using postgres::SplitCopyTuple;

// A tuple in binary COPY's layout: a 16-bit field count, then per field a 32-bit length (-1 for
// NULL) and the bytes, all big-endian.
std::string Tuple(const std::vector<std::optional<std::string>>& fields) {
  std::string out;
  out.push_back(static_cast<char>(fields.size() >> 8));
  out.push_back(static_cast<char>(fields.size() & 0xff));
  for (const auto& f : fields) {
    const uint32_t len = f ? static_cast<uint32_t>(f->size()) : 0xffffffffu;
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((len >> shift) & 0xff));
    if (f) out += *f;
  }
  return out;
}

TEST(CopyTupleTest, SplitsFieldsIncludingEmptyAndNull) {
  const std::string t = Tuple({std::string("abc"), std::string(), std::nullopt, std::string("\0x\0", 3)});
  std::array<std::string_view, 4> f;
  ASSERT_TRUE(SplitCopyTuple(t, f).ok());
  EXPECT_EQ(f[0], "abc");
  EXPECT_TRUE(f[1].empty());
  EXPECT_NE(f[1].data(), nullptr) << "an empty value is not NULL";
  EXPECT_EQ(f[2].data(), nullptr) << "NULL";
  EXPECT_EQ(f[3], std::string_view("\0x\0", 3));
}

TEST(CopyTupleTest, MalformedTuplesAreInternalErrorsSayingWhat) {
  std::array<std::string_view, 2> f;
  auto expect = [&](const std::string& bytes, const std::string& says) {
    Status s = SplitCopyTuple(bytes, f);
    EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
    EXPECT_NE(s.message().find(says), std::string::npos) << s.ToString();
  };
  expect("", "no field count");
  expect(Tuple({std::string("a")}), "1 fields, expected 2");
  expect(Tuple({std::string("a"), std::string("b")}) + "z", "1 bytes after the last field");
  std::string truncated = Tuple({std::string("a"), std::string("bcd")});
  truncated.pop_back();
  expect(truncated, "field 1 claims 3 bytes, 2 are left");
  std::string no_length = Tuple({std::string("a"), std::string("b")});
  no_length.resize(2 + 4 + 1 + 2);
  expect(no_length, "field 1 has no length");
}

class PgCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = testing::TestPostgresUrl();
    if (!url) GTEST_SKIP() << "no test PostgreSQL (set CAIRN_TEST_POSTGRES_URL, or run through ctest)";
    base_ = *url;
    schema_ = testing::UniqueSchema("pgc");
    auto info = postgres::ParseConnInfo(base_.substr(0, base_.find('?')));
    ASSERT_TRUE(info.ok());
    auto c = postgres::Conn::Connect(*info);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    conn_ = std::move(c).value();
  }
  void TearDown() override {
    if (!base_.empty()) testing::DropSchema(base_, schema_);
  }
  std::string base_, schema_;
  std::unique_ptr<postgres::Conn> conn_;
};

TEST_F(PgCopyTest, CopyOutReturnsWhatTheStatementReturnsInBinary) {
  // Every type cairn's event rows hold, with edge values: empty and 1 MiB bytea, NULLs.
  const std::string query =
      "SELECT g::int8 AS n, ('s' || g)::text AS t, md5(g::text)::uuid AS u, (g - 2)::int2 AS i, "
      "CASE g WHEN 1 THEN ''::bytea WHEN 2 THEN decode(repeat('00ff', 524288), 'hex') ELSE int8send(g) END "
      "AS b, "
      "CASE WHEN g = 3 THEN NULL ELSE g * -1000000000000 END AS big "
      "FROM generate_series(1, 5) AS g ORDER BY g";
  auto rows = conn_->CopyOut(query);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  auto res = conn_->Exec(query, postgres::Params());
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ASSERT_EQ(rows->size(), 5u);
  ASSERT_EQ(res->rows(), 5);
  for (int r = 0; r < 5; ++r) {
    std::array<std::string_view, 6> f;
    ASSERT_TRUE(SplitCopyTuple(rows->row(static_cast<size_t>(r)), f).ok()) << "row " << r;
    for (int c = 0; c < 6; ++c) {
      if (res->IsNull(r, c)) {
        EXPECT_EQ(f[static_cast<size_t>(c)].data(), nullptr) << "row " << r << " column " << c;
      } else {
        EXPECT_EQ(f[static_cast<size_t>(c)], res->Bytes(r, c)) << "row " << r << " column " << c;
      }
    }
  }
  std::array<std::string_view, 6> f;
  ASSERT_TRUE(SplitCopyTuple(rows->row(1), f).ok());
  EXPECT_EQ(f[4].size(), size_t{1} << 20);
  ASSERT_TRUE(SplitCopyTuple(rows->row(0), f).ok());
  EXPECT_TRUE(f[4].empty());
  EXPECT_NE(f[4].data(), nullptr);
}

TEST_F(PgCopyTest, CopyOutOfNoRowsAndAFailingQuery) {
  auto none = conn_->CopyOut("SELECT 1::int8 WHERE false");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->size(), 0u);
  auto bad = conn_->CopyOut("SELECT 1 / (g - 3) FROM generate_series(1, 5) AS g");  // fails on row 3
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("division by zero"), std::string::npos) << bad.status().ToString();
  auto missing = conn_->CopyOut("SELECT * FROM no_such_table_here");
  EXPECT_EQ(missing.status().code(), StatusCode::kInternal);
  EXPECT_NE(missing.status().message().find("no_such_table_here"), std::string::npos)
      << missing.status().ToString();
  // The connection is usable afterwards.
  EXPECT_TRUE(conn_->Healthy());
  auto again = conn_->CopyOut("SELECT 7::int8");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_EQ(again->size(), 1u);
}

TEST_F(PgCopyTest, CopyOutCallsOnRowForEachTupleInOrderAndStopsAtItsError) {
  std::vector<std::string> seen;
  auto rows = conn_->CopyOut("SELECT g::int8 FROM generate_series(1, 2000) AS g", [&](std::string_view tuple) {
    std::array<std::string_view, 1> f;
    Status s = SplitCopyTuple(tuple, f);
    if (s.ok()) seen.emplace_back(f[0]);
    return s;
  });
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2000u);
  ASSERT_EQ(seen.size(), 2000u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i], rows->row(i).substr(6)) << i;  // the same bytes: 2-byte count, 4-byte length
  }
  // An error from on_row fails the call, on_row is not called again, and the connection stays usable.
  int calls = 0;
  auto refused = conn_->CopyOut("SELECT g::int8 FROM generate_series(1, 100) AS g", [&](std::string_view) {
    return ++calls == 10 ? Status::Internal("tuple 10 refused") : Status::Ok();
  });
  EXPECT_EQ(refused.status().code(), StatusCode::kInternal);
  EXPECT_NE(refused.status().message().find("tuple 10 refused"), std::string::npos) << refused.status().ToString();
  EXPECT_EQ(calls, 10);
  EXPECT_TRUE(conn_->Healthy());
  auto again = conn_->CopyOut("SELECT 7::int8");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->size(), 1u);
}

TEST_F(PgCopyTest, CopyOutKeepsTuplesInPooledBlocksAndGivesThemBackBounded) {
  // 3,000 tuples of ~1 KiB fill three 1 MiB blocks; tuple 1,500 (600 KiB, over a quarter of a
  // block) gets an allocation of its own. The pool keeps at most two blocks between uses.
  const std::string query =
      "SELECT g::int8, CASE WHEN g = 1500 THEN decode(repeat('ab', 307200), 'hex') "
      "ELSE decode(repeat(lpad(to_hex(g % 256), 2, '0'), 1000), 'hex') END "
      "FROM generate_series(1, 3000) AS g ORDER BY g";
  auto pool = std::make_shared<postgres::BlockPool>(2);
  auto expect_rows = [](const postgres::CopyRows& rows) {
    ASSERT_EQ(rows.size(), 3000u);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::array<std::string_view, 2> f;
      ASSERT_TRUE(SplitCopyTuple(rows.row(i), f).ok()) << i;
      const int64_t g = static_cast<int64_t>(i) + 1;
      std::string int8(8, '\0');
      for (int b = 0; b < 8; ++b) int8[static_cast<size_t>(7 - b)] = static_cast<char>((g >> (8 * b)) & 0xff);
      ASSERT_EQ(f[0], int8) << i;
      if (g == 1500) {
        ASSERT_EQ(f[1], std::string(307200, '\xab'));
      } else {
        ASSERT_EQ(f[1], std::string(1000, static_cast<char>(g % 256))) << i;
      }
    }
  };
  int calls = 0;
  auto rows = conn_->CopyOut(query, [&](std::string_view) { ++calls; return Status::Ok(); }, pool);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(calls, 3000);
  expect_rows(*rows);
  EXPECT_EQ(pool->idle(), 0u) << "the blocks are lent to the rows while they live";
  // Moving the rows moves no bytes: the views stay valid.
  postgres::CopyRows moved = std::move(rows).value();
  expect_rows(moved);
  moved = postgres::CopyRows();
  EXPECT_EQ(pool->idle(), 2u) << "three blocks came back; the pool keeps two";
  auto again = conn_->CopyOut(query, nullptr, pool);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  expect_rows(*again);
  EXPECT_EQ(pool->idle(), 0u) << "the second read took the two idle blocks (and a new one)";
}

void ExpectSameEvent(const RecordedEvent& a, const RecordedEvent& b) {
  EXPECT_EQ(a.stream, b.stream);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.position, b.position);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.metadata, b.metadata);
  EXPECT_EQ(a.content_type, b.content_type);
  EXPECT_EQ(a.recorded_at.nanos, b.recorded_at.nanos);
}

// Every field through both decoders: `$all` forward without a filter (binary COPY ranges) and the
// stream reads (statements' binary results), on events of every shape, with gaps in the positions.
TEST_F(PgCopyTest, AllReadThroughCopyEqualsStreamReadsFieldByField) {
  auto store = Store::Open(testing::WithSchema(base_, schema_));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::string> streams = {"plain-1", "ünïcode-stream-ß", std::string(kMaxStreamNameBytes, 'n')};
  // Shapes: empty data and metadata; raw bytes with NULs and 0xff; JSON with metadata; a large
  // event (3 MiB of data, under the 4 MiB event limit); then many small ones so that the read
  // spans several growing ranges.
  std::vector<EventData> shapes;
  {
    EventData e;
    e.type = "Empty";
    e.content_type = ContentType::kBytes;
    shapes.push_back(e);
    e.type = "Raw";
    e.data = std::string("\0\xff\0binary\0", 10);
    e.metadata = std::string("\xfe\0", 2);
    shapes.push_back(e);
    e.type = "Json";
    e.content_type = ContentType::kJson;
    e.data = R"({"a":1})";
    e.metadata = R"({"$correlationId":"c-1"})";
    shapes.push_back(e);
    e.type = "Large";
    e.content_type = ContentType::kBytes;
    e.data = std::string(3 << 20, 'L');
    e.metadata = std::string(1000, 'm');
    shapes.push_back(e);
  }
  uint64_t appended = 0;
  for (size_t i = 0; i < streams.size(); ++i) {
    for (const EventData& e : shapes) {
      ASSERT_TRUE(
          (*store)->Append(streams[i], ExpectedVersion::Any(), std::span<const EventData>(&e, 1)).ok());
      appended++;
    }
  }
  std::vector<EventData> small;
  for (int j = 0; j < 1'000; ++j) {
    EventData e;
    e.type = "Small";
    e.data = fmt::format(R"({{"j":{}}})", j);
    small.push_back(e);
  }
  for (int k = 0; k < 6; ++k) {
    ASSERT_TRUE((*store)
                    ->Append(streams[static_cast<size_t>(k) % streams.size()], ExpectedVersion::Any(), small)
                    .ok());
    appended += small.size();
  }
  // Gaps: rows removed behind the store's back (a range with gaps yields fewer rows, in order).
  auto gone = conn_->Exec(fmt::format("DELETE FROM {}.events WHERE position IN (2, 300, 301, 302) OR "
                                      "position BETWEEN 1000 AND 1500 OR position = {}",
                                      schema_, appended),
                          postgres::Params());
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();

  std::vector<RecordedEvent> all;
  {
    auto c = (*store)->ReadAll({});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    while (c->Next()) all.push_back(c->event().ToOwned());
    ASSERT_TRUE(c->status().ok()) << c->status().ToString();
  }
  ASSERT_EQ(all.size(), appended - 4 - 501 - 1);
  for (size_t i = 1; i < all.size(); ++i) ASSERT_LT(all[i - 1].position, all[i].position);
  std::map<uint64_t, RecordedEvent> by_position;
  for (const auto& s : streams) {
    auto c = (*store)->ReadStream(s, {});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    while (c->Next()) by_position.emplace(c->event().position.value(), c->event().ToOwned());
    ASSERT_TRUE(c->status().ok()) << c->status().ToString();
  }
  ASSERT_EQ(by_position.size(), all.size());
  for (const RecordedEvent& e : all) {
    auto it = by_position.find(e.position.value());
    ASSERT_NE(it, by_position.end()) << e.position.value();
    ExpectSameEvent(e, it->second);
  }
  EXPECT_EQ(all[0].type, "Empty");
  EXPECT_TRUE(all[0].data.empty());
  EXPECT_TRUE(all[0].metadata.empty());
  EXPECT_EQ(all[2].data.size(), size_t{3} << 20);
  // A max_count that ends inside a range: exactly that many, in order.
  ReadAllOptions o;
  o.from = Position(250);
  o.max_count = 700;
  auto c = (*store)->ReadAll(o);
  ASSERT_TRUE(c.ok());
  std::vector<uint64_t> got;
  while (c->Next()) got.push_back(c->event().position.value());
  ASSERT_TRUE(c->status().ok());
  ASSERT_EQ(got.size(), 700u);
  EXPECT_EQ(got.front(), 250u);
  for (size_t i = 1; i < got.size(); ++i) EXPECT_LT(got[i - 1], got[i]);
}

}  // namespace
}  // namespace cairn

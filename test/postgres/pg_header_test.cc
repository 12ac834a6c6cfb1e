// Schema version 4 of the PostgreSQL backend: each event's header (position, version, id,
// recorded time, content type, stream, type) in one bytea column, which reads select instead of
// seven columns. The upgrade from version 3 keeps the data: rows written before have no header and
// read back as they were, and so do rows a version 3 binary still appends through append_group()
// during a rolling upgrade. The header the store writes is, byte for byte, the one the layout in
// docs/scale-out.md ("The event header") gives for the row's columns.
// How: real PostgreSQL (the ctest fixture's cluster); a plain libpq connection writes the rows a
// version 3 binary would and looks at the table.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "postgres/pg.h"
#include "postgres/schema.h"
#include "util/pg_test_util.h"

namespace cairn {
namespace {

// The layout of docs/scale-out.md, written out here independently of the store's code: big-endian
// position, version, id, recorded time, content type, stream length, stream, type.
constexpr const char* kLayoutFromColumns =
    "int8send(position) || int8send(version) || uuid_send(event_id) || int8send(recorded_at) || "
    "int2send(content_type) || int4send(octet_length(convert_to(stream, 'UTF8'))) || convert_to(stream, 'UTF8') || "
    "convert_to(type, 'UTF8')";

EventData Event(std::string type, std::string data, ContentType ct = ContentType::kJson, Uuid id = Uuid::V7()) {
  EventData e;
  e.type = std::move(type);
  e.data = std::move(data);
  e.metadata = R"({"m":1})";
  e.content_type = ct;
  e.id = id;
  return e;
}

class PgHeaderTest : public testing::PgSchemaTest {
 protected:
  PgHeaderTest() : PgSchemaTest("pgh") {}

  static std::vector<RecordedEvent> Collect(Result<EventCursor> cursor) {
    EXPECT_TRUE(cursor.ok()) << cursor.status().ToString();
    if (!cursor.ok()) return {};
    auto events = cursor->Collect();
    EXPECT_TRUE(events.ok()) << events.status().ToString();
    return events.ok() ? std::move(events).value() : std::vector<RecordedEvent>{};
  }
};

TEST_F(PgHeaderTest, VersionThreeRowsAndAppendsReadBackTheSameAfterTheUpgrade) {
  // A store as a version 3 binary left it: one append of two events (a JSON one and a bytes one,
  // a stream name outside ASCII), its stream row, commit row and head.
  ASSERT_TRUE(postgres::Migrate(*conn_, schema_, 3).ok());
  const Uuid a = Uuid::V7(), b = Uuid::V7();
  const std::string s = schema_;
  ASSERT_TRUE(conn_->Exec(fmt::format(
                              "INSERT INTO {0}.events VALUES (1, 'ström-1', 0, '{1}', 'Opened', 1, 1, 'one', 'm1', 1000), "
                              "(2, 'ström-1', 1, '{2}', 'Raw', 0, 2, '\\x00ff'::bytea, '', 1001);"
                              "INSERT INTO {0}.streams VALUES ('ström-1', 2, 2, NULL, NULL);"
                              "INSERT INTO {0}.commits VALUES (1, 2, 1000);"
                              "UPDATE {0}.head SET last_position = 2, last_time = 1001",
                              s, a.ToString(), b.ToString()))
                  .ok());

  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(Count(fmt::format("{}.schema_version WHERE version = 4", s)), 1);
  EXPECT_EQ(Count(fmt::format("pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{}' AND "
                              "p.proname IN ('claim_head', 'append_group', 'append_events')",
                              s)),
            3);

  // A version 3 binary still running appends one event through append_group() (position 3).
  const Uuid c = Uuid::V7();
  auto old = conn_->Exec(fmt::format("SELECT {0}.append_group(2, '{{}}', '{{}}', ARRAY[3::int8], ARRAY['ström-1'], "
                                     "ARRAY[2::int8], ARRAY['{1}'::uuid], ARRAY['Closed'], ARRAY[1::int2], "
                                     "ARRAY[3::int2], ARRAY['three'::bytea], ARRAY[''::bytea], 2000, ARRAY['ström-1'], "
                                     "ARRAY[3::int8], ARRAY[3::int8], ARRAY[-1::int8], ARRAY[''])",
                                     s, c.ToString()),
                         postgres::Params());
  ASSERT_TRUE(old.ok()) << old.status().ToString();

  // This binary appends after it (position 4), with a header.
  auto next = (*store)->Append("ström-1", ExpectedVersion::Exact(2), std::vector<EventData>{Event("Reopened", "four")});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->position, Position(4));
  EXPECT_EQ(Count(fmt::format("{}.events WHERE header IS NULL", s)), 3);
  EXPECT_EQ(Count(fmt::format("{}.events WHERE header IS NOT NULL", s)), 1);

  auto check = [&](const std::vector<RecordedEvent>& got, const std::vector<uint64_t>& positions, const char* how) {
    ASSERT_EQ(got.size(), positions.size()) << how;
    for (size_t i = 0; i < got.size(); ++i) {
      const RecordedEvent& e = got[i];
      EXPECT_EQ(e.position, Position(positions[i])) << how;
      EXPECT_EQ(e.stream, "ström-1") << how;
      EXPECT_EQ(e.version, positions[i] - 1) << how;
      switch (positions[i]) {
        case 1:
          EXPECT_EQ(e.id, a) << how;
          EXPECT_EQ(e.type, "Opened") << how;
          EXPECT_EQ(e.content_type, ContentType::kJson) << how;
          EXPECT_EQ(e.data, "one") << how;
          EXPECT_EQ(e.metadata, "m1") << how;
          EXPECT_EQ(e.recorded_at.nanos, 1000) << how;
          break;
        case 2:
          EXPECT_EQ(e.id, b) << how;
          EXPECT_EQ(e.type, "Raw") << how;
          EXPECT_EQ(e.content_type, ContentType::kBytes) << how;
          EXPECT_EQ(e.data, std::string("\x00\xff", 2)) << how;
          EXPECT_EQ(e.recorded_at.nanos, 1001) << how;
          break;
        case 3:
          EXPECT_EQ(e.id, c) << how;
          EXPECT_EQ(e.type, "Closed") << how;
          EXPECT_EQ(e.data, "three") << how;
          EXPECT_EQ(e.recorded_at.nanos, 2000) << how;
          break;
        case 4:
          EXPECT_EQ(e.type, "Reopened") << how;
          EXPECT_EQ(e.data, "four") << how;
          EXPECT_EQ(e.metadata, R"({"m":1})") << how;
          EXPECT_GT(e.recorded_at.nanos, 2000) << how;
          break;
      }
    }
  };
  // Every read path: forward $all in ranges (binary COPY), filtered and backward $all and stream
  // reads (statements).
  check(Collect((*store)->ReadAll({})), {1, 2, 3, 4}, "ReadAll forward");
  ReadAllOptions filtered;
  filtered.filter.event_types = {"Raw", "Reopened", "Closed"};
  check(Collect((*store)->ReadAll(filtered)), {2, 3, 4}, "ReadAll filtered");
  ReadAllOptions backward;
  backward.direction = ReadDirection::kBackward;
  backward.from = Position::End();
  check(Collect((*store)->ReadAll(backward)), {4, 3, 2, 1}, "ReadAll backward");
  check(Collect((*store)->ReadStream("ström-1", {})), {1, 2, 3, 4}, "ReadStream");

  // The idempotency of the old append holds over the upgrade.
  auto retry = (*store)->Append("ström-1", ExpectedVersion::NoStream(),
                                std::vector<EventData>{Event("Opened", "one", ContentType::kJson, a),
                                                       Event("Raw", std::string("\x00\xff", 2), ContentType::kBytes, b)});
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(retry->position, Position(1));
}

TEST_F(PgHeaderTest, EveryRowTheStoreWritesHasTheHeaderOfItsColumns) {
  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Store& st = **store;
  ASSERT_TRUE(st.Append("konto-ä", ExpectedVersion::NoStream(),
                        std::vector<EventData>{Event("Opened", "{}"), Event("Raw", std::string("\x01\x00", 2), ContentType::kBytes),
                                               Event("Deposited", R"({"amount":5})", ContentType::kJson, Uuid())})
                  .ok());
  StreamMetadata md;
  md.max_count = 10;
  ASSERT_TRUE(st.SetStreamMetadata("konto-ä", ExpectedVersion::Any(), md).ok());
  ASSERT_TRUE(st.Append("other-1", ExpectedVersion::Any(), std::vector<EventData>{Event("X", "{}")}).ok());
  ASSERT_TRUE(st.DeleteStream("other-1", ExpectedVersion::Any()).ok());
  ASSERT_TRUE(st.TombstoneStream("konto-ä", ExpectedVersion::Any()).ok());

  const int64_t rows = Count(fmt::format("{}.events", schema_));
  EXPECT_EQ(rows, 7);
  EXPECT_EQ(Count(fmt::format("{}.events WHERE header IS NULL", schema_)), 0);
  EXPECT_EQ(Count(fmt::format("{}.events WHERE header = {}", schema_, kLayoutFromColumns)), rows);

  // And what a read decodes from it is what was written.
  auto all = Collect(st.ReadAll({}));
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(all[0].stream, "konto-ä");
  EXPECT_EQ(all[1].content_type, ContentType::kBytes);
  EXPECT_EQ(all[1].data, std::string("\x01\x00", 2));
  EXPECT_FALSE(all[2].id.IsNil());  // the store made its id
  EXPECT_EQ(all[3].stream, "$$konto-ä");
  EXPECT_EQ(all[6].version, uint64_t{std::numeric_limits<int64_t>::max()});  // the tombstone's marker
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, Position(i + 1));
}

}  // namespace
}  // namespace cairn

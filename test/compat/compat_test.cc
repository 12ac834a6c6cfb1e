// Proves that data directories written by earlier format versions open forever, with the same
// events, versions, positions, times, metadata and deletions.
// How: test/compat/v1/ is a data directory written once by WriteFixture (run with
// --gtest_also_run_disabled_tests --gtest_filter='*WriteFixture*' to regenerate, only with a
// format change); the test copies it to a temp dir, opens it and checks every detail.
#include <gtest/gtest.h>

#include <filesystem>

#include "cairn/store.h"
#include "env/env.h"
#include "storage/engine.h"
#include "util/test_util.h"

namespace cairn {
namespace {

constexpr int64_t kTime = 1'780'000'000'000'000'000;  // 2026-05-28T...Z

Uuid Id(int i) {
  Uuid u;
  u.bytes[15] = static_cast<uint8_t>(i);
  u.bytes[6] = 0x70;
  return u;
}

std::string FixtureDir() { return std::string(CAIRN_SOURCE_DIR) + "/test/compat/v1"; }

Options FixtureOptions() {
  Options o;
  o.segment_size_bytes = 64 << 10;
  return o;
}

TEST(CompatTest, DISABLED_WriteFixture) {
  std::filesystem::remove_all(FixtureDir());
  env::ManualClockEnv clock(env::Env::Posix(), kTime);
  auto store = storage::OpenEmbedded(&clock, FixtureDir(), FixtureOptions());
  ASSERT_TRUE(store.ok());
  int n = 0;
  for (int i = 0; i < 3; ++i) {
    std::vector<EventData> ev{{Id(n++), "Deposited", "{\"amount\":" + std::to_string(100 * (i + 1)) + "}",
                               "{\"$correlationId\":\"c-1\"}", ContentType::kJson}};
    ASSERT_TRUE((*store)->Append("account-1", ExpectedVersion::Any(), ev).ok());
    clock.AdvanceNanos(1'000'000'000);
  }
  std::vector<EventData> two{{Id(n++), "OrderCreated", R"({"orderId":"o-1","totalAmount":10})", "", ContentType::kJson},
                             {Id(n++), "Blob", std::string("\x00\x01\x02", 3), "", ContentType::kBytes}};
  ASSERT_TRUE((*store)->Append("order-1", ExpectedVersion::NoStream(), two).ok());
  StreamMetadata md;
  md.max_count = 2;
  ASSERT_TRUE((*store)->SetStreamMetadata("account-1", ExpectedVersion::NoStream(), md).ok());
  std::vector<EventData> gone{{Id(n++), "Created", "{}", "", ContentType::kJson}};
  ASSERT_TRUE((*store)->Append("temp-1", ExpectedVersion::Any(), gone).ok());
  ASSERT_TRUE((*store)->DeleteStream("temp-1", ExpectedVersion::Any()).ok());
  gone.front().id = Id(n++);
  ASSERT_TRUE((*store)->Append("dead-1", ExpectedVersion::Any(), gone).ok());
  ASSERT_TRUE((*store)->TombstoneStream("dead-1", ExpectedVersion::Any()).ok());
  ASSERT_TRUE((*store)->Close().ok());
  std::filesystem::remove(FixtureDir() + "/LOCK");
}

TEST(CompatTest, Version1DirectoryOpensWithEverything) {
  testing::TempDir tmp;
  std::filesystem::copy(FixtureDir(), tmp.path() + "/db", std::filesystem::copy_options::recursive);
  env::ManualClockEnv clock(env::Env::Posix(), kTime + 10'000'000'000);
  auto opened = storage::OpenEmbedded(&clock, tmp.path() + "/db", FixtureOptions());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;

  auto all = store.ReadAll({})->Collect();
  ASSERT_TRUE(all.ok());
  // 3 deposits, 2 order events, 1 metadata, temp-1 and its delete, dead-1 and its tombstone.
  ASSERT_EQ(all->size(), 10u);
  EXPECT_EQ((*all)[0].stream, "account-1");
  EXPECT_EQ((*all)[0].position.value(), 64u);
  EXPECT_EQ((*all)[0].id, Id(0));
  EXPECT_EQ((*all)[0].recorded_at.nanos, kTime);
  EXPECT_EQ((*all)[0].metadata, "{\"$correlationId\":\"c-1\"}");
  EXPECT_EQ((*all)[2].recorded_at.nanos, kTime + 2'000'000'000);

  // Metadata: max count 2 hides version 0.
  auto acct = store.ReadStream("account-1", {})->Collect();
  ASSERT_TRUE(acct.ok());
  ASSERT_EQ(acct->size(), 2u);
  EXPECT_EQ((*acct)[0].version, 1u);
  EXPECT_EQ((*acct)[1].data, "{\"amount\":300}");

  auto order = store.ReadStream("order-1", {})->Collect();
  ASSERT_TRUE(order.ok());
  ASSERT_EQ(order->size(), 2u);
  EXPECT_EQ((*order)[1].content_type, ContentType::kBytes);
  EXPECT_EQ((*order)[1].data, std::string("\x00\x01\x02", 3));

  auto temp = store.GetStreamInfo("temp-1");
  ASSERT_TRUE(temp.ok());
  EXPECT_TRUE(temp->deleted);
  auto dead = store.GetStreamInfo("dead-1");
  ASSERT_TRUE(dead.ok());
  EXPECT_TRUE(dead->tombstoned);
  EXPECT_EQ(store.ReadStream("dead-1", {}).status().detail(), ErrorDetail::kStreamDeleted);

  // And it goes on: appends continue the streams.
  std::vector<EventData> ev{{Uuid{}, "Deposited", "{\"amount\":1}", "", ContentType::kJson}};
  auto r = store.Append("account-1", ExpectedVersion::Exact(2), ev);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->first_version, 3u);
}

}  // namespace
}  // namespace cairn

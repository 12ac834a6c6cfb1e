// Schema version 3 of the PostgreSQL backend: the upgrade from version 2 keeps the data (events,
// stream states, idempotency), and NOTIFY is sent only while some store waits for appends
// (registered in `listeners`), without a waiter ever missing a commit: one that registers while
// appends commit is woken by NOTIFY or by the head it reads under the head lock. A dead
// listener's row is deleted by the next registration; an idle one's by its own store.
// How: real PostgreSQL (the ctest fixture's cluster); a plain libpq connection to look at the
// tables and to LISTEN on the store's channel as a bystander.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "postgres/pg.h"
#include "postgres/schema.h"
#include "util/pg_test_util.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

EventData Event(std::string type, std::string data, Uuid id = Uuid::V7()) {
  EventData e;
  e.type = std::move(type);
  e.data = std::move(data);
  e.id = id;
  return e;
}

class PgListenTest : public testing::PgSchemaTest {
 protected:
  PgListenTest() : PgSchemaTest("pgl") {}
  // Waits up to 10 s for `count(*) FROM what` to equal `want`.
  bool WaitForCount(const std::string& what, int64_t want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Count(what) == want) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return Count(what) == want;
  }
  // The payloads of the notifications conn_ receives within `for_ms`.
  std::vector<std::string> Notifications(int for_ms) {
    std::vector<std::string> out;
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(for_ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      pollfd fd{conn_->socket(), POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
      EXPECT_TRUE(conn_->ConsumeInput().ok());
      std::string channel, payload;
      while (conn_->NextNotification(&channel, &payload)) out.push_back(payload);
    }
    return out;
  }
};

TEST_F(PgListenTest, SchemaVersionTwoIsUpgradedWithItsDataKept) {
  // A store as a version-2 binary left it: two events of one append with client ids (positions 1
  // and 2), the stream's row, the commit row and the head.
  ASSERT_TRUE(postgres::Migrate(*conn_, schema_, 2).ok());
  const Uuid a = Uuid::V7(), b = Uuid::V7();
  const std::string s = schema_;
  ASSERT_TRUE(conn_->Exec(fmt::format(
                              "INSERT INTO {0}.events VALUES (1, 'old-1', 0, '{1}', 'Opened', 1, 1, 'one', '', 1000), "
                              "(2, 'old-1', 1, '{2}', 'Deposited', 1, 2, 'two', '', 1000);"
                              "INSERT INTO {0}.streams VALUES ('old-1', 2, 2, NULL, NULL);"
                              "INSERT INTO {0}.commits VALUES (1, 2, 1000);"
                              "UPDATE {0}.head SET last_position = 2, last_time = 1000",
                              s, a.ToString(), b.ToString()))
                  .ok());
  ASSERT_EQ(Count(fmt::format("pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{}' AND "
                              "p.proname = 'claim_head'",
                              s)),
            1);

  auto store = Store::Open(Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(Count(fmt::format("{}.schema_version WHERE version = 3", s)), 1);
  EXPECT_EQ(Count(fmt::format("pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{}' AND "
                              "p.proname IN ('claim_head', 'append_group')",
                              s)),
            2);
  EXPECT_EQ((*store)->HeadPosition(), Position(3));

  // The old events read back as they were.
  auto read = (*store)->ReadStream("old-1", {});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  auto events = read->Collect();
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].data, "one");
  EXPECT_EQ((*events)[1].type, "Deposited");
  EXPECT_EQ((*events)[1].id, b);

  // A retry of the old append with its ids is the old result (idempotency over the upgrade); the
  // stream goes on from version 2 at position 3; a wrong expected version is a conflict.
  std::vector<EventData> old_append = {Event("Opened", "one", a), Event("Deposited", "two", b)};
  auto retry = (*store)->Append("old-1", ExpectedVersion::NoStream(), old_append);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(retry->first_version, 0u);
  EXPECT_EQ(retry->position, Position(1));
  auto next = (*store)->Append("old-1", ExpectedVersion::Exact(1), std::vector<EventData>{Event("Withdrawn", "three")});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->first_version, 2u);
  EXPECT_EQ(next->position, Position(3));
  auto conflict = (*store)->Append("old-1", ExpectedVersion::Exact(1), std::vector<EventData>{Event("X", "")});
  EXPECT_EQ(conflict.status().code(), StatusCode::kConflict);
  // The time index goes on too: the new commit row follows the old one.
  EXPECT_EQ(Count(fmt::format("{}.commits", s)), 2);
}

TEST_F(PgListenTest, NotifyIsSentOnlyWhileAStoreWaits) {
  auto writer = Store::Open(Url());
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE(conn_->Exec(fmt::format("LISTEN \"{}\"", schema_)).ok());
  // Nobody waits: commits send no notification, and no store is registered.
  ASSERT_TRUE((*writer)->Append("n-1", ExpectedVersion::Any(), std::vector<EventData>{Event("A", "{}")}).ok());
  EXPECT_TRUE(Notifications(300).empty());
  EXPECT_EQ(Count(fmt::format("{}.listeners", schema_)), 0);

  // A store that waits registers; from then on each commit notifies with the new head.
  auto waiter = Store::Open(Url("head_poll_ms=3600000"));
  ASSERT_TRUE(waiter.ok()) << waiter.status().ToString();
  const Position head = (*writer)->HeadPosition();
  EXPECT_EQ((*waiter)->WaitForAppend(Position(head.value() - 1), milliseconds(10'000)), head);
  ASSERT_TRUE(WaitForCount(fmt::format("{}.listeners", schema_), 1));
  ASSERT_TRUE((*writer)->Append("n-1", ExpectedVersion::Any(), std::vector<EventData>{Event("B", "{}")}).ok());
  auto got = Notifications(2'000);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), std::to_string(head.value() + 1));
  EXPECT_EQ((*waiter)->WaitForAppend(head, milliseconds(10'000)), Position(head.value() + 1));

  // Closed, it unregisters, and commits are quiet again.
  ASSERT_TRUE((*waiter)->Close().ok());
  EXPECT_EQ(Count(fmt::format("{}.listeners", schema_)), 0);
  ASSERT_TRUE((*writer)->Append("n-1", ExpectedVersion::Any(), std::vector<EventData>{Event("C", "{}")}).ok());
  EXPECT_TRUE(Notifications(300).empty());
}

// A waiter whose registration races a commit: the commit lands just before, during or just
// after the registration. Its safety-net poll is an hour, so only the registration's head read
// or the NOTIFY can wake it; a missed commit would keep it waiting for the full 20 s.
TEST_F(PgListenTest, AWaiterRegisteringWhileAppendsCommitNeverMissesOne) {
  auto writer = Store::Open(Url());
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE((*writer)->Append("race-1", ExpectedVersion::Any(), std::vector<EventData>{Event("A", "{}")}).ok());
  std::mt19937 rng(12345);
  for (int round = 0; round < 20; ++round) {
    auto waiter = Store::Open(Url("head_poll_ms=3600000"));
    ASSERT_TRUE(waiter.ok()) << waiter.status().ToString();
    std::this_thread::sleep_for(milliseconds(30));  // its listener connected and read the head
    const Position before = (*writer)->HeadPosition();
    const int delay_us = static_cast<int>(rng() % 6000);
    std::thread appender([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      EXPECT_TRUE((*writer)->Append("race-1", ExpectedVersion::Any(), std::vector<EventData>{Event("A", "{}")}).ok());
    });
    const auto started = std::chrono::steady_clock::now();
    Position seen = (*waiter)->WaitForAppend(Position(before.value() - 1), milliseconds(20'000));
    // Waits until it has seen the appender's commit (the first call may return the old head).
    while (seen <= before && std::chrono::steady_clock::now() - started < std::chrono::seconds(20)) {
      seen = (*waiter)->WaitForAppend(before, milliseconds(20'000));
    }
    const auto waited = std::chrono::steady_clock::now() - started;
    appender.join();
    EXPECT_GT(seen, before) << "round " << round << ", append after " << delay_us << " us";
    EXPECT_LT(waited, milliseconds(10'000)) << "round " << round << ", append after " << delay_us << " us";
  }
  // Every waiter unregistered at close.
  EXPECT_EQ(Count(fmt::format("{}.listeners", schema_)), 0);
}

TEST_F(PgListenTest, DeadListenersAreDeletedAndIdleOnesUnregister) {
  auto store = Store::Open(Url("listen_idle_ms=300"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // A process that died while listening: its row expired an hour ago. A live foreign one stays.
  ASSERT_TRUE(conn_->Exec(fmt::format("INSERT INTO {0}.listeners VALUES ('{1}', now() - interval '1 hour'), "
                                      "('{2}', now() + interval '1 hour')",
                                      schema_, Uuid::V7().ToString(), Uuid::V7().ToString()))
                  .ok());
  EXPECT_EQ(Count(fmt::format("{}.listeners", schema_)), 2);
  const Position head = (*store)->HeadPosition();
  EXPECT_EQ((*store)->WaitForAppend(head, milliseconds(50)), head);
  // Registered: the dead row is gone, the live foreign one and this store's are there.
  ASSERT_TRUE(WaitForCount(fmt::format("{}.listeners WHERE expires_at < now()", schema_), 0));
  ASSERT_TRUE(WaitForCount(fmt::format("{}.listeners", schema_), 2));
  // Nobody has waited for listen_idle_ms: the store unregisters by itself.
  ASSERT_TRUE(WaitForCount(fmt::format("{}.listeners", schema_), 1));
  // A new wait registers again; a wake-up still comes (here from its own append).
  std::thread appender([&] {
    std::this_thread::sleep_for(milliseconds(100));
    EXPECT_TRUE((*store)->Append("idle-1", ExpectedVersion::Any(), std::vector<EventData>{Event("A", "{}")}).ok());
  });
  EXPECT_GT((*store)->WaitForAppend(head, milliseconds(10'000)), head);
  appender.join();
  ASSERT_TRUE(WaitForCount(fmt::format("{}.listeners", schema_), 2));
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_EQ(Count(fmt::format("{}.listeners", schema_)), 1);
}

}  // namespace
}  // namespace cairn

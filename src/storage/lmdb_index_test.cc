// The LMDB index under concurrent use: readers on threads that come and go (their read handles
// are reset and renewed on other threads, lmdb_index.cc's ReadTxnPool) while one writer commits,
// each reader seeing every Write whole, and the handles given back when the index closes.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/index_store.h"
#include "util/test_util.h"

namespace cairn::storage {
namespace {

constexpr int kStreams = 64;

std::string Name(int i) { return "account-" + std::to_string(i); }

// Round r: every stream has count r (positions r*1000+k), written in one batch.
IndexBatch Round(uint64_t r) {
  IndexBatch batch;
  for (int i = 0; i < kStreams; ++i) {
    IndexBatch::Stream s;
    s.name = Name(i);
    s.row.id = static_cast<uint64_t>(i) + 1;
    s.row.count = r;
    s.row.last_position = r * 1000 + static_cast<uint64_t>(i);
    s.first_new_version = r - 1;
    s.new_positions = {s.row.last_position};
    batch.streams.push_back(std::move(s));
  }
  batch.head.position = r * 1000 + kStreams;
  batch.head.next_stream_id = kStreams + 1;
  return batch;
}

TEST(LmdbIndexTest, ReadersOnComingAndGoingThreadsSeeEachWriteWhole) {
  testing::TempDir dir;
  auto index = OpenLmdbIndex(dir.path());
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  IndexStore& ix = **index;
  ASSERT_TRUE(ix.Write(Round(1)).ok());

  std::atomic<bool> writing{true};
  std::atomic<int> reads{0};
  std::vector<std::string> errors;
  std::mutex errors_mu;
  auto fail = [&](std::string e) {
    std::lock_guard lock(errors_mu);
    errors.push_back(std::move(e));
  };
  std::thread writer([&] {
    for (uint64_t r = 2; r <= 60; ++r) {
      Status s = ix.Write(Round(r));
      if (!s.ok()) fail("write: " + s.ToString());
    }
    writing = false;
  });
  // Waves of short-lived reader threads, so that handles reset on one thread are renewed on
  // another (and on threads whose reader slot LMDB released when the last one exited).
  for (int wave = 0; wave < 12; ++wave) {
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
      readers.emplace_back([&, t] {
        for (int k = 0; k < 150; ++k) {
          const int i = (k * 7 + t) % kStreams;
          auto row = ix.GetStream(Name(i));
          if (!row.ok() || !row->has_value()) {
            fail("get " + Name(i) + ": " + (row.ok() ? "missing" : row.status().ToString()));
            continue;
          }
          const StreamRow& got = **row;
          if (got.id != static_cast<uint64_t>(i) + 1 || got.last_position != got.count * 1000 + static_cast<uint64_t>(i)) {
            fail("get " + Name(i) + ": a row from no single write");
          }
          if (k % 25 == 0) {
            // One read transaction for the whole list: every row of the same round.
            std::vector<std::pair<std::string, StreamRow>> all;
            Status s = ix.ListStreams("account-", "", kStreams, &all);
            if (!s.ok() || all.size() != static_cast<size_t>(kStreams)) {
              fail("list: " + s.ToString() + " " + std::to_string(all.size()));
            } else {
              for (const auto& [name, r] : all) {
                if (r.count != all[0].second.count) fail("list: rows of two writes");
              }
            }
            auto head = ix.Head();
            if (!head.ok() || head->next_stream_id != kStreams + 1) fail("head");
          }
          reads++;
        }
      });
    }
    for (auto& th : readers) th.join();
  }
  writer.join();
  EXPECT_FALSE(writing);
  for (const std::string& e : errors) ADD_FAILURE() << e;
  EXPECT_EQ(reads.load(), 12 * 4 * 150);
  auto last = ix.GetStream(Name(5));
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->count, 60u);
  std::vector<uint64_t> positions;
  ASSERT_TRUE(ix.GetPositions(6, 0, 60, &positions).ok());
  ASSERT_EQ(positions.size(), 60u);
  EXPECT_EQ(positions[59], 60u * 1000 + 5);

  // Closing with handles in the pool, then opening again: the data is there.
  index->reset();
  auto again = OpenLmdbIndex(dir.path());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto row = (*again)->GetStream(Name(63));
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->count, 60u);
}

}  // namespace
}  // namespace cairn::storage

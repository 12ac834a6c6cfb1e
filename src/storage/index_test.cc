// Proves the idempotency window remembers exactly the last N ids (the documented boundary) and
// that its open-addressing table stays correct through many evictions and growths.
// How: random inserts checked against a simple model (a deque of the last N ids).
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>

#include "storage/index.h"

namespace cairn::storage {
namespace {

Uuid RandomId(std::mt19937_64& rng) {
  Uuid u;
  for (auto& b : u.bytes) b = static_cast<uint8_t>(rng());
  return u;
}

TEST(IdWindowTest, RemembersExactlyTheLastNIds) {
  IdWindow w(3);
  std::mt19937_64 rng(1);
  Uuid a = RandomId(rng), b = RandomId(rng), c = RandomId(rng), d = RandomId(rng);
  w.Insert(a, 64);
  w.Insert(b, 128);
  w.Insert(c, 192);
  EXPECT_EQ(w.Find(a), 64u);
  w.Insert(d, 256);
  EXPECT_EQ(w.Find(a), 0u);
  EXPECT_EQ(w.Find(b), 128u);
  EXPECT_EQ(w.Find(d), 256u);
}

TEST(IdWindowTest, ZeroCapacityRemembersNothing) {
  IdWindow w(0);
  std::mt19937_64 rng(2);
  Uuid a = RandomId(rng);
  w.Insert(a, 64);
  EXPECT_EQ(w.Find(a), 0u);
}

TEST(IdWindowTest, MatchesAModelThroughManyEvictions) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (uint64_t cap : {1u, 7u, 1000u, 5000u}) {
    IdWindow w(cap);
    std::deque<std::pair<Uuid, uint64_t>> model;
    std::vector<Uuid> all;
    uint64_t pos = 64;
    for (int i = 0; i < 20000; ++i) {
      Uuid id;
      // Mostly fresh ids; some with a colliding home slot (same low bytes) to stress probing.
      if (i % 5 == 0 && !all.empty()) {
        id = all[rng() % all.size()];
        id.bytes[0] ^= 0x80;
      } else {
        id = RandomId(rng);
      }
      w.Insert(id, pos);
      model.emplace_back(id, pos);
      if (model.size() > cap) model.pop_front();
      all.push_back(id);
      pos += 8;
      if (i % 97 == 0) {
        std::map<Uuid, uint64_t> live;
        for (auto& [k, v] : model) live[k] = v;
        for (size_t k = all.size() > 300 ? all.size() - 300 : 0; k < all.size(); ++k) {
          auto it = live.find(all[k]);
          ASSERT_EQ(w.Find(all[k]), it == live.end() ? 0 : it->second) << "cap " << cap << " i " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace cairn::storage

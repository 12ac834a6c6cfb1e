// Proves FaultInjectionEnv simulates a power failure faithfully (only synced bytes and synced
// directory entries survive; a tear keeps a replayable prefix) and fails exactly the Nth operation.
// How: scripted writes, syncs, renames and removals on a MemEnv, then Crash() and read back.
#include "env/fault_env.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <string>

#include "env/env.h"

namespace cairn::env {
namespace {

std::span<const std::byte> Bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

class FaultEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mem_->CreateDir("/db").ok());
    ASSERT_TRUE(mem_->SyncDir("/db").ok());
  }

  // The whole file, or nullopt when it does not exist.
  std::optional<std::string> Contents(const std::string& path) {
    auto f = env_.OpenFile(path, OpenMode::kRead);
    if (f.status().IsNotFound()) return std::nullopt;
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    uint64_t size = *(*f)->Size();
    std::string out(size, '\0');
    size_t read = 0;
    EXPECT_TRUE((*f)->Read(0, size, reinterpret_cast<std::byte*>(out.data()), &read).ok());
    out.resize(read);
    return out;
  }

  // Creates `path` with `data`, syncs the file and its directory.
  void WriteDurable(const std::string& path, std::string_view data) {
    auto f = env_.OpenFile(path, OpenMode::kCreate);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Truncate(0).ok());
    ASSERT_TRUE((*f)->Write(0, Bytes(data)).ok());
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE(env_.SyncDir("/db").ok());
  }

  std::unique_ptr<File> Open(const std::string& path) {
    auto f = env_.OpenFile(path, OpenMode::kCreate);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return std::move(f).value();
  }

  std::unique_ptr<Env> mem_ = NewMemEnv();
  FaultInjectionEnv env_{mem_.get()};
};

TEST_F(FaultEnvTest, UnsyncedWritesAreDroppedAndSyncedOnesSurvive) {
  WriteDurable("/db/a", "aaaa");
  {
    auto f = Open("/db/a");
    ASSERT_TRUE(f->Write(4, Bytes("bbbb")).ok());
    ASSERT_TRUE(f->Write(0, Bytes("xx")).ok());
    EXPECT_EQ(Contents("/db/a"), "xxaabbbb");
  }
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/a"), "aaaa");
}

TEST_F(FaultEnvTest, AllocateAndTruncateAreUndone) {
  WriteDurable("/db/a", "hello");
  {
    auto f = Open("/db/a");
    ASSERT_TRUE(f->Allocate(1 << 20).ok());
    ASSERT_TRUE(f->Write(1000, Bytes("junk")).ok());
    ASSERT_TRUE(f->Truncate(2).ok());
    ASSERT_TRUE(f->Truncate(7).ok());
    EXPECT_EQ(Contents("/db/a"), std::string("he\0\0\0\0\0", 7));
  }
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/a"), "hello");
}

TEST_F(FaultEnvTest, FileNeverSyncedIsEmptyAndUnsyncedEntryVanishes) {
  {
    auto synced_entry = Open("/db/a");
    ASSERT_TRUE(env_.SyncDir("/db").ok());
    ASSERT_TRUE(synced_entry->Write(0, Bytes("lost")).ok());
    auto unsynced_entry = Open("/db/b");
    ASSERT_TRUE(unsynced_entry->Write(0, Bytes("synced bytes, unsynced name")).ok());
    ASSERT_TRUE(unsynced_entry->Sync().ok());
  }
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/a"), "");
  EXPECT_EQ(Contents("/db/b"), std::nullopt);
  EXPECT_FALSE(env_.FileExists("/db/b"));
}

TEST_F(FaultEnvTest, RemovalWithoutSyncDirIsUndone) {
  WriteDurable("/db/a", "keep me");
  WriteDurable("/db/b", "gone");
  ASSERT_TRUE(env_.RemoveFile("/db/a").ok());
  ASSERT_TRUE(env_.RemoveFile("/db/b").ok());
  ASSERT_TRUE(env_.SyncDir("/db").ok());
  WriteDurable("/db/c", "c");
  ASSERT_TRUE(env_.RemoveFile("/db/c").ok());
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/a"), std::nullopt);
  EXPECT_EQ(Contents("/db/b"), std::nullopt);
  EXPECT_EQ(Contents("/db/c"), "c");
}

TEST_F(FaultEnvTest, RemovedFileComesBackWithOnlyItsSyncedBytes) {
  WriteDurable("/db/a", "synced");
  {
    auto f = Open("/db/a");
    ASSERT_TRUE(f->Write(0, Bytes("UNSYNCED")).ok());
    ASSERT_TRUE(env_.RemoveFile("/db/a").ok());
    ASSERT_TRUE(f->Write(0, Bytes("written after removal")).ok());
  }
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/a"), "synced");
}

TEST_F(FaultEnvTest, HugeAllocatedSegmentRollsBackCheaply) {
  // 1 GiB of holes: logging or restoring zeros page by page would exhaust memory or time.
  constexpr uint64_t kSize = uint64_t{1} << 30;
  {
    auto f = Open("/db/seg");
    ASSERT_TRUE(env_.SyncDir("/db").ok());
    ASSERT_TRUE(f->Allocate(kSize).ok());
    ASSERT_TRUE(f->Sync().ok());
    ASSERT_TRUE(f->Write(kSize - 4, Bytes("tail")).ok());
    ASSERT_TRUE(f->Truncate(1 << 20).ok());
  }
  env_.Crash(CrashMode::kDrop);
  auto f = env_.OpenFile("/db/seg", OpenMode::kRead);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*(*f)->Size(), kSize);
  std::byte last[4];
  size_t read = 0;
  ASSERT_TRUE((*f)->Read(kSize - 4, 4, last, &read).ok());
  EXPECT_EQ(read, 4u);
  EXPECT_EQ(std::memcmp(last, "\0\0\0\0", 4), 0);
}

TEST_F(FaultEnvTest, RenameWithoutSyncDirIsUndone) {
  WriteDurable("/db/current", "old");
  WriteDurable("/db/tmp", "new");
  ASSERT_TRUE(env_.RenameFile("/db/tmp", "/db/current").ok());
  EXPECT_EQ(Contents("/db/current"), "new");
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/current"), "old");
  EXPECT_EQ(Contents("/db/tmp"), "new");

  ASSERT_TRUE(env_.RenameFile("/db/tmp", "/db/current").ok());
  ASSERT_TRUE(env_.SyncDir("/db").ok());
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/current"), "new");
  EXPECT_EQ(Contents("/db/tmp"), std::nullopt);
}

TEST_F(FaultEnvTest, WritesThroughARenamedFileFollowIt) {
  WriteDurable("/db/a", "1234");
  {
    auto f = Open("/db/a");
    ASSERT_TRUE(env_.RenameFile("/db/a", "/db/b").ok());
    ASSERT_TRUE(env_.SyncDir("/db").ok());
    ASSERT_TRUE(f->Write(0, Bytes("xy")).ok());
  }
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/b"), "1234");
}

// Durable: 100 'A's. Unsynced: ten 10-byte writes of 'a'..'j' over them, in order. A tear must
// leave the first k bytes new and the rest old, for some k.
std::string TearOnce(uint64_t seed) {
  auto mem = NewMemEnv();
  FaultInjectionEnv env(mem.get());
  EXPECT_TRUE(env.CreateDir("/db").ok());
  {
    auto f = *env.OpenFile("/db/seg", OpenMode::kCreate);
    EXPECT_TRUE(f->Write(0, Bytes(std::string(100, 'A'))).ok());
    EXPECT_TRUE(f->Sync().ok());
    EXPECT_TRUE(env.SyncDir("/db").ok());
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(f->Write(i * 10, Bytes(std::string(10, 'a' + i))).ok());
  }
  env.Crash(CrashMode::kTear, seed);
  auto f = *env.OpenFile("/db/seg", OpenMode::kRead);
  std::string out(100, '\0');
  size_t read = 0;
  EXPECT_TRUE(f->Read(0, 200, reinterpret_cast<std::byte*>(out.data()), &read).ok());
  EXPECT_EQ(read, 100u);
  return out;
}

TEST(FaultEnvTearTest, TearKeepsAPrefixOfTheUnsyncedBytes) {
  std::string all_new;
  for (int i = 0; i < 10; ++i) all_new += std::string(10, 'a' + i);
  std::set<size_t> prefixes;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    std::string got = TearOnce(seed);
    size_t k = 0;
    while (k < 100 && got[k] == all_new[k]) ++k;
    EXPECT_EQ(got.substr(k), std::string(100 - k, 'A')) << "seed " << seed << ": " << got;
    prefixes.insert(k);
  }
  EXPECT_GT(prefixes.size(), 5u);  // the seed matters
  EXPECT_TRUE(std::any_of(prefixes.begin(), prefixes.end(), [](size_t k) { return k % 10 != 0; }))
      << "no write was ever cut in the middle";
}

TEST(FaultEnvTearTest, SameSeedReplaysIdentically) {
  for (uint64_t seed : {1u, 7u, 42u}) EXPECT_EQ(TearOnce(seed), TearOnce(seed)) << "seed " << seed;
}

TEST_F(FaultEnvTest, TearOfAnAppendKeepsAPrefixAndNoMore) {
  {
    auto f = Open("/db/log");
    ASSERT_TRUE(env_.SyncDir("/db").ok());
    ASSERT_TRUE(f->Write(0, Bytes("0123456789")).ok());
  }
  env_.Crash(CrashMode::kTear, 3);
  auto got = Contents("/db/log");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, std::string("0123456789").substr(0, got->size()));
}

TEST_F(FaultEnvTest, FailAfterFailsTheNPlusFirstSyncAndEveryLaterOne) {
  auto f = Open("/db/a");
  env_.FailAfter(kOpSync, 2);
  EXPECT_TRUE(f->Sync().ok());
  EXPECT_TRUE(f->Write(0, Bytes("x")).ok());  // other kinds are unaffected
  EXPECT_TRUE(f->Sync().ok());
  Status third = f->Sync();
  EXPECT_EQ(third.code(), StatusCode::kIOError);
  EXPECT_NE(third.message().find("injected fault"), std::string::npos) << third.message();
  EXPECT_EQ(f->Sync().code(), StatusCode::kIOError);
  EXPECT_EQ(env_.OpCount(kOpSync), 4u);
  EXPECT_EQ(env_.OpCount(kOpWrite), 1u);
  env_.ClearFaults();
  EXPECT_TRUE(f->Sync().ok());
  EXPECT_EQ(env_.OpCount(kOpSync | kOpWrite), 6u);
}

TEST_F(FaultEnvTest, FailedSyncLeavesTheDataUnsynced) {
  WriteDurable("/db/a", "old");
  {
    auto f = Open("/db/a");
    ASSERT_TRUE(f->Write(0, Bytes("new")).ok());
    env_.FailAfter(kOpSync, 0);
    EXPECT_FALSE(f->Sync().ok());
  }
  env_.ClearFaults();
  env_.Crash(CrashMode::kDrop);
  EXPECT_EQ(Contents("/db/a"), "old");
}

TEST_F(FaultEnvTest, FailAfterCoversOpensReadsAndSyncDir) {
  auto f = Open("/db/a");
  env_.FailAfter(kOpOpen | kOpRead | kOpSyncDir, 0);
  EXPECT_EQ(env_.OpenFile("/db/a", OpenMode::kRead).status().code(), StatusCode::kIOError);
  std::byte b;
  size_t read = 0;
  EXPECT_EQ(f->Read(0, 1, &b, &read).code(), StatusCode::kIOError);
  EXPECT_EQ(env_.SyncDir("/db").code(), StatusCode::kIOError);
  EXPECT_TRUE(f->Write(0, Bytes("ok")).ok());
}

TEST_F(FaultEnvTest, MapThroughTheWrapperSeesWrites) {
  auto f = Open("/db/seg");
  ASSERT_TRUE(f->Allocate(4096).ok());
  auto map = f->Map(4096);
  ASSERT_TRUE(map.ok());
  ASSERT_TRUE(f->Write(10, Bytes("seen")).ok());
  EXPECT_EQ(std::memcmp(*map + 10, "seen", 4), 0);
}

}  // namespace
}  // namespace cairn::env

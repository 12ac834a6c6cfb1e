// Proves the POSIX env and the memory env behave alike where the engine depends on them: data,
// sizes, zero-filled allocation, shared mappings, directories, renames, locks, unlinked files.
// How: one parameterized suite runs every behaviour against Env::Posix() in a temp dir and NewMemEnv().
#include "env/env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/test_util.h"

namespace cairn::env {
namespace {

std::span<const std::byte> Bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::string ReadAll(const File& file, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  size_t read = 0;
  Status s = file.Read(offset, n, reinterpret_cast<std::byte*>(out.data()), &read);
  EXPECT_TRUE(s.ok()) << s.ToString();
  out.resize(read);
  return out;
}

enum class Kind { kPosix, kMem };

class EnvTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kPosix) {
      tmp_.emplace();
      env_ = Env::Posix();
      root_ = tmp_->path();
    } else {
      mem_ = NewMemEnv();
      env_ = mem_.get();
      root_ = "/mem/root";
      ASSERT_TRUE(env_->CreateDir(root_).ok());
    }
  }

  std::string Path(const std::string& name) const { return root_ + "/" + name; }

  std::unique_ptr<File> Open(const std::string& name, OpenMode mode = OpenMode::kCreate) {
    auto file = env_->OpenFile(Path(name), mode);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    return file.ok() ? std::move(file).value() : nullptr;
  }

  std::optional<testing::TempDir> tmp_;
  std::unique_ptr<Env> mem_;
  Env* env_ = nullptr;
  std::string root_;
};

TEST_P(EnvTest, WrittenBytesReadBackAndSetTheSize) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(0, Bytes("hello world")).ok());
  ASSERT_TRUE(f->Write(6, Bytes("cairn")).ok());
  ASSERT_TRUE(f->Sync().ok());
  EXPECT_EQ(ReadAll(*f, 0, 11), "hello cairn");
  EXPECT_EQ(*f->Size(), 11u);
  EXPECT_EQ(ReadAll(*f, 6, 100), "cairn");  // short only at end of file
  EXPECT_EQ(ReadAll(*f, 50, 10), "");
  f.reset();
  auto again = Open("a", OpenMode::kRead);
  EXPECT_EQ(ReadAll(*again, 0, 11), "hello cairn");
}

TEST_P(EnvTest, WriteThenPutsBothPartsOneAfterTheOther) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(0, Bytes("0123456789")).ok());
  ASSERT_TRUE(f->WriteThen(2, Bytes("abc"), Bytes("XY")).ok());
  EXPECT_EQ(ReadAll(*f, 0, 10), "01abcXY789");
  // Past the end, and with parts large enough for the kernel to split: every byte lands once.
  std::string big(3 << 20, 'b'), more(5000, 'm');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>('A' + i % 26);
  ASSERT_TRUE(f->WriteThen(20, Bytes(big), Bytes(more)).ok());
  EXPECT_EQ(*f->Size(), 20 + big.size() + more.size());
  EXPECT_EQ(ReadAll(*f, 20, big.size()), big);
  EXPECT_EQ(ReadAll(*f, 20 + big.size(), more.size() + 1), more);
  EXPECT_EQ(ReadAll(*f, 10, 10), std::string(10, '\0'));
  // An empty second part is a plain write.
  ASSERT_TRUE(f->WriteThen(0, Bytes("zz"), {}).ok());
  EXPECT_EQ(ReadAll(*f, 0, 3), "zza");
}

TEST_P(EnvTest, WriteBeyondTheEndLeavesAZeroGap) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(4, Bytes("x")).ok());
  EXPECT_EQ(ReadAll(*f, 0, 5), std::string("\0\0\0\0x", 5));
}

TEST_P(EnvTest, TruncateShrinksAndGrowsWithZeros) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(0, Bytes("abcdef")).ok());
  ASSERT_TRUE(f->Truncate(3).ok());
  EXPECT_EQ(*f->Size(), 3u);
  ASSERT_TRUE(f->Truncate(5).ok());
  EXPECT_EQ(ReadAll(*f, 0, 10), std::string("abc\0\0", 5));
}

TEST_P(EnvTest, AllocateGrowsToZerosAndNeverShrinks) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(0, Bytes("ab")).ok());
  ASSERT_TRUE(f->Allocate(4096).ok());
  EXPECT_EQ(*f->Size(), 4096u);
  std::string all = ReadAll(*f, 0, 4096);
  ASSERT_EQ(all.size(), 4096u);
  EXPECT_EQ(all.substr(0, 2), "ab");
  EXPECT_TRUE(std::all_of(all.begin() + 2, all.end(), [](char c) { return c == 0; }));
  ASSERT_TRUE(f->Allocate(10).ok());
  EXPECT_EQ(*f->Size(), 4096u);
}

TEST_P(EnvTest, MapSeesLaterWrites) {
  auto f = Open("a");
  ASSERT_TRUE(f->Allocate(8192).ok());
  auto map = f->Map(8192);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  const std::byte* p = *map;
  EXPECT_EQ(p[100], std::byte{0});
  ASSERT_TRUE(f->Write(100, Bytes("mapped")).ok());
  ASSERT_TRUE(f->Write(8191, Bytes("z")).ok());
  EXPECT_EQ(std::memcmp(p + 100, "mapped", 6), 0);
  EXPECT_EQ(p[8191], std::byte{'z'});
}

TEST_P(EnvTest, MapBeyondTheSizeIsRejected) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(0, Bytes("abc")).ok());
  EXPECT_EQ(f->Map(4096).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(EnvTest, OpenModesEnforceExistence) {
  EXPECT_EQ(env_->OpenFile(Path("missing"), OpenMode::kRead).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(env_->OpenFile(Path("missing"), OpenMode::kReadWrite).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(env_->OpenFile(Path("nodir/f"), OpenMode::kCreate).status().code(), StatusCode::kNotFound);
  Open("a", OpenMode::kCreateNew);
  EXPECT_EQ(env_->OpenFile(Path("a"), OpenMode::kCreateNew).status().code(), StatusCode::kAlreadyExists);
  auto ro = Open("a", OpenMode::kRead);
  Status s = ro->Write(0, Bytes("x"));
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find(Path("a")), std::string::npos) << s.message();
}

TEST_P(EnvTest, CreateDirMakesParentsAndListDirNamesChildren) {
  ASSERT_TRUE(env_->CreateDir(Path("d/e/f")).ok());
  ASSERT_TRUE(env_->CreateDir(Path("d/e")).ok());  // existing is fine
  Open("d/x");
  Open("d/e/y");
  auto names = env_->ListDir(Path("d"));
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"e", "x"}));
  EXPECT_TRUE(env_->FileExists(Path("d/e/f")));
  EXPECT_TRUE(env_->FileExists(Path("d/e/y")));
  EXPECT_EQ(env_->ListDir(Path("nope")).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(env_->SyncDir(Path("d")).ok());
}

TEST_P(EnvTest, RenameReplacesTheTargetAndRemoveDeletes) {
  ASSERT_TRUE(Open("a")->Write(0, Bytes("new")).ok());
  ASSERT_TRUE(Open("b")->Write(0, Bytes("old")).ok());
  ASSERT_TRUE(env_->RenameFile(Path("a"), Path("b")).ok());
  EXPECT_FALSE(env_->FileExists(Path("a")));
  EXPECT_EQ(ReadAll(*Open("b", OpenMode::kRead), 0, 3), "new");
  ASSERT_TRUE(env_->RemoveFile(Path("b")).ok());
  EXPECT_FALSE(env_->FileExists(Path("b")));
  EXPECT_EQ(env_->RemoveFile(Path("b")).code(), StatusCode::kNotFound);
  EXPECT_EQ(env_->RenameFile(Path("b"), Path("c")).code(), StatusCode::kNotFound);
}

TEST_P(EnvTest, RemovedFileStaysReadableThroughAnOpenFile) {
  auto f = Open("a");
  ASSERT_TRUE(f->Write(0, Bytes("still here")).ok());
  ASSERT_TRUE(env_->RemoveFile(Path("a")).ok());
  EXPECT_FALSE(env_->FileExists(Path("a")));
  EXPECT_EQ(ReadAll(*f, 0, 10), "still here");
  ASSERT_TRUE(f->Write(0, Bytes("STILL")).ok());
  EXPECT_EQ(ReadAll(*f, 0, 10), "STILL here");
  auto fresh = Open("a", OpenMode::kCreateNew);  // the name is free again
  EXPECT_EQ(*fresh->Size(), 0u);
}

TEST_P(EnvTest, SecondLockIsUnavailableAndNamesTheHolder) {
  auto first = env_->LockFile(Path("LOCK"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = env_->LockFile(Path("LOCK"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(second.status().detail(), ErrorDetail::kStoreLocked);
  EXPECT_NE(second.status().message().find(Path("LOCK")), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find(std::to_string(getpid())), std::string::npos)
      << second.status().message();
  first.value().reset();
  EXPECT_TRUE(env_->LockFile(Path("LOCK")).ok());
}

TEST_P(EnvTest, ClocksAreReal) {
  EXPECT_GT(env_->NowNanos(), int64_t{1'600'000'000} * 1'000'000'000);  // after 2020
  int64_t a = env_->MonotonicNanos();
  EXPECT_LE(a, env_->MonotonicNanos());
}

INSTANTIATE_TEST_SUITE_P(Envs, EnvTest, ::testing::Values(Kind::kPosix, Kind::kMem),
                         [](const auto& info) { return info.param == Kind::kPosix ? "Posix" : "Mem"; });

TEST(MemEnvTest, HugeAllocatedSegmentIsSparseAndMappable) {
  // 4 GiB would not fit in the test machine's RAM if Allocate committed the pages.
  auto env = NewMemEnv();
  ASSERT_TRUE(env->CreateDir("/s").ok());
  auto f = env->OpenFile("/s/segment", OpenMode::kCreateNew);
  ASSERT_TRUE(f.ok());
  constexpr uint64_t kSize = uint64_t{4} << 30;
  ASSERT_TRUE((*f)->Allocate(kSize).ok());
  auto map = (*f)->Map(kSize);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  ASSERT_TRUE((*f)->Write(kSize - 1, Bytes("!")).ok());
  EXPECT_EQ((*map)[kSize - 1], std::byte{'!'});
  EXPECT_EQ((*map)[kSize / 2], std::byte{0});
}

TEST(ManualClockEnvTest, WallClockIsSetByTheTest) {
  auto mem = NewMemEnv();
  ManualClockEnv env(mem.get(), 1000);
  EXPECT_EQ(env.NowNanos(), 1000);
  env.AdvanceNanos(5);
  EXPECT_EQ(env.NowNanos(), 1005);
  env.SetNowNanos(7);
  EXPECT_EQ(env.NowNanos(), 7);
}

}  // namespace
}  // namespace cairn::env

// The log's preparer (LogOpenOptions::prepare_ahead, File::PrepareAhead): a thread that writes
// zeros ahead of the writer, on real files. What must hold: it never touches a byte the writer
// wrote (every record reads back whole after a reopen, however often the two meet), it does
// prepare (where the file system allows), and PrepareAhead changes nothing but the range it is
// given.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "env/env.h"
#include "storage/log.h"
#include "storage/log_format.h"
#include "storage/record.h"
#include "util/test_util.h"

namespace cairn::storage {
namespace {

// Whether this directory's file system takes PrepareAhead (O_DIRECT): tmpfs does not.
bool PrepareWorksIn(const std::string& dir) {
  auto f = env::Env::Posix()->OpenFile(dir + "/probe", env::OpenMode::kCreateNew);
  if (!f.ok() || !(*f)->Allocate(8192).ok()) return false;
  const bool ok = (*f)->PrepareAhead(0, 8192).ok();
  f->reset();
  (void)env::Env::Posix()->RemoveFile(dir + "/probe");
  return ok;
}

TEST(LogPrepareTest, PrepareAheadZeroesItsRangeAndNothingElse) {
  testing::TempDir dir;
  if (!PrepareWorksIn(dir.path())) GTEST_SKIP() << "no O_DIRECT on " << dir.path();
  auto f = env::Env::Posix()->OpenFile(dir.Sub("f"), env::OpenMode::kCreateNew);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Allocate(6 << 20).ok());
  // Data on both sides of the range, written through the page cache and not yet synced.
  const std::string before(8192, 'b');
  const std::string after(4096, 'a');
  ASSERT_TRUE((*f)->Write(0, std::as_bytes(std::span(before))).ok());
  ASSERT_TRUE((*f)->Write((4 << 20) + 8192, std::as_bytes(std::span(after))).ok());
  // More than one of its 1 MiB direct writes.
  ASSERT_TRUE((*f)->PrepareAhead(8192, 4 << 20).ok());
  std::string all(6 << 20, '?');
  size_t got = 0;
  ASSERT_TRUE((*f)->Read(0, all.size(), reinterpret_cast<std::byte*>(all.data()), &got).ok());
  ASSERT_EQ(got, all.size());
  EXPECT_EQ(all.substr(0, 8192), before);
  EXPECT_EQ(all.find_first_not_of('\0', 8192), size_t{(4 << 20) + 8192});
  EXPECT_EQ(all.substr((4 << 20) + 8192, 4096), after);
  EXPECT_EQ(all.find_first_not_of('\0', (4 << 20) + 8192 + 4096), std::string::npos);
}

TEST(LogPrepareTest, AMemoryFileDoesNotPrepare) {
  auto env = env::NewMemEnv();
  ASSERT_TRUE(env->CreateDir("/d").ok());
  auto f = env->OpenFile("/d/f", env::OpenMode::kCreateNew);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Allocate(8192).ok());
  EXPECT_EQ((*f)->PrepareAhead(0, 4096).code(), StatusCode::kNotSupported);
}

// Files that check the preparer's rules as it runs: no Write reaches into a PrepareAhead in
// progress, no PrepareAhead starts below the page of a byte already written, and (check_pages)
// no Write ends inside a prepared page that no Write touched before. Each prepare
// is stretched (a short sleep before it) so that a writer that does not wait meets it.
class CheckingEnv : public env::EnvWrapper {
 public:
  // check_pages: also that no Write ends inside a prepared page that no earlier Write touched
  // (on when the preparer runs: Log::Append then writes such a page whole first).
  CheckingEnv(env::Env* base, bool check_pages) : EnvWrapper(base), check_pages_(check_pages) {}

  Result<std::unique_ptr<env::File>> OpenFile(const std::string& path, env::OpenMode mode) override {
    CAIRN_ASSIGN_OR_RETURN(auto f, base()->OpenFile(path, mode));
    return std::unique_ptr<env::File>(std::make_unique<CheckingFile>(this, std::move(f)));
  }

  std::vector<std::string> violations() {
    std::lock_guard lock(mu_);
    return violations_;
  }
  int prepares() {
    std::lock_guard lock(mu_);
    return prepares_;
  }

 private:
  class CheckingFile final : public env::File {
   public:
    CheckingFile(CheckingEnv* env, std::unique_ptr<env::File> base) : env_(env), base_(std::move(base)) {}
    Status Write(uint64_t offset, std::span<const std::byte> data) override {
      CheckWrite(offset, data.size());
      return base_->Write(offset, data);
    }
    // One write of both parts: checked as one.
    Status WriteThen(uint64_t offset, std::span<const std::byte> data, std::span<const std::byte> then) override {
      CheckWrite(offset, data.size() + then.size());
      return base_->WriteThen(offset, data, then);
    }
    void CheckWrite(uint64_t offset, uint64_t size) {
      std::lock_guard lock(env_->mu_);
      const uint64_t end = offset + size;
      if (preparing_ && end > prepare_lo_ && offset < prepare_hi_) {
        env_->violations_.push_back("write [" + std::to_string(offset) + ", " + std::to_string(end) +
                                    ") meets a prepare of [" + std::to_string(prepare_lo_) + ", " +
                                    std::to_string(prepare_hi_) + ")");
      }
      written_hi_ = std::max<uint64_t>(written_hi_, end);
      // A prepared page a write ends inside must have been written before (whole, or up to
      // the tail), or the kernel reads it from the device first (Log::Append).
      const uint64_t page = end / kPreparePage;
      if (env_->check_pages_ && end % kPreparePage != 0 && prepared_.contains(page) && !touched_.contains(page)) {
        env_->violations_.push_back("write [" + std::to_string(offset) + ", " + std::to_string(end) +
                                    ") ends inside prepared page " + std::to_string(page) +
                                    ", which no earlier write touched");
      }
      if (size > 0) {
        for (uint64_t p = offset / kPreparePage; p <= (end - 1) / kPreparePage; ++p) touched_.insert(p);
      }
    }
    Status PrepareAhead(uint64_t offset, uint64_t length) override {
      {
        std::lock_guard lock(env_->mu_);
        if (offset < written_hi_) {
          env_->violations_.push_back("prepare at " + std::to_string(offset) + " below written bytes up to " +
                                      std::to_string(written_hi_));
        }
        preparing_ = true;
        prepare_lo_ = offset;
        prepare_hi_ = offset + length;
        env_->prepares_++;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      Status s = base_->PrepareAhead(offset, length);
      std::lock_guard lock(env_->mu_);
      preparing_ = false;
      if (s.ok()) {
        for (uint64_t p = offset / kPreparePage; p < (offset + length) / kPreparePage; ++p) prepared_.insert(p);
      }
      return s;
    }
    Status Read(uint64_t o, size_t n, std::byte* d, size_t* r) const override { return base_->Read(o, n, d, r); }
    Status Sync() override { return base_->Sync(); }
    Status Allocate(uint64_t size) override { return base_->Allocate(size); }
    Status Truncate(uint64_t size) override { return base_->Truncate(size); }
    Result<uint64_t> Size() const override { return base_->Size(); }
    Result<const std::byte*> Map(uint64_t length) override { return base_->Map(length); }

   private:
    CheckingEnv* env_;
    std::unique_ptr<env::File> base_;
    uint64_t written_hi_ = 0;  // under env_->mu_
    std::set<uint64_t> touched_;   // pages any Write has covered, under env_->mu_
    std::set<uint64_t> prepared_;  // pages PrepareAhead has written, under env_->mu_
    bool preparing_ = false;
    uint64_t prepare_lo_ = 0;
    uint64_t prepare_hi_ = 0;
  };

  const bool check_pages_;
  std::mutex mu_;
  std::vector<std::string> violations_;
  int prepares_ = 0;
};

// One record as the writer would put it at `position`, with a commit flag.
std::string Record(uint64_t position, uint64_t version, const std::string& data) {
  std::string out;
  EncodeRecord(RecordFields{position, 1'700'000'000'000'000'000 + static_cast<int64_t>(version), version, Uuid{},
                            kFlagCommit, ContentType::kBytes, "s", "t", data, ""},
               &out);
  return out;
}

// The writer appends groups of records of mixed sizes, syncing each, across several small
// segments, while the preparer works a few KiB ahead with 4 KiB claims: the two meet often.
// Neither may write where the other does, the writer never leaves a fresh page partly written
// (CheckingEnv), and after a reopen every record must be there with its bytes.
TEST(LogPrepareTest, EveryRecordSurvivesAPreparerRacingTheWriter) {
  testing::TempDir dir;
  const bool can_prepare = PrepareWorksIn(dir.path());
  CheckingEnv checking(env::Env::Posix(), /*check_pages=*/can_prepare);
  env::Env* env = &checking;
  const uint64_t capacity = 256 << 10;
  std::vector<std::string> written;
  uint64_t prepared = 0;
  uint64_t segments = 0;
  {
    LogOpenOptions lo;
    lo.capacity_for_new = capacity;
    lo.prepare_ahead = 16 << 10;  // claims of 4 KiB
    RecoveryReport report;
    auto log = Log::Open(env, dir.path(), lo, [](const RecordView&) { return Status::Ok(); }, &report);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    std::mt19937 rng(20261127);
    uint64_t version = 0;
    for (int group = 0; group < 600; ++group) {
      std::string bytes;
      const int records = 1 + static_cast<int>(rng() % 4);
      for (int r = 0; r < records; ++r) {
        const size_t size = 20 + rng() % (group % 7 == 0 ? 9000 : 700);
        std::string data(size, '\0');
        for (char& c : data) c = static_cast<char>('A' + rng() % 26);
        const uint64_t at = (*log)->tail() + bytes.size();
        const std::string rec = Record(at, version, data);
        if ((at % capacity) + rec.size() > capacity) break;  // the rest goes to the next group
        bytes += rec;
        written.push_back(data);
        version++;
      }
      if (bytes.empty()) {
        ASSERT_TRUE((*log)->SyncActive().ok());
        ASSERT_TRUE((*log)->Roll().ok());
        continue;
      }
      ASSERT_TRUE((*log)->Append(bytes).ok());
      ASSERT_TRUE((*log)->SyncActive().ok());
      (*log)->Publish();
    }
    segments = (*log)->SegmentCount();
    prepared = (*log)->prepared_bytes();
  }
  EXPECT_GE(segments, 3u);  // the preparer followed the writer across rolls
  if (can_prepare) {
    EXPECT_GT(checking.prepares(), 20);
  }
  for (const std::string& v : checking.violations()) ADD_FAILURE() << v;
  if (can_prepare) {
    EXPECT_GT(prepared, uint64_t{64 << 10});
  } else {
    EXPECT_EQ(prepared, 0u);
  }

  std::vector<std::string> read;
  LogOpenOptions lo;
  lo.create = false;
  RecoveryReport report;
  auto log = Log::Open(
      env, dir.path(), lo,
      [&](const RecordView& r) {
        read.emplace_back(r.data);
        return Status::Ok();
      },
      &report);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(report.truncated_bytes, 0u) << report.note;
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) ASSERT_EQ(read[i], written[i]) << "record " << i;
}

}  // namespace
}  // namespace cairn::storage

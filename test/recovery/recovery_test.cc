// Proves that recovery opens a damaged log with exactly its acknowledged prefix, or refuses it
// naming the damage: unsynced writes dropped, the last record torn at every byte, zero-filled
// tails, flipped bits mid-log, a failed fsync stopping the writer, and random crashes.
// How: stores on a MemEnv or a FaultInjectionEnv, damaged through the env, then reopened; the
// on-disk index's cases on the real file system.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "env/env.h"
#include "env/fault_env.h"
#include "storage/engine.h"
#include "storage/log.h"
#include "storage/log_format.h"
#include "util/test_util.h"

namespace cairn {
namespace {

constexpr char kDir[] = "/db";
const std::string kSeg0 = std::string(kDir) + "/log/" + storage::SegmentFileName(0);

Options SmallOptions(SyncMode sync = SyncMode::kAlways) {
  Options o;
  o.sync = sync;
  o.segment_size_bytes = 64 << 10;
  return o;
}

EventData Event(int i, size_t data_bytes = 40) {
  EventData e;
  e.type = "Deposited";
  e.data = "{\"i\":" + std::to_string(i) + ",\"pad\":\"" + std::string(data_bytes, 'x') + "\"}";
  return e;
}

std::unique_ptr<Store> MustOpen(env::Env* env, const Options& o = SmallOptions(), const std::string& dir = kDir) {
  auto s = storage::OpenEmbedded(env, dir, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::vector<RecordedEvent> ReadAllEvents(Store& store) {
  auto c = store.ReadAll({});
  EXPECT_TRUE(c.ok());
  auto v = c->Collect();
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : std::vector<RecordedEvent>{};
}

std::string ReadFile(env::Env* env, const std::string& path) {
  auto f = env->OpenFile(path, env::OpenMode::kRead);
  EXPECT_TRUE(f.ok());
  auto size = (*f)->Size();
  std::string out(*size, '\0');
  size_t got = 0;
  EXPECT_TRUE((*f)->Read(0, out.size(), reinterpret_cast<std::byte*>(out.data()), &got).ok());
  out.resize(got);
  return out;
}

void WriteFile(env::Env* env, const std::string& path, const std::string& bytes) {
  auto f = env->OpenFile(path, env::OpenMode::kCreate);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Truncate(0).ok());
  ASSERT_TRUE((*f)->Write(0, std::as_bytes(std::span(bytes.data(), bytes.size()))).ok());
  ASSERT_TRUE((*f)->Sync().ok());
}

// A store with `n` single-event appends to two streams, closed. Returns the events' positions
// and the head.
struct Built {
  std::vector<uint64_t> positions;
  uint64_t head = 0;
};
Built BuildStore(env::Env* env, int n, const std::string& dir = kDir) {
  Built b;
  auto store = MustOpen(env, SmallOptions(), dir);
  for (int i = 0; i < n; ++i) {
    std::vector<EventData> ev{Event(i)};
    auto r = store->Append(i % 2 ? "account-1" : "account-2", ExpectedVersion::Any(), ev);
    EXPECT_TRUE(r.ok());
    b.positions.push_back(r->position.value());
  }
  b.head = store->HeadPosition().value();
  EXPECT_TRUE(store->Close().ok());
  return b;
}

TEST(RecoveryTest, LastRecordTornAtEveryByteOpensWithThePrefix) {
  auto base = env::NewMemEnv();
  Built b = BuildStore(base.get(), 6);
  const std::string original = ReadFile(base.get(), kSeg0);
  const uint64_t last = b.positions.back(), end = b.head;
  for (uint64_t keep = 0; keep < end - last; ++keep) {
    for (bool shorten : {false, true}) {
      auto env = env::NewMemEnv();
      ASSERT_TRUE(env->CreateDir(std::string(kDir) + "/log").ok());
      std::string bytes = original;
      if (shorten) {
        bytes.resize(last + keep);  // the write stopped: the file ends inside the record
      } else {
        std::fill(bytes.begin() + static_cast<long>(last + keep), bytes.begin() + static_cast<long>(end), '\0');
      }
      WriteFile(env.get(), kSeg0, bytes);
      // Zeroing the trailer's high bytes, which are zero anyway, leaves the record whole.
      bool torn = false;
      for (uint64_t i = last + keep; i < end; ++i) torn = torn || original[i] != '\0';
      auto store = MustOpen(env.get());
      ASSERT_NE(store, nullptr);
      auto events = ReadAllEvents(*store);
      ASSERT_EQ(events.size(), torn ? 5u : 6u) << "keep " << keep << " shorten " << shorten;
      if (!torn) continue;
      EXPECT_EQ(store->HeadPosition().value(), last);
      // The store goes on: the next append takes the torn record's place, and survives a reopen.
      std::vector<EventData> ev{Event(99)};
      auto r = store->Append("account-3", ExpectedVersion::NoStream(), ev);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->position.value(), last);
      store.reset();
      auto again = MustOpen(env.get());
      EXPECT_EQ(ReadAllEvents(*again).size(), 6u);
      again.reset();
      EXPECT_TRUE(storage::VerifyEmbedded(env.get(), kDir, {}).ok());
    }
  }
}

TEST(RecoveryTest, ZeroFilledTailAfterTheLastRecordIsClean) {
  auto env = env::NewMemEnv();
  Built b = BuildStore(env.get(), 4);
  auto store = MustOpen(env.get());
  EXPECT_EQ(ReadAllEvents(*store).size(), 4u);
  EXPECT_EQ(store->HeadPosition().value(), b.head);
}

TEST(RecoveryTest, FlippedByteMidLogFailsOpenNamingSegmentAndOffset) {
  auto env = env::NewMemEnv();
  Built b = BuildStore(env.get(), 8);
  std::string bytes = ReadFile(env.get(), kSeg0);
  const uint64_t victim = b.positions[3] + storage::kRecordHeaderSize + 12;  // inside the stream name/data
  bytes[victim] = static_cast<char>(bytes[victim] ^ 0x10);
  WriteFile(env.get(), kSeg0, bytes);
  auto s = storage::OpenEmbedded(env.get(), kDir, SmallOptions());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
  EXPECT_NE(s.status().message().find(storage::SegmentFileName(0)), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("offset " + std::to_string(b.positions[3])), std::string::npos)
      << s.status().message();
  Status v = storage::VerifyEmbedded(env.get(), kDir, {});
  EXPECT_EQ(v.code(), StatusCode::kCorruption);
  // Nothing was cut: the damaged bytes are still there for a person to look at.
  EXPECT_EQ(ReadFile(env.get(), kSeg0), bytes);
}

TEST(RecoveryTest, DamageWhileOpenIsNeverServed) {
  auto env = env::NewMemEnv();
  Built b = BuildStore(env.get(), 8);
  auto store = MustOpen(env.get());
  {
    auto f = env->OpenFile(kSeg0, env::OpenMode::kReadWrite);
    ASSERT_TRUE(f.ok());
    std::byte x{0x55};
    ASSERT_TRUE((*f)->Write(b.positions[5] + storage::kRecordHeaderSize + 20, std::span(&x, 1)).ok());
  }
  auto all = store->ReadAll({});
  ASSERT_TRUE(all.ok());
  int served = 0;
  while (all->Next()) served++;
  EXPECT_EQ(served, 5);
  EXPECT_EQ(all->status().code(), StatusCode::kCorruption);
  auto stream = store->ReadStream("account-1", {});  // versions at positions 1, 3, 5, 7
  ASSERT_TRUE(stream.ok());
  served = 0;
  while (stream->Next()) served++;
  EXPECT_EQ(served, 2);
  EXPECT_EQ(stream->status().code(), StatusCode::kCorruption);
}

TEST(RecoveryTest, UnsyncedAppendsAreDroppedAndAFailedSyncStopsTheWriter) {
  auto mem = env::NewMemEnv();
  env::FaultInjectionEnv fi(mem.get());
  auto store = MustOpen(&fi);
  for (int i = 0; i < 5; ++i) {
    std::vector<EventData> ev{Event(i)};
    ASSERT_TRUE(store->Append("account-1", ExpectedVersion::Any(), ev).ok());
  }
  fi.FailAfter(env::kOpSync, 0);
  std::vector<EventData> ev{Event(5)};
  auto r = store->Append("account-1", ExpectedVersion::Any(), ev);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIOError);
  EXPECT_EQ(r.status().detail(), ErrorDetail::kWriterStopped);
  // Fail-stop: even with the fault gone, the writer does not try again.
  fi.ClearFaults();
  auto r2 = store->Append("account-1", ExpectedVersion::Any(), ev);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().detail(), ErrorDetail::kWriterStopped);
  // Reads still work, and never show the failed append.
  EXPECT_EQ(ReadAllEvents(*store).size(), 5u);
  store.reset();
  fi.Crash(env::CrashMode::kDrop);
  auto again = MustOpen(&fi);
  auto events = ReadAllEvents(*again);
  ASSERT_EQ(events.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(events[i].version, static_cast<uint64_t>(i));
}

TEST(RecoveryTest, SyncNoneLosesWhatWasNeverSynced) {
  auto mem = env::NewMemEnv();
  env::FaultInjectionEnv fi(mem.get());
  BuildStore(&fi, 3);  // durable
  {
    auto store = MustOpen(&fi, SmallOptions(SyncMode::kNone));
    for (int i = 0; i < 4; ++i) {
      std::vector<EventData> ev{Event(i)};
      ASSERT_TRUE(store->Append("account-9", ExpectedVersion::Any(), ev).ok());
    }
    fi.FailAfter(env::kOpSync, 0);  // the clean close's sync does not happen: a power cut
  }
  fi.ClearFaults();
  fi.Crash(env::CrashMode::kDrop);
  auto again = MustOpen(&fi);
  EXPECT_EQ(ReadAllEvents(*again).size(), 3u);
}

TEST(RecoveryTest, LostWriteBeforeValidRecordsIsCutNotServed) {
  // Pages of one unsynced write can reach the disk out of order: a zeroed record followed by a
  // valid one is a lost write, and everything from the zeroed record on was never acknowledged.
  auto env = env::NewMemEnv();
  Built b = BuildStore(env.get(), 6);
  std::string bytes = ReadFile(env.get(), kSeg0);
  std::fill(bytes.begin() + static_cast<long>(b.positions[4]), bytes.begin() + static_cast<long>(b.positions[5]), '\0');
  WriteFile(env.get(), kSeg0, bytes);
  auto store = MustOpen(env.get());
  EXPECT_EQ(ReadAllEvents(*store).size(), 4u);
}

TEST(RecoveryTest, MissingSegmentIsCorruption) {
  auto env = env::NewMemEnv();
  {
    auto store = MustOpen(env.get());
    for (int i = 0; i < 600; ++i) {  // ~100 KiB per 64 KiB segment: at least 3 segments
      std::vector<EventData> ev{Event(i, 300)};
      ASSERT_TRUE(store->Append("s-" + std::to_string(i % 7), ExpectedVersion::Any(), ev).ok());
    }
  }
  {
    auto store = MustOpen(env.get());
    EXPECT_EQ(ReadAllEvents(*store).size(), 600u);
  }
  ASSERT_TRUE(env->RemoveFile(std::string(kDir) + "/log/" + storage::SegmentFileName(1)).ok());
  auto s = storage::OpenEmbedded(env.get(), kDir, SmallOptions());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption);
  EXPECT_NE(s.status().message().find(storage::SegmentFileName(1)), std::string::npos) << s.status().message();
}

// The on-disk index (LMDB, DIR/index/) lives on the real file system: the tests of how the
// engine uses it after a clean close, a crash, or damage run in a temporary directory.
struct PosixDir {
  testing::TempDir tmp;
  std::string dir = tmp.Sub("db");
  std::string seg0 = dir + "/log/" + storage::SegmentFileName(0);
  env::Env* env = env::Env::Posix();
  std::unique_ptr<Store> Open(const Options& o = SmallOptions()) { return MustOpen(env, o, dir); }
};

TEST(RecoveryTest, DamageInASealedSegmentIsCorruption) {
  PosixDir d;
  // A small idempotency window: the open rebuilds it from the last 50 records only.
  Options o = SmallOptions();
  o.idempotency_window_events = 50;
  {
    auto store = d.Open(o);
    for (int i = 0; i < 400; ++i) {
      std::vector<EventData> ev{Event(i, 300)};
      ASSERT_TRUE(store->Append("s-1", ExpectedVersion::Any(), ev).ok());
    }
  }
  std::string bytes = ReadFile(d.env, d.seg0);
  bytes[1000] = static_cast<char>(bytes[1000] ^ 1);
  WriteFile(d.env, d.seg0, bytes);
  // After a clean close the on-disk index covers the whole log, so the open scans no sealed
  // segment: the damage is caught by every read that reaches it, and by verify, never served.
  {
    auto store = d.Open(o);
    auto c = store->ReadStream("s-1", {});
    ASSERT_TRUE(c.ok());
    int served = 0;
    while (c->Next()) served++;
    EXPECT_EQ(c->status().code(), StatusCode::kCorruption);
    EXPECT_LT(served, 10);
  }
  EXPECT_EQ(storage::VerifyEmbedded(d.env, d.dir, {}).code(), StatusCode::kCorruption);
  // With a window that reaches the damage, the open reads it, and refuses naming the segment.
  auto wide = storage::OpenEmbedded(d.env, d.dir, SmallOptions());
  ASSERT_FALSE(wide.ok());
  EXPECT_EQ(wide.status().code(), StatusCode::kCorruption) << wide.status().ToString();
  EXPECT_NE(wide.status().message().find("0000000000000000.seg"), std::string::npos) << wide.status().ToString();
  // Without its index the open scans everything, and refuses too.
  std::filesystem::remove_all(d.dir + "/index");
  auto s = storage::OpenEmbedded(d.env, d.dir, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
}

TEST(RecoveryTest, IndexOfAnotherLogIsClearedAndRebuilt) {
  PosixDir d;
  BuildStore(d.env, 20, d.dir);
  ASSERT_TRUE(std::filesystem::exists(d.dir + "/index/data.mdb"));
  {
    auto store = d.Open();
    EXPECT_EQ(ReadAllEvents(*store).size(), 20u);
    auto info = store->GetStreamInfo("account-1");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->last_version, 9u);
    std::vector<EventData> ev{Event(100)};
    ASSERT_TRUE(store->Append("account-1", ExpectedVersion::Exact(9), ev).ok());
  }
  // The index of a different log (other event sizes, so other checksums and positions).
  PosixDir other;
  {
    auto store = other.Open();
    for (int i = 0; i < 30; ++i) {
      std::vector<EventData> ev{Event(i, 100)};
      ASSERT_TRUE(store->Append("account-1", ExpectedVersion::Any(), ev).ok());
    }
  }
  std::filesystem::copy_file(other.dir + "/index/data.mdb", d.dir + "/index/data.mdb",
                             std::filesystem::copy_options::overwrite_existing);
  auto store = d.Open();
  EXPECT_EQ(ReadAllEvents(*store).size(), 21u);
  auto info = store->GetStreamInfo("account-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 10u);
  auto c = store->ReadStream("account-1", {});
  ASSERT_TRUE(c.ok());
  auto evs = c->Collect();
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 11u);
  EXPECT_EQ((*evs)[10].data, Event(100).data);
  std::vector<EventData> ev{Event(101)};
  EXPECT_TRUE(store->Append("account-1", ExpectedVersion::Exact(10), ev).ok());
}

TEST(RecoveryTest, StaleIndexIsCaughtUpFromTheLogWithItsIdempotencyWindow) {
  PosixDir d;
  BuildStore(d.env, 10, d.dir);
  // As after a crash: the index as it was at 10 events, the log with 5 more appends.
  const std::string saved = d.tmp.Sub("saved.mdb");
  std::filesystem::copy_file(d.dir + "/index/data.mdb", saved);
  std::vector<EventData> retried;
  AppendResult first;
  {
    auto store = d.Open();
    for (int i = 0; i < 5; ++i) {
      std::vector<EventData> ev{Event(50 + i)};
      ev[0].id = Uuid::V7();
      auto r = store->Append("account-2", ExpectedVersion::Any(), ev);
      ASSERT_TRUE(r.ok());
      if (i == 2) {
        retried = ev;
        first = *r;
      }
    }
  }
  std::filesystem::copy_file(saved, d.dir + "/index/data.mdb", std::filesystem::copy_options::overwrite_existing);
  auto store = d.Open();
  auto events = ReadAllEvents(*store);
  ASSERT_EQ(events.size(), 15u);
  auto info = store->GetStreamInfo("account-2");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 9u);  // 5 from BuildStore + 5 after the index's head
  // The retry of an append the stale index never saw is still recognised.
  auto again = store->Append("account-2", ExpectedVersion::NoStream(), retried);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, first);
  EXPECT_EQ(ReadAllEvents(*store).size(), 15u);
}

TEST(RecoveryTest, IndexAheadOfALogThatLostItsTailIsIgnored) {
  PosixDir d;
  Built b = BuildStore(d.env, 8, d.dir);
  // The disk lost the last two records although the index had them.
  std::string bytes = ReadFile(d.env, d.seg0);
  std::fill(bytes.begin() + static_cast<long>(b.positions[6]), bytes.begin() + static_cast<long>(b.head), '\0');
  WriteFile(d.env, d.seg0, bytes);
  auto store = d.Open();
  EXPECT_EQ(ReadAllEvents(*store).size(), 6u);
  auto info = store->GetStreamInfo("account-1");  // odd i: versions for i = 1, 3, 5
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 2u);
  std::vector<EventData> ev{Event(9)};
  auto r = store->Append("account-1", ExpectedVersion::Exact(2), ev);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->position.value(), b.positions[6]);
}

// A rebuild of a long log writes the index as it goes (memory stays within the budget), across
// segment boundaries; the next open resumes from it; streams, metadata, tombstones, temporal
// reads and the idempotency window come out the same as before.
TEST(RecoveryTest, RebuildWithATinyMemoryBudgetWritesTheIndexAsItGoes) {
  PosixDir d;
  Options small = SmallOptions();
  small.index_memory_bytes = 4096;
  small.idempotency_window_events = 300;
  std::map<std::string, uint64_t> last;
  std::vector<EventData> last_append;
  AppendResult last_result;
  {
    auto store = d.Open(small);
    for (int i = 0; i < 1500; ++i) {
      const std::string stream = "acct-" + std::to_string(i % 37);
      std::vector<EventData> ev{Event(i, 100)};
      ev[0].id = Uuid::V7();
      auto r = store->Append(stream, ExpectedVersion::Any(), ev);
      ASSERT_TRUE(r.ok());
      last[stream] = r->first_version;
      last_append = ev;
      last_result = *r;
    }
    StreamMetadata md;
    md.max_count = 3;
    ASSERT_TRUE(store->SetStreamMetadata("acct-1", ExpectedVersion::Any(), md).ok());
    ASSERT_TRUE(store->TombstoneStream("acct-2", ExpectedVersion::Any()).ok());
  }
  ASSERT_TRUE(std::filesystem::exists(d.dir + "/log/" + storage::SegmentFileName(2)));
  auto check = [&](Store& store) {
    EXPECT_EQ(ReadAllEvents(store).size(), 1500u + 2u);
    for (const auto& [stream, version] : last) {
      auto info = store.GetStreamInfo(stream);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->last_version, version) << stream;
      if (stream == "acct-2") {
        EXPECT_TRUE(info->tombstoned);
        continue;
      }
      auto c = store.ReadStream(stream, {});
      ASSERT_TRUE(c.ok()) << stream;
      auto evs = c->Collect();
      ASSERT_TRUE(evs.ok());
      EXPECT_EQ(evs->size(), stream == "acct-1" ? 3u : version + 1) << stream;
    }
    auto info = store.GetStreamInfo("acct-1");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->metadata.max_count, 3u);
    EXPECT_EQ(info->metadata_version, 0u);
  };
  std::filesystem::remove_all(d.dir + "/index");
  {
    auto store = d.Open(small);
    check(*store);
  }
  auto store = d.Open(small);  // resumes from the index the rebuild wrote
  check(*store);
  // The last append's retry: its ids are in the window rebuilt from the log.
  auto again = store->Append("acct-" + std::to_string(1499 % 37), ExpectedVersion::Any(), last_append);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, last_result);
}

TEST(RecoveryTest, SecondOpenOfADirectoryIsRefused) {
  auto env = env::NewMemEnv();
  auto first = MustOpen(env.get());
  auto second = storage::OpenEmbedded(env.get(), kDir, SmallOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(second.status().detail(), ErrorDetail::kStoreLocked);
}

// Random crashes: appends in several threads, a fault at a random write or sync, a torn crash;
// after reopening, every acknowledged append is there in order, and nothing else but whole
// unacknowledged appends that were in flight.
// Group commit on a slow disk (each sync 300 us, covering only what was written before it
// started) with many appends in flight and a sync failing mid-run: callbacks come in commit
// order; an append is acknowledged only once durable, so a power failure keeps every
// acknowledged one; readers of the open store never see an unacknowledged one; after the
// failure every append fails (fail-stop).
TEST(RecoveryTest, AppendsInFlightOnASlowDiskAreAcknowledgedOnlyOnceDurable) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto mem = env::NewMemEnv();
  env::FaultInjectionEnv fi(mem.get());
  Options options = SmallOptions();
  options.segment_size_bytes = 4 << 20;  // no segment roll (whose sync covers everything)
  auto store = MustOpen(&fi, options);
  ASSERT_NE(store, nullptr);
  fi.SetSyncDelay(std::chrono::microseconds(300));
  fi.FailAfter(env::kOpSync, 5 + rng() % 20);

  struct Acked {
    std::string stream;
    std::string data;
    uint64_t position;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Acked> acked;
  std::vector<bool> ok_in_order;  // each callback's success, in callback order
  std::vector<uint64_t> positions_in_order;
  int done = 0;
  int sent = 0;
  // Appends go on until one has failed, and then 200 more: how many groups (and so syncs) a
  // number of appends makes depends on the machine's speed, so a fixed count may end before the
  // injected failure (a 2-vCPU guest with slow timers sent 3,000 in fewer than 24 syncs).
  std::atomic<bool> failed{false};
  constexpr int kMaxAppends = 200'000;
  constexpr int kAfterFailure = 200;
  std::thread sender([&] {
    int after = 0;
    for (int i = 0; i < kMaxAppends && after < kAfterFailure; ++i, ++sent) {
      if (failed.load()) ++after;
      const std::string stream = "acct-" + std::to_string(i % 8);
      std::vector<EventData> ev{Event(i)};
      const std::string data = ev[0].data;
      store->AppendAsync(stream, ExpectedVersion::Any(), ev, [&, stream, data](Result<AppendResult> r) {
        std::lock_guard lock(mu);
        ok_in_order.push_back(r.ok());
        if (!r.ok()) failed = true;
        if (r.ok()) {
          acked.push_back({stream, data, r->position.value()});
          positions_in_order.push_back(r->position.value());
        }
        ++done;
        cv.notify_all();
      });
      if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  sender.join();
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == sent; });
  }
  // Commit order, and fail-stop: successes, then only failures.
  ASSERT_FALSE(acked.empty());
  ASSERT_FALSE(ok_in_order.back()) << "the injected sync failure never happened";
  for (size_t i = 1; i < positions_in_order.size(); ++i) ASSERT_LT(positions_in_order[i - 1], positions_in_order[i]);
  const size_t first_failure = std::find(ok_in_order.begin(), ok_in_order.end(), false) - ok_in_order.begin();
  EXPECT_EQ(first_failure, acked.size());
  for (size_t i = first_failure; i < ok_in_order.size(); ++i) ASSERT_FALSE(ok_in_order[i]) << i;

  // Readers saw exactly the acknowledged appends.
  auto visible = ReadAllEvents(*store);
  ASSERT_EQ(visible.size(), acked.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(visible[i].position.value(), acked[i].position);
    EXPECT_EQ(visible[i].data, acked[i].data);
  }

  // A power failure keeps every acknowledged append, at its position.
  store.reset();
  fi.ClearFaults();
  fi.SetSyncDelay(std::chrono::microseconds(0));
  fi.Crash(env::CrashMode::kDrop);
  auto again = MustOpen(&fi, options);
  ASSERT_NE(again, nullptr);
  auto recovered = ReadAllEvents(*again);
  ASSERT_GE(recovered.size(), acked.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(recovered[i].position.value(), acked[i].position);
    EXPECT_EQ(recovered[i].stream, acked[i].stream);
    EXPECT_EQ(recovered[i].data, acked[i].data);
  }
}

TEST(RecoveryTest, RandomCrashesKeepExactlyTheAcknowledgedPrefix) {
  const uint64_t base_seed = std::random_device{}();
  for (uint64_t round = 0; round < 40; ++round) {
    const uint64_t seed = base_seed + round;
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto mem = env::NewMemEnv();
    env::FaultInjectionEnv fi(mem.get());
    std::map<std::string, std::vector<std::string>> acked;  // stream -> data, in version order
    int next = 0;
    for (int crash = 0; crash < 3; ++crash) {
      auto store = MustOpen(&fi);
      ASSERT_NE(store, nullptr);
      // Everything acknowledged before is there.
      for (int k = 0; k < 4; ++k) {
        const std::string stream = "acct-" + std::to_string(k);
        auto& datas = acked[stream];
        auto c = store->ReadStream(stream, {});
        if (!c.ok() && c.status().IsNotFound() && datas.empty()) continue;
        ASSERT_TRUE(c.ok());
        auto evs = c->Collect();
        ASSERT_TRUE(evs.ok());
        ASSERT_GE(evs->size(), datas.size());
        for (size_t i = 0; i < datas.size(); ++i) EXPECT_EQ((*evs)[i].data, datas[i]);
        // Unacknowledged survivors become acknowledged history now.
        datas.clear();
        for (auto& e : *evs) datas.push_back(e.data);
      }
      fi.FailAfter(env::kOpWrite | env::kOpSync, rng() % 40);
      for (int i = 0; i < 60; ++i) {
        const std::string stream = "acct-" + std::to_string(rng() % 4);
        std::vector<EventData> batch;
        for (uint64_t k = 0, n = 1 + rng() % 4; k < n; ++k) batch.push_back(Event(next++, rng() % 200));
        auto r = store->Append(stream, ExpectedVersion::Any(), batch);
        if (!r.ok()) break;
        for (auto& e : batch) acked[stream].push_back(e.data);
      }
      store.reset();
      fi.ClearFaults();
      fi.Crash(env::CrashMode::kTear, rng());
    }
    auto store = MustOpen(&fi);
    for (const auto& [stream, datas] : acked) {
      auto c = store->ReadStream(stream, {});
      if (datas.empty()) continue;
      ASSERT_TRUE(c.ok());
      auto evs = c->Collect();
      ASSERT_TRUE(evs.ok());
      ASSERT_GE(evs->size(), datas.size());
      for (size_t i = 0; i < datas.size(); ++i) EXPECT_EQ((*evs)[i].data, datas[i]);
    }
  }
}

}  // namespace
}  // namespace cairn

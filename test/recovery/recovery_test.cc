// Proves that recovery opens a damaged log with exactly its acknowledged prefix, or refuses it
// naming the damage: unsynced writes dropped, the last record torn at every byte, zero-filled
// tails, flipped bits mid-log, a failed fsync stopping the writer, and random crashes.
// How: stores on a MemEnv or a FaultInjectionEnv, damaged through the env, then reopened.
#include <gtest/gtest.h>

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

std::unique_ptr<Store> MustOpen(env::Env* env, const Options& o = SmallOptions()) {
  auto s = storage::OpenEmbedded(env, kDir, o);
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
Built BuildStore(env::Env* env, int n) {
  Built b;
  auto store = MustOpen(env);
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

TEST(RecoveryTest, DamageInASealedSegmentIsCorruption) {
  auto env = env::NewMemEnv();
  {
    auto store = MustOpen(env.get());
    for (int i = 0; i < 400; ++i) {
      std::vector<EventData> ev{Event(i, 300)};
      ASSERT_TRUE(store->Append("s-1", ExpectedVersion::Any(), ev).ok());
    }
  }
  std::string bytes = ReadFile(env.get(), kSeg0);
  bytes[1000] = static_cast<char>(bytes[1000] ^ 1);
  WriteFile(env.get(), kSeg0, bytes);
  // After a clean close, the index checkpoint spares the open a scan of sealed segments: the
  // damage is caught by every read that reaches it, and by verify, but never served.
  {
    auto store = MustOpen(env.get());
    auto c = store->ReadStream("s-1", {});
    ASSERT_TRUE(c.ok());
    int served = 0;
    while (c->Next()) served++;
    EXPECT_EQ(c->status().code(), StatusCode::kCorruption);
    EXPECT_LT(served, 10);
  }
  EXPECT_EQ(storage::VerifyEmbedded(env.get(), kDir, {}).code(), StatusCode::kCorruption);
  // Without a checkpoint the open scans everything, and refuses.
  ASSERT_TRUE(env->RemoveFile(std::string(kDir) + "/index.ckpt").ok());
  auto s = storage::OpenEmbedded(env.get(), kDir, SmallOptions());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
}

TEST(RecoveryTest, CheckpointIsUsedAfterACleanCloseAndIgnoredWhenItDoesNotMatch) {
  auto env = env::NewMemEnv();
  Built b = BuildStore(env.get(), 20);
  const std::string ckpt = std::string(kDir) + "/index.ckpt";
  ASSERT_TRUE(env->FileExists(ckpt));
  {
    auto store = MustOpen(env.get());
    EXPECT_EQ(ReadAllEvents(*store).size(), 20u);
    auto info = store->GetStreamInfo("account-1");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->last_version, 9u);
    // Appends after the checkpoint's head, then a crash (no clean close, no new checkpoint).
    std::vector<EventData> ev{Event(100)};
    ASSERT_TRUE(store->Append("account-1", ExpectedVersion::Exact(9), ev).ok());
  }
  {
    auto store = MustOpen(env.get());
    EXPECT_EQ(ReadAllEvents(*store).size(), 21u);
  }
  // A damaged checkpoint is ignored: the indexes are rebuilt from the log.
  std::string bytes = ReadFile(env.get(), ckpt);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x40);
  WriteFile(env.get(), ckpt, bytes);
  {
    auto store = MustOpen(env.get());
    EXPECT_EQ(ReadAllEvents(*store).size(), 21u);
    auto info = store->GetStreamInfo("account-1");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->last_version, 10u);
    std::vector<EventData> ev{Event(101)};
    EXPECT_TRUE(store->Append("account-1", ExpectedVersion::Exact(10), ev).ok());
  }
  (void)b;
}

TEST(RecoveryTest, StaleCheckpointIsCaughtUpFromTheLog) {
  auto mem = env::NewMemEnv();
  env::FaultInjectionEnv fi(mem.get());
  BuildStore(&fi, 10);  // clean close: checkpoint at 10 events
  {
    auto store = MustOpen(&fi);
    for (int i = 0; i < 5; ++i) {
      std::vector<EventData> ev{Event(50 + i)};
      ASSERT_TRUE(store->Append("account-2", ExpectedVersion::Any(), ev).ok());
    }
    // A crash: the clean close's checkpoint never becomes durable.
    fi.FailAfter(env::kOpSync | env::kOpWrite, 0);
  }
  fi.ClearFaults();
  fi.Crash(env::CrashMode::kDrop);
  auto store = MustOpen(&fi);
  auto events = ReadAllEvents(*store);
  ASSERT_EQ(events.size(), 15u);
  auto info = store->GetStreamInfo("account-2");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 9u);  // 5 from BuildStore + 5 after the checkpoint
}

TEST(RecoveryTest, CheckpointAheadOfALogThatLostItsTailIsIgnored) {
  auto env = env::NewMemEnv();
  Built b = BuildStore(env.get(), 8);
  // The disk lost the last two records although the checkpoint had indexed them.
  std::string bytes = ReadFile(env.get(), kSeg0);
  std::fill(bytes.begin() + static_cast<long>(b.positions[6]), bytes.begin() + static_cast<long>(b.head), '\0');
  WriteFile(env.get(), kSeg0, bytes);
  auto store = MustOpen(env.get());
  EXPECT_EQ(ReadAllEvents(*store).size(), 6u);
  auto info = store->GetStreamInfo("account-1");  // odd i: versions for i = 1, 3, 5
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_version, 2u);
  std::vector<EventData> ev{Event(9)};
  auto r = store->Append("account-1", ExpectedVersion::Exact(2), ev);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->position.value(), b.positions[6]);
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

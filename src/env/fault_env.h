// FaultInjectionEnv: an Env for recovery tests (RocksDB's FaultInjectionTestFS, SQLite's crash
// simulation). It wraps a base Env (normally a MemEnv) and remembers, per file, what was written
// since the last Sync(), and per directory, which entries changed since the last SyncDir().
//
// Crash() simulates a power failure at this instant: unsynced writes are undone (kDrop), or a
// seeded random part of them survives and the rest reads as it was before (kTear); files created
// since their directory's last SyncDir disappear. Afterwards, open the store again on the same
// env to see what recovery makes of it. Open File objects must be destroyed before Crash().
//
// FailAfter(kinds, n): the (n+1)th later operation of one of `kinds` fails with kIOError
// ("injected fault"), and so does every later one of those kinds until ClearFaults().
#pragma once

#include <chrono>

#include <cstdint>
#include <memory>

#include "env/env.h"

namespace cairn::env {

enum class CrashMode : uint8_t { kDrop, kTear };

enum OpKind : uint32_t {
  kOpWrite = 1u << 0,
  kOpSync = 1u << 1,
  kOpSyncDir = 1u << 2,
  kOpOpen = 1u << 3,
  kOpAllocate = 1u << 4,
  kOpRead = 1u << 5,
  kOpAll = 0xffffffffu,
};

class FaultInjectionEnv : public EnvWrapper {
 public:
  explicit FaultInjectionEnv(Env* base);
  ~FaultInjectionEnv() override;

  void Crash(CrashMode mode, uint64_t seed = 0);
  void FailAfter(uint32_t kinds, uint64_t n);
  void ClearFaults();
  // Every later file Sync() takes this long (a slow disk), without holding the env's lock, so
  // other threads write meanwhile; it makes durable only what was written before it started.
  void SetSyncDelay(std::chrono::microseconds delay);
  // Operations of the given kinds seen so far (to pick an N for FailAfter).
  uint64_t OpCount(uint32_t kinds) const;

  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override;
  Status SyncDir(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;

  struct State;  // implementation detail, public for the file wrapper

 private:
  std::unique_ptr<State> state_;
};

}  // namespace cairn::env

// FaultInjectionEnv: see fault_env.h for the contract. How it keeps track:
//
// Per file identity (a FileState, not a path: a file keeps its history across renames, and a
// removed file's data must survive until its removal is made durable) an undo log of Changes
// since the last successful Sync(): the range of bytes a write or a shrinking truncate replaced,
// the non-zero old bytes of that range, and the size before and after. Old bytes that were zero
// are not stored: a fresh 256 MiB segment that is Allocate()d and then written costs nothing to
// log, and truncating it back costs only its non-zero data.
//
// Per directory operation (create, remove, rename) since the last SyncDir of the directories it
// touched: what is needed to undo it. A rename across two directories is durable only once both
// have been synced (a simplification: a real file system may keep one half).
//
// Crash() first rolls every file's bytes back to its last Sync (or a seeded prefix of the
// unsynced writes, kTear), through a handle the State holds on each base file, then undoes the
// unsynced directory operations newest first, by path, recreating removed files from the handle.
//
// Fault kinds: Write -> kOpWrite; Sync -> kOpSync; SyncDir -> kOpSyncDir; OpenFile -> kOpOpen;
// Allocate and Truncate (size changes) -> kOpAllocate; Read -> kOpRead. Size, Map, RemoveFile,
// RenameFile, ListDir, CreateDir and LockFile are not counted and never fail by injection.
// Directories made with CreateDir are durable at once.
#include "env/fault_env.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "env/fd_file.h"
#include "util/check.h"

namespace cairn::env {

using internal::NormalizePath;
using internal::ParentDir;

struct FaultInjectionEnv::State {
  // A run of old bytes that were not all zero.
  struct Piece {
    uint64_t offset;
    std::vector<std::byte> bytes;
  };

  // One unsynced change to a file's bytes or size.
  struct Change {
    uint64_t size_before = 0;
    uint64_t size_after = 0;
    // The bytes whose content changed: the written range, or the range a truncate cut off.
    // Empty for a pure size growth (Allocate, truncate up): those bytes are zeros.
    uint64_t lo = 0;
    uint64_t hi = 0;
    bool is_write = false;   // a write may be torn in the middle; size changes are atomic
    std::vector<Piece> old;  // non-zero old content within [lo, min(hi, size_before))
  };

  struct FileState {
    uint64_t id = 0;
    std::string path;             // the current path; empty once removed
    std::unique_ptr<File> base;   // undoes changes; keeps a removed file's data alive
    std::vector<Change> changes;  // since the last Sync, oldest first
    uint64_t changes_retired = 0;  // changes ever removed from the front (synced or crashed)
  };

  enum class DirOpKind { kCreate, kRemove, kRename };
  struct DirOp {
    DirOpKind kind;
    std::string path;                     // created or removed path; the rename's source
    std::string to;                       // the rename's destination
    std::shared_ptr<FileState> file;      // kRemove: the removed file
    std::shared_ptr<FileState> replaced;  // kRename: the file `to` named before, if any
    std::set<std::string> unsynced_dirs;  // the op is durable when this is empty
  };

  explicit State(Env* base_env) : base(base_env) {}

  // Requires mu. Counts the op and fails it if a FailAfter says so.
  Status MaybeFail(OpKind kind, std::string_view op, const std::string& path) {
    ++counts[std::countr_zero(static_cast<uint32_t>(kind))];
    if ((fail_kinds & kind) == 0) return Status::Ok();
    if (++fail_seen <= fail_after) return Status::Ok();
    return Status::IOError("injected fault: " + std::string(op) + " " + path);
  }

  // Requires mu. A new FileState with its own read-write handle on the base file at `path`.
  Result<std::shared_ptr<FileState>> NewFileState(const std::string& path) {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<File> handle, base->OpenFile(path, OpenMode::kReadWrite));
    auto fs = std::make_shared<FileState>();
    fs->id = next_id++;
    fs->path = path;
    fs->base = std::move(handle);
    return fs;
  }

  // Requires mu. The FileState of a path that exists in the base: the tracked one, or a new one
  // (tracked from now on when `track`).
  Result<std::shared_ptr<FileState>> StateFor(const std::string& path, bool track) {
    auto it = by_path.find(path);
    if (it != by_path.end()) return it->second;
    CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<FileState> fs, NewFileState(path));
    if (track) by_path[path] = fs;
    return fs;
  }

  Env* const base;
  mutable std::mutex mu;
  std::array<uint64_t, 32> counts{};
  uint32_t fail_kinds = 0;
  uint64_t fail_after = 0;
  uint64_t fail_seen = 0;
  uint64_t next_id = 0;
  std::map<std::string, std::shared_ptr<FileState>> by_path;  // live files opened for writing
  std::vector<DirOp> dir_ops;                                 // not yet durable, oldest first
  std::atomic<int> open_files{0};
  std::chrono::microseconds sync_delay{0};
};

namespace {

using State = FaultInjectionEnv::State;

constexpr size_t kChunkBytes = 64 * 1024;
const std::array<std::byte, kChunkBytes> kZeros{};

bool IsZero(const std::byte* p, size_t n) {
  while (n > 0) {
    size_t k = std::min(n, kChunkBytes);
    if (std::memcmp(p, kZeros.data(), k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

// Appends the non-zero chunks of [lo, hi) of `file` to `out`.
Status CaptureOld(const File& file, uint64_t lo, uint64_t hi, std::vector<State::Piece>* out) {
  if (lo >= hi) return Status::Ok();
  std::vector<std::byte> buf(std::min<uint64_t>(hi - lo, kChunkBytes));
  for (uint64_t pos = lo; pos < hi; pos += buf.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(hi - pos, buf.size()));
    size_t got = 0;
    CAIRN_RETURN_IF_ERROR(file.Read(pos, n, buf.data(), &got));
    if (!IsZero(buf.data(), got))
      out->push_back({pos, std::vector<std::byte>(buf.begin(), buf.begin() + got)});
    if (got < n) break;
  }
  return Status::Ok();
}

void CheckOk(const Status& s) { CAIRN_CHECK_MSG(s.ok(), "FaultInjectionEnv::Crash: " + s.ToString()); }

void WriteZeros(File& file, uint64_t lo, uint64_t hi) {
  while (lo < hi) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(hi - lo, kChunkBytes));
    CheckOk(file.Write(lo, std::span(kZeros.data(), n)));
    lo += n;
  }
}

// Undoes the part of `c` at bytes >= `from` and sets the size to `size`. The file must hold the
// state right after `c` (every later change already undone).
void Undo(File& file, const State::Change& c, uint64_t from, uint64_t size) {
  auto current = file.Size();
  CheckOk(current.status());
  if (*current != size) CheckOk(file.Truncate(size));
  const uint64_t a = std::max(from, c.lo);
  const uint64_t b = std::min(c.hi, c.size_before);
  // [a, min(b, size_after)) holds the change's bytes; zero it, since old zeros were not logged.
  // Beyond size_after the bytes are fresh zeros from re-growing the file.
  WriteZeros(file, a, std::min(b, c.size_after));
  for (const State::Piece& piece : c.old) {
    uint64_t lo = std::max(a, piece.offset);
    uint64_t hi = std::min(b, piece.offset + piece.bytes.size());
    if (lo >= hi) continue;
    CheckOk(file.Write(lo, std::span(piece.bytes.data() + (lo - piece.offset), hi - lo)));
  }
}

// Rolls a file back to its last Sync; with `rng`, keeps a random prefix of its unsynced changes.
void RollBack(State::FileState& fs, std::mt19937_64* rng) {
  const size_t n = fs.changes.size();
  size_t keep = rng != nullptr ? static_cast<size_t>((*rng)() % (n + 1)) : 0;
  for (size_t i = n; i > keep + 1; --i) {
    const State::Change& c = fs.changes[i - 1];
    Undo(*fs.base, c, c.lo, c.size_before);
  }
  if (keep < n) {
    const State::Change& c = fs.changes[keep];
    uint64_t len = c.hi - c.lo;
    if (rng != nullptr && c.is_write && len > 1 && (*rng)() % 2 == 0) {
      uint64_t survive = 1 + (*rng)() % (len - 1);  // a write cut in the middle
      Undo(*fs.base, c, c.lo + survive, std::max(c.size_before, c.lo + survive));
    } else {
      Undo(*fs.base, c, c.lo, c.size_before);
    }
  }
  fs.changes_retired += fs.changes.size();
  fs.changes.clear();
}

// Makes `path` a copy of `src` (a removed file coming back), leaving holes where it has zeros.
void Resurrect(Env* base, const State::FileState& src, const std::string& path) {
  if (base->FileExists(path)) CheckOk(base->RemoveFile(path));
  auto dst = base->OpenFile(path, OpenMode::kCreateNew);
  CheckOk(dst.status());
  auto size = src.base->Size();
  CheckOk(size.status());
  CheckOk((*dst)->Truncate(*size));
  std::vector<std::byte> buf(kChunkBytes);
  for (uint64_t pos = 0; pos < *size; pos += kChunkBytes) {
    size_t got = 0;
    CheckOk(src.base->Read(pos, kChunkBytes, buf.data(), &got));
    if (!IsZero(buf.data(), got)) CheckOk((*dst)->Write(pos, std::span(buf.data(), got)));
  }
}

class FaultFile final : public File {
 public:
  FaultFile(State* state, std::unique_ptr<File> base, std::shared_ptr<State::FileState> fs, std::string path)
      : state_(state), base_(std::move(base)), fs_(std::move(fs)), path_(std::move(path)) {
    ++state_->open_files;
  }
  ~FaultFile() override { --state_->open_files; }

  Status Write(uint64_t offset, std::span<const std::byte> data) override {
    std::lock_guard lock(state_->mu);
    CAIRN_RETURN_IF_ERROR(state_->MaybeFail(kOpWrite, "write", path_));
    if (fs_ != nullptr && !data.empty()) {
      State::Change c;
      CAIRN_ASSIGN_OR_RETURN(c.size_before, base_->Size());
      c.lo = offset;
      c.hi = offset + data.size();
      c.size_after = std::max(c.size_before, c.hi);
      c.is_write = true;
      CAIRN_RETURN_IF_ERROR(CaptureOld(*base_, c.lo, std::min(c.hi, c.size_before), &c.old));
      fs_->changes.push_back(std::move(c));
    }
    return base_->Write(offset, data);
  }

  Status Read(uint64_t offset, size_t n, std::byte* dst, size_t* read) const override {
    {
      std::lock_guard lock(state_->mu);
      Status s = state_->MaybeFail(kOpRead, "read", path_);
      if (!s.ok()) {
        *read = 0;
        return s;
      }
    }
    return base_->Read(offset, n, dst, read);
  }

  Status Sync() override {
    std::unique_lock lock(state_->mu);
    CAIRN_RETURN_IF_ERROR(state_->MaybeFail(kOpSync, "sync", path_));
    // A sync makes durable what was written before it started, not what is written while it
    // runs (with a sync delay, other threads write meanwhile).
    const uint64_t covers = fs_ != nullptr ? fs_->changes_retired + fs_->changes.size() : 0;
    const std::chrono::microseconds delay = state_->sync_delay;
    if (delay.count() > 0) {
      lock.unlock();
      std::this_thread::sleep_for(delay);
      lock.lock();
    }
    CAIRN_RETURN_IF_ERROR(base_->Sync());
    if (fs_ != nullptr && covers > fs_->changes_retired) {
      const uint64_t n = std::min<uint64_t>(covers - fs_->changes_retired, fs_->changes.size());
      fs_->changes.erase(fs_->changes.begin(), fs_->changes.begin() + static_cast<std::ptrdiff_t>(n));
      fs_->changes_retired += n;
    }
    return Status::Ok();
  }

  Status Allocate(uint64_t size) override {
    std::lock_guard lock(state_->mu);
    CAIRN_RETURN_IF_ERROR(state_->MaybeFail(kOpAllocate, "allocate", path_));
    CAIRN_ASSIGN_OR_RETURN(uint64_t before, base_->Size());
    Status s = base_->Allocate(size);
    if (fs_ != nullptr) {
      CAIRN_ASSIGN_OR_RETURN(uint64_t after, base_->Size());
      if (after != before) fs_->changes.push_back(State::Change{.size_before = before, .size_after = after});
    }
    return s;
  }

  Status Truncate(uint64_t size) override {
    std::lock_guard lock(state_->mu);
    CAIRN_RETURN_IF_ERROR(state_->MaybeFail(kOpAllocate, "truncate", path_));
    if (fs_ != nullptr) {
      State::Change c;
      CAIRN_ASSIGN_OR_RETURN(c.size_before, base_->Size());
      c.size_after = size;
      if (size < c.size_before) {
        c.lo = size;
        c.hi = c.size_before;
        CAIRN_RETURN_IF_ERROR(CaptureOld(*base_, c.lo, c.hi, &c.old));
      }
      if (c.size_after != c.size_before) fs_->changes.push_back(std::move(c));
    }
    return base_->Truncate(size);
  }

  Result<uint64_t> Size() const override { return base_->Size(); }
  Result<const std::byte*> Map(uint64_t length) override { return base_->Map(length); }

 private:
  State* const state_;
  const std::unique_ptr<File> base_;
  const std::shared_ptr<State::FileState> fs_;  // null when opened read-only
  const std::string path_;
};

}  // namespace

FaultInjectionEnv::FaultInjectionEnv(Env* base) : EnvWrapper(base), state_(std::make_unique<State>(base)) {}

FaultInjectionEnv::~FaultInjectionEnv() {
  CAIRN_CHECK_MSG(state_->open_files.load() == 0, "a File outlives its FaultInjectionEnv");
}

Result<std::unique_ptr<File>> FaultInjectionEnv::OpenFile(const std::string& path, OpenMode mode) {
  const std::string p = NormalizePath(path);
  std::lock_guard lock(state_->mu);
  CAIRN_RETURN_IF_ERROR(state_->MaybeFail(kOpOpen, "open", p));
  const bool existed = base()->FileExists(p);
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<File> file, base()->OpenFile(p, mode));
  std::shared_ptr<State::FileState> fs;
  if (mode != OpenMode::kRead) {
    if (!existed) {
      state_->by_path.erase(p);  // stale: the base lost the file behind our back
      state_->dir_ops.push_back(
          {.kind = State::DirOpKind::kCreate, .path = p, .unsynced_dirs = {ParentDir(p)}});
    }
    CAIRN_ASSIGN_OR_RETURN(fs, state_->StateFor(p, /*track=*/true));
  }
  return std::unique_ptr<File>(std::make_unique<FaultFile>(state_.get(), std::move(file), std::move(fs), p));
}

Status FaultInjectionEnv::SyncDir(const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard lock(state_->mu);
  CAIRN_RETURN_IF_ERROR(state_->MaybeFail(kOpSyncDir, "sync directory", p));
  CAIRN_RETURN_IF_ERROR(base()->SyncDir(p));
  for (State::DirOp& op : state_->dir_ops) op.unsynced_dirs.erase(p);
  std::erase_if(state_->dir_ops, [](const State::DirOp& op) { return op.unsynced_dirs.empty(); });
  return Status::Ok();
}

Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard lock(state_->mu);
  // Hold the file's data so that an undone removal can bring it back.
  auto fs = state_->StateFor(p, /*track=*/false);
  if (!fs.ok()) return base()->RemoveFile(p);
  CAIRN_RETURN_IF_ERROR(base()->RemoveFile(p));
  state_->by_path.erase(p);
  (*fs)->path.clear();
  state_->dir_ops.push_back(
      {.kind = State::DirOpKind::kRemove, .path = p, .file = *fs, .unsynced_dirs = {ParentDir(p)}});
  return Status::Ok();
}

Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  const std::string f = NormalizePath(from);
  const std::string t = NormalizePath(to);
  std::lock_guard lock(state_->mu);
  if (f == t) return base()->RenameFile(f, t);
  std::shared_ptr<State::FileState> replaced;
  if (base()->FileExists(t)) {
    auto r = state_->StateFor(t, /*track=*/false);
    if (r.ok()) replaced = *r;
  }
  CAIRN_RETURN_IF_ERROR(base()->RenameFile(f, t));
  if (replaced != nullptr) {
    state_->by_path.erase(t);
    replaced->path.clear();
  }
  auto it = state_->by_path.find(f);
  if (it != state_->by_path.end()) {
    std::shared_ptr<State::FileState> moved = std::move(it->second);
    state_->by_path.erase(it);
    moved->path = t;
    state_->by_path[t] = std::move(moved);
  }
  state_->dir_ops.push_back({.kind = State::DirOpKind::kRename,
                             .path = f,
                             .to = t,
                             .replaced = std::move(replaced),
                             .unsynced_dirs = {ParentDir(f), ParentDir(t)}});
  return Status::Ok();
}

void FaultInjectionEnv::Crash(CrashMode mode, uint64_t seed) {
  std::lock_guard lock(state_->mu);
  CAIRN_CHECK_MSG(state_->open_files.load() == 0, "destroy every File before FaultInjectionEnv::Crash");
  // Every file that may have unsynced bytes, in a fixed order so that a seed replays exactly.
  std::map<uint64_t, std::shared_ptr<State::FileState>> files;
  for (const auto& [path, fs] : state_->by_path) files[fs->id] = fs;
  for (const State::DirOp& op : state_->dir_ops) {
    if (op.file != nullptr) files[op.file->id] = op.file;
    if (op.replaced != nullptr) files[op.replaced->id] = op.replaced;
  }
  std::mt19937_64 rng(seed);
  for (auto& [id, fs] : files) RollBack(*fs, mode == CrashMode::kTear ? &rng : nullptr);

  Env* base = state_->base;
  for (auto op = state_->dir_ops.rbegin(); op != state_->dir_ops.rend(); ++op) {
    switch (op->kind) {
      case State::DirOpKind::kCreate:
        if (base->FileExists(op->path)) CheckOk(base->RemoveFile(op->path));
        break;
      case State::DirOpKind::kRemove:
        Resurrect(base, *op->file, op->path);
        break;
      case State::DirOpKind::kRename:
        CheckOk(base->RenameFile(op->to, op->path));
        if (op->replaced != nullptr) Resurrect(base, *op->replaced, op->to);
        break;
    }
  }
  // After the crash everything that is left is, by definition, durable.
  state_->dir_ops.clear();
  state_->by_path.clear();
}

void FaultInjectionEnv::FailAfter(uint32_t kinds, uint64_t n) {
  std::lock_guard lock(state_->mu);
  state_->fail_kinds = kinds;
  state_->fail_after = n;
  state_->fail_seen = 0;
}

void FaultInjectionEnv::SetSyncDelay(std::chrono::microseconds delay) {
  std::lock_guard lock(state_->mu);
  state_->sync_delay = delay;
}

void FaultInjectionEnv::ClearFaults() {
  std::lock_guard lock(state_->mu);
  state_->fail_kinds = 0;
}

uint64_t FaultInjectionEnv::OpCount(uint32_t kinds) const {
  std::lock_guard lock(state_->mu);
  uint64_t total = 0;
  for (int bit = 0; bit < 32; ++bit) {
    if ((kinds >> bit) & 1u) total += state_->counts[bit];
  }
  return total;
}

}  // namespace cairn::env

// Log: the segmented, append-only log files of one data directory (docs/format/log.md).
//
// Open() validates and recovers the log, calling back with every committed record in order so
// that the caller can rebuild its indexes. After that one writer thread appends (WriteAt, Sync,
// AddSegment, Publish) and any number of readers decode records below head() through the
// segments' read-only mappings, without locks except to look a segment up.
//
// Recovery rules (why: docs/format/log.md, "Recovery"):
// - Every segment but the last is sealed: the writer synced it before creating the next, so it
//   must end with a committed record followed by zeros. Anything else is corruption.
// - In the last segment the scan stops at the first record that is not whole and valid. If a
//   valid record follows within one group-commit write and everything between is zero, the
//   unsynced write was lost in part: the tail is cut. If non-zero garbage is followed by valid
//   records, that is corruption: Open fails naming the file and offset. Otherwise the tail is torn
//   and is cut back to the end of the last committed append.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "cairn/status.h"
#include "env/env.h"
#include "storage/record.h"

namespace cairn::storage {

// The most bytes one group commit writes to one segment before it syncs. Recovery looks this far
// past a damaged record for valid ones (see above).
inline constexpr uint64_t kMaxGroupWriteBytes = 32 << 20;
// The unit the preparer works in (File::PrepareAhead's alignment), and how far ahead of the tail
// a store that syncs keeps its log prepared (LogOpenOptions::prepare_ahead).
inline constexpr uint64_t kPreparePage = 4096;
inline constexpr uint64_t kLogPrepareAhead = 4 << 20;

struct Segment {
  uint64_t number = 0;
  std::string path;
  std::unique_ptr<env::File> file;
  const std::byte* base = nullptr;  // mapped [0, capacity)
  // Offset just past the last committed (published) record. Final once the segment is sealed.
  std::atomic<uint64_t> end{0};
};

struct LogOpenOptions {
  uint64_t capacity_for_new = 256 << 20;  // segment capacity when the log is created
  bool create = true;
  bool verify_only = false;  // check, never modify (cairn verify)
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Resuming from the on-disk index (storage/index_store.h): records before resume_position are
  // not scanned; segments before the one it ends in take their ends from segment_ends. When the
  // record ending at resume_position does not have the checksum resume_check_crc, the resume is
  // rejected: on_resume_rejected runs and the whole log is scanned.
  uint64_t resume_position = 0;  // 0: scan everything
  uint64_t resume_capacity = 0;  // the segment capacity the index was written with
  std::vector<uint64_t> segment_ends;
  uint32_t resume_check_crc = 0;
  std::function<void()> on_resume_rejected;
  // Called once, before any record is handed over, with the log's segment capacity.
  std::function<void(uint64_t capacity)> on_capacity;
  // Bytes of the active segment kept prepared ahead of the tail (File::PrepareAhead) by a thread
  // of the log's own, so that a group commit's sync persists data alone. 0: none (sync=none,
  // verify). The thread stops asking when the file cannot do it.
  uint64_t prepare_ahead = 0;
};

struct RecoveryReport {
  uint64_t truncated_bytes = 0;  // bytes of torn tail cut away
  uint64_t removed_segments = 0;
  uint64_t records = 0;
  bool resumed = false;  // an index checkpoint was used
  std::string note;  // human-readable, empty when the log was clean
};

class Log {
 public:
  using RecordFn = std::function<Status(const RecordView&)>;

  static Result<std::unique_ptr<Log>> Open(env::Env* env, const std::string& dir, const LogOpenOptions& options,
                                           const RecordFn& on_record, RecoveryReport* report);
  ~Log();

  uint64_t capacity() const { return capacity_; }
  // The position just past the last published record: readers stay below it.
  uint64_t head() const { return head_.load(std::memory_order_acquire); }

  // Reader side. Returns nullptr when no such segment exists.
  const Segment* SegmentAt(uint64_t number) const;
  uint64_t SegmentCount() const;
  std::string SegmentPath(uint64_t number) const;

  // Decodes the record at `position` (below head()). Corruption names the file and offset.
  // `cache` (may be null) remembers the last segment looked up, to skip the lock next time.
  Status ReadAt(uint64_t position, RecordView* out, const Segment** cache = nullptr) const;

  // The checksum field of the record that ends at `position` (0 when none does), and the end
  // offsets of the segments before the one `position` ends in: what an index checkpoint records.
  uint32_t CrcOfRecordEndingAt(uint64_t position) const;
  std::vector<uint64_t> SegmentEndsBefore(uint64_t position) const;

  // Writer side (one thread).
  // The position where the next record goes.
  uint64_t tail() const { return tail_; }
  Segment* active() { return active_; }
  // Writes bytes at the tail of the active segment and advances the tail.
  Status Append(std::string_view bytes);
  // Syncs the active segment (fdatasync).
  Status SyncActive();
  // Seals the active segment (the caller synced it) and creates, syncs and maps the next one.
  Status Roll();
  // Makes everything up to tail() visible to readers.
  void Publish();

  // Bytes PrepareAhead has prepared so far (tests, stats).
  uint64_t prepared_bytes() const { return prepared_bytes_.load(std::memory_order_relaxed); }

 private:
  Log(env::Env* env, std::string dir, uint64_t capacity) : env_(env), dir_(std::move(dir)), capacity_(capacity) {}
  Result<std::unique_ptr<Segment>> CreateSegment(uint64_t number);
  Status Recover(const LogOpenOptions& options, const RecordFn& on_record, RecoveryReport* report);
  Status RecoverFrom(const LogOpenOptions& options, bool resume, const RecordFn& on_record, RecoveryReport* report);
  // The preparer (LogOpenOptions::prepare_ahead): its thread, and the writer's side of it.
  void StartPreparer(uint64_t ahead);
  void PreparerLoop();
  void StopPreparer();
  // Before the writer writes [.., end) of the active segment: waits while the preparer works
  // on bytes below `end`, then keeps it off them.
  void ReserveForWrite(uint64_t end);

  env::Env* env_;
  std::string dir_;  // DIR/log
  uint64_t capacity_;
  mutable std::shared_mutex segments_mu_;
  std::vector<std::unique_ptr<Segment>> segments_;
  Segment* active_ = nullptr;
  uint64_t segments_at_open_ = 0;  // segment files found by Open, numbered 0..n-1
  uint64_t tail_ = 0;
  std::atomic<uint64_t> head_{0};

  // The preparer's state, under prep_mu_ (offsets within prep_seg_, the active segment). The
  // writer writes only below reserved_; the preparer claims a chunk only at or above it, and the
  // writer waits rather than write past claim_lo_ while claiming_; so the two never write the
  // same byte.
  std::thread preparer_;
  uint64_t prepare_ahead_ = 0;
  std::mutex prep_mu_;
  std::condition_variable prep_cv_;  // both ways: work for the preparer, a claim's end
  Segment* prep_seg_ = nullptr;
  uint64_t reserved_ = 0;     // the writer may write below this offset
  uint64_t prepared_to_ = 0;  // [.., prepared_to_) needs no preparing (prepared, or the writer's)
  bool wrote_ = false;        // the writer has written since the log was opened
  bool claiming_ = false;
  uint64_t claim_lo_ = 0;
  bool prep_stop_ = false;
  bool prep_off_ = false;     // the file cannot, or a prepare failed: the preparer has ended
  std::atomic<bool> prep_ended_{false};  // prep_off_, read by the writer without the lock
  std::atomic<uint64_t> prepared_bytes_{0};
};

std::string SegmentFileName(uint64_t number);

}  // namespace cairn::storage

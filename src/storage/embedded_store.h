// EmbeddedStore: the Store implementation on the segmented log (see cairn/store.h for the
// contract, docs/architecture.md for the design). One writer thread does group commit; readers
// use the indexes under a shared lock and decode records from the mapped segments.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "cairn/store.h"
#include "env/env.h"
#include "storage/append_queue.h"
#include "storage/index.h"
#include "storage/index_store.h"
#include "storage/log.h"

namespace cairn::storage {

// The memtable's streams by name. An open-addressing table (abseil's): a lookup costs one or two
// cache misses where std::unordered_map's chained nodes cost three, and a group's lookups can be
// prefetched together (ProcessGroup); with 100,000 streams the lookups were 15% of the writer.
// Values are pointers, so entries stay put when the table grows.
// Looked up by std::string_view (Debian's abseil has its own string_view, hence our functors).
struct StreamNameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct StreamNameEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
using StreamTable = absl::flat_hash_map<std::string, std::unique_ptr<StreamEntry>, StreamNameHash, StreamNameEq>;

class EmbeddedStore final : public Store {
 public:
  // Opens the store; `owned_env` (may be null) is kept alive as long as the store.
  static Result<std::unique_ptr<Store>> Open(env::Env* env, std::unique_ptr<env::Env> owned_env,
                                             const std::string& dir, const Options& options);
  ~EmbeddedStore() override;

  Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                              const AppendOptions& options) override;
  void AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                   AppendCallback done, const AppendOptions& options) override;
  void AppendAsync(std::string_view stream, ExpectedVersion expected, std::vector<EventData>&& events,
                   AppendCallback done, const AppendOptions& options) override;
  Result<EventCursor> ReadStream(std::string_view stream, const ReadStreamOptions& options) override;
  Result<EventCursor> ReadAll(const ReadAllOptions& options) override;
  Result<Position> PositionAtTime(Timestamp time) override;
  Result<StreamInfo> GetStreamInfo(std::string_view stream) override;
  Result<AppendResult> SetStreamMetadata(std::string_view stream, ExpectedVersion expected,
                                         const StreamMetadata& metadata) override;
  Result<AppendResult> DeleteStream(std::string_view stream, ExpectedVersion expected) override;
  Result<AppendResult> TombstoneStream(std::string_view stream, ExpectedVersion expected) override;
  Result<std::vector<StreamSummary>> ListStreams(const ListStreamsOptions& options) override;
  StoreStats Stats() const override;
  Position HeadPosition() const override { return Position(log_->head()); }
  Position WaitForAppend(Position after, std::chrono::milliseconds timeout) override;
  Status Close() override;

  // For cursors.
  const Log& log() const { return *log_; }
  std::shared_mutex& index_mu() const { return index_mu_; }
  env::Env* env() const { return env_; }

  // What a reader knows of a stream, from the memtable or else the IndexStore. Copied under the
  // index lock; `mem` is valid only while the lock is held.
  struct StreamRef {
    bool found = false;
    uint64_t id = 0;
    uint64_t base = 0;   // versions below it are in the IndexStore, the others in mem->positions
    uint64_t count = 0;  // published versions
    uint64_t last_position = 0;
    std::optional<uint64_t> tombstone_position;
    StreamMetadata metadata;
    bool has_meta = false;
    // Its versions: [0, lowest tier's base) in the IndexStore, then those of `imm` (the memtable
    // being written out), then those of `mem` (the memtable).
    const StreamEntry* imm = nullptr;
    const StreamEntry* mem = nullptr;
    bool SoftDeleted() const { return metadata.truncate_before == kSoftDeletedTruncateBefore; }
  };
  // Both: the caller holds index_mu() shared (or is the writer).
  Status FindStream(std::string_view name, StreamRef* out) const;
  // Appends the positions of versions [from, from+n) (all below s.count), ascending.
  Status PositionsOf(const StreamRef& s, uint64_t from, uint64_t n, std::vector<uint64_t>* out) const;

  using Request = AppendRequest;

 private:
  EmbeddedStore(env::Env* env, std::unique_ptr<env::Env> owned_env, const Options& options);

  // Index (readers and writer).
  StreamEntry* FindEntry(std::string_view name) const;  // memtable only; caller holds index_mu_
  Result<StreamEntry*> GetOrCreateEntry(std::string_view name);  // writer / recovery
  Status ApplyRecovered(const RecordView& r);
  void ResetIndexes();
  // Writes the memtable to the IndexStore as covering the log up to head.position, then drops
  // it, in the calling thread (recovery, open, close). FlushIndexAtHead: up to the published head.
  Status FlushIndex(IndexHead head);
  Status FlushIndexAtHead();
  IndexHead HeadAtPublished() const;
  // The writer, between groups: hands the memtable to the flusher thread as the immutable
  // memtable (after waiting for the previous one to be written) and starts a new one.
  Status StartBackgroundFlush();
  // Waits until no immutable memtable waits to be written; its failure if it failed.
  Status WaitForFlush();
  void FlusherLoop();
  const StreamEntry* FindImmEntry(std::string_view name) const;  // caller holds index_mu_
  void AddMemtableBytes(uint64_t n) { memtable_bytes_ += n; }
  // The idempotency window from the log's last W records (after the log is open).
  Status RebuildIdWindow();

  // Queue and writer.
  void WriterLoop();
  void ProcessGroup(std::vector<std::unique_ptr<Request>>& group);
  Result<AppendResult> Process(Request& req);
  Result<AppendResult> ProcessAppend(Request& req, StreamEntry* entry);
  Status EnsureRoom(size_t bytes);
  const std::byte* WriterBytesAt(uint64_t position, size_t* avail) const;
  bool WriterRecordAt(uint64_t position, RecordView* out) const;
  bool StartsAnAppend(const RecordView& r) const;
  uint64_t Encode(StreamEntry* entry, uint64_t version, const Uuid& id, uint8_t flags, ContentType ct,
                  std::string_view type, std::string_view data, std::string_view metadata);
  Result<uint64_t> EncodeMetadata(StreamEntry* target, const StreamMetadata& md, uint8_t flags);
  Status FailStop(const Status& cause);
  // SyncActive, timed into the stats.
  Status SyncLog();
  Result<uint64_t> PositionAfter(int64_t time_nanos) const;

  env::Env* env_;
  std::unique_ptr<env::Env> owned_env_;
  Options options_;
  std::string dir_;
  std::unique_ptr<env::FileLock> lock_;
  std::unique_ptr<Log> log_;

  // Index: the memtable, then the IndexStore.
  mutable std::shared_mutex index_mu_;
  StreamTable streams_;
  TimeIndex time_index_;
  std::unique_ptr<IndexStore> index_;
  uint64_t memtable_bytes_ = 0;  // about: entries, their positions, marks
  // The immutable memtable: what the flusher thread is writing to the IndexStore (empty when
  // nothing is). Readers look in the memtable, then here, then in the IndexStore. Changed only
  // under index_mu_ (exclusive); its entries never change while it is here.
  StreamTable imm_streams_;
  std::vector<TimeMark> imm_marks_;
  IndexHead imm_head_;
  std::thread flusher_;
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  bool flush_pending_ = false;  // under flush_mu_: the immutable memtable waits to be written
  bool flusher_stop_ = false;   // under flush_mu_
  Status flush_status_;         // under flush_mu_: the failure of a background write
  uint64_t next_stream_id_ = 1;
  // Recovery: where the last record handed over ends, its checksum, and the ends of the segments
  // before it, so that a long scan can write the memtable out as it goes.
  uint64_t rec_capacity_ = 0;
  uint64_t rec_end_ = 0;
  uint32_t rec_crc_ = 0;
  std::vector<uint64_t> rec_segment_ends_;

  AppendQueue queue_;

  // Writer thread state.
  std::thread writer_;
  IdWindow ids_;
  std::string buf_;  // encoded records not yet written, starting at log_->tail()
  struct PendingOp {
    StreamEntry* entry;
    uint64_t position;
    enum class Kind : uint8_t { kEvent, kTombstone, kMetadata } kind;
    StreamEntry* target;  // kMetadata: the stream whose metadata changes
    StreamMetadata metadata;
  };
  std::vector<PendingOp> pending_;
  int64_t group_time_ = 0;
  int64_t last_time_ = 0;
  uint64_t group_first_position_ = 0;
  uint64_t group_records_ = 0;
  bool unsynced_ = false;
  int64_t last_sync_mono_ = 0;
  std::atomic<bool> stopped_{false};
  bool recovering_ = false;  // during Open: entries are created without locks
  Status stopped_status_;

  // Callers of the blocking calls wait here for their slot to be filled.

  // Counters for Stats(): the writer updates them once per group and per fsync.
  mutable std::mutex stats_mu_;
  StoreStats stats_;
  std::atomic<uint64_t> reads_{0};

  // Head waiters.
  std::mutex head_mu_;
  std::condition_variable head_cv_;
};

}  // namespace cairn::storage

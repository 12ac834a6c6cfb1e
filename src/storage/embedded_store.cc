#include "storage/embedded_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "storage/cursors.h"
#include "storage/engine.h"
#include "storage/validate.h"
#include "util/check.h"
#include "util/coding.h"
#include "util/thread_name.h"

namespace cairn::storage {

namespace {

// Appends waiting for the writer, in encoded bytes. Past it, callers block (back-pressure).
constexpr uint64_t kMaxQueuedBytes = 64 << 20;

}  // namespace

EmbeddedStore::EmbeddedStore(env::Env* env, std::unique_ptr<env::Env> owned_env, const Options& options)
    : env_(env),
      owned_env_(std::move(owned_env)),
      options_(options),
      queue_(kMaxQueuedBytes),
      ids_(options.idempotency_window_events) {}

Result<std::unique_ptr<Store>> EmbeddedStore::Open(env::Env* env, std::unique_ptr<env::Env> owned_env,
                                                   const std::string& dir, const Options& options) {
  if (options.segment_size_bytes < (64 << 10) || options.segment_size_bytes > (uint64_t{1} << 40) ||
      options.segment_size_bytes % kRecordAlignment != 0) {
    return Status::InvalidArgument(fmt::format(
        "segment_size_bytes is {}: it must be a multiple of 8 between 65536 and 1099511627776",
        options.segment_size_bytes));
  }
  if (options.sync == SyncMode::kInterval && options.sync_interval_ms == 0) {
    return Status::InvalidArgument("sync_interval_ms must be at least 1 with sync=interval");
  }
  if (!env->FileExists(dir)) {
    if (!options.create_if_missing) return Status::NotFound(fmt::format("data directory {} does not exist", dir));
  }
  CAIRN_RETURN_IF_ERROR(env->CreateDir(dir));
  std::unique_ptr<EmbeddedStore> store(new EmbeddedStore(env, std::move(owned_env), options));
  store->dir_ = dir;
  CAIRN_ASSIGN_OR_RETURN(store->lock_, env->LockFile(dir + "/LOCK"));

  // The persistent index tier: LMDB next to the log, or maps when the files are in memory.
  if (env->IsNativeFileSystem()) {
    CAIRN_RETURN_IF_ERROR(env->CreateDir(dir + "/index"));
    CAIRN_ASSIGN_OR_RETURN(store->index_, OpenLmdbIndex(dir + "/index"));
  } else {
    store->index_ = NewMemIndex();
  }
  // Index checkpoint files of earlier versions are superseded by the IndexStore.
  if (env->FileExists(dir + "/index.ckpt")) (void)env->RemoveFile(dir + "/index.ckpt");

  LogOpenOptions lo;
  lo.capacity_for_new = options.segment_size_bytes;
  lo.create = true;
  // Group commits that sync: keep the log's next bytes prepared, so each sync persists data alone.
  if (options.sync != SyncMode::kNone) lo.prepare_ahead = kLogPrepareAhead;
  RecoveryReport report;
  // Resume after what the IndexStore covers; Log::Open checks that the log still has it.
  CAIRN_ASSIGN_OR_RETURN(IndexHead head, store->index_->Head());
  if (head.position != 0) {
    lo.resume_position = head.position;
    lo.resume_capacity = head.capacity;
    lo.resume_check_crc = head.crc;
    lo.segment_ends = head.segment_ends;
    store->time_index_.Reset(head.records);
    store->last_time_ = head.last_time;
    store->next_stream_id_ = head.next_stream_id;
    store->rec_end_ = head.position;
    store->rec_crc_ = head.crc;
    store->rec_segment_ends_ = head.segment_ends;
  }
  Status cleared;
  lo.on_resume_rejected = [s = store.get(), &cleared] {
    s->ResetIndexes();
    cleared = s->index_->Clear();
  };
  lo.on_capacity = [s = store.get()](uint64_t capacity) { s->rec_capacity_ = capacity; };
  store->recovering_ = true;
  auto log = Log::Open(env, dir, lo, [&](const RecordView& r) { return store->ApplyRecovered(r); }, &report);
  store->recovering_ = false;
  if (!log.ok()) return log.status();
  CAIRN_RETURN_IF_ERROR(cleared);
  store->log_ = std::move(log).value();
  // What the scan added goes to the IndexStore now, so that the next open need not scan it again.
  if (!store->streams_.empty() || !store->time_index_.marks().empty()) CAIRN_RETURN_IF_ERROR(store->FlushIndexAtHead());
  CAIRN_RETURN_IF_ERROR(store->RebuildIdWindow());
  store->last_sync_mono_ = env->MonotonicNanos();
  store->stats_.total_events = store->time_index_.total();
  store->stats_.streams = store->next_stream_id_ - 1;
  store->flusher_ = std::thread([s = store.get()] {
    util::NameThisThread("cairn-flusher");
    s->FlusherLoop();
  });
  store->writer_ = std::thread([s = store.get()] {
    util::NameThisThread("cairn-writer");
    s->WriterLoop();
  });
  return std::unique_ptr<Store>(std::move(store));
}

EmbeddedStore::~EmbeddedStore() { (void)Close(); }

// ---------------------------------------------------------------------------------------------
// Index

StreamEntry* EmbeddedStore::FindEntry(std::string_view name) const {
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second.get();
}

const StreamEntry* EmbeddedStore::FindImmEntry(std::string_view name) const {
  if (imm_streams_.empty()) return nullptr;
  auto it = imm_streams_.find(name);
  return it == imm_streams_.end() ? nullptr : it->second.get();
}

Status EmbeddedStore::FindStream(std::string_view name, StreamRef* out) const {
  *out = StreamRef();
  const StreamEntry* imm = FindImmEntry(name);
  const StreamEntry* e = FindEntry(name);
  if (e == nullptr) e = imm;  // the newest tier that knows the stream says what it is
  else out->imm = imm;
  if (e != nullptr) {
    out->found = true;
    out->id = e->id;
    out->base = e->base;
    out->count = e->count();
    out->last_position = e->last_position;
    out->tombstone_position = e->tombstone_position;
    out->metadata = e->metadata;
    out->has_meta = e->has_meta;
    if (e == imm) {
      out->imm = imm;
    } else {
      out->mem = e;
    }
    return Status::Ok();
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRow> row, index_->GetStream(name));
  if (!row) return Status::Ok();
  out->found = true;
  out->id = row->id;
  out->base = out->count = row->count;
  out->last_position = row->last_position;
  if (row->tombstone != 0) out->tombstone_position = row->tombstone;
  out->has_meta = row->has_meta;
  if (row->has_meta) {
    auto md = StreamMetadata::Parse(row->metadata_json);
    if (!md.ok()) return Status::Corruption(fmt::format("index: the metadata of stream {} does not parse", name));
    out->metadata = *md;
  }
  return Status::Ok();
}

Status EmbeddedStore::PositionsOf(const StreamRef& s, uint64_t from, uint64_t n, std::vector<uint64_t>* out) const {
  const uint64_t end = from + n;
  const uint64_t lowest = s.imm != nullptr ? s.imm->base : s.mem != nullptr ? s.mem->base : s.count;
  if (from < lowest) CAIRN_RETURN_IF_ERROR(index_->GetPositions(s.id, from, std::min(end, lowest) - from, out));
  for (const StreamEntry* tier : {s.imm, s.mem}) {
    if (tier == nullptr) continue;
    const uint64_t hi = std::min(end, tier->count());
    for (uint64_t v = std::max(from, tier->base); v < hi; ++v) out->push_back(tier->positions[v - tier->base]);
  }
  return Status::Ok();
}

Result<StreamEntry*> EmbeddedStore::GetOrCreateEntry(std::string_view name) {
  std::unique_ptr<StreamEntry> e;
  {
    std::shared_lock lock(index_mu_, std::defer_lock);
    if (!recovering_) lock.lock();  // at open no other thread exists yet
    if (StreamEntry* found = FindEntry(name)) return found;
    // A stream of the immutable memtable continues from it (its entries no longer change).
    if (const StreamEntry* imm = FindImmEntry(name)) e = StreamEntry::ContinuedFrom(*imm);
  }
  // Only the writer (or recovery, before the writer starts) creates entries, so no one else can
  // insert the same name between the two locks. A stream the IndexStore knows starts from what
  // it knows (all published: entries are dropped only between groups).
  if (!e) {
    CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRow> row, index_->GetStream(name));
    if (row) {
      StreamMetadata md;
      if (row->has_meta) {
        auto parsed = StreamMetadata::Parse(row->metadata_json);
        if (!parsed.ok()) return Status::Corruption(fmt::format("index: the metadata of stream {} does not parse", name));
        md = *parsed;
      }
      e = std::make_unique<StreamEntry>(std::string(name), *row, std::move(md));
    } else {
      e = std::make_unique<StreamEntry>(std::string(name));
      e->id = next_stream_id_++;  // here, not at the write-out: readers may look at the entry
    }
  }
  memtable_bytes_ += sizeof(StreamEntry) + 2 * name.size() + 64;
  std::unique_lock lock(index_mu_, std::defer_lock);
  if (!recovering_) lock.lock();
  auto [it, inserted] = streams_.emplace(std::string(name), std::move(e));
  return it->second.get();
}

Status EmbeddedStore::ApplyRecovered(const RecordView& r) {
  // Segment ends, for the IndexStore's head: every segment holds at least one record.
  const uint64_t segment = r.position / rec_capacity_;
  while (rec_segment_ends_.size() < segment) {
    const uint64_t s = rec_segment_ends_.size();
    if (rec_end_ <= s * rec_capacity_ || rec_end_ > (s + 1) * rec_capacity_) {
      return Status::Corruption(fmt::format("segment {} holds no record before position {}", s, r.position));
    }
    rec_segment_ends_.push_back(rec_end_ - s * rec_capacity_);
  }
  CAIRN_ASSIGN_OR_RETURN(StreamEntry* e, GetOrCreateEntry(r.stream));
  if (r.tombstone()) {
    e->tombstone_position = r.position;
    e->w_tombstoned = true;
  } else {
    if (r.version != e->count()) {
      return Status::Corruption(fmt::format("stream {}: version {} follows version {}", r.stream, r.version,
                                            e->count() == 0 ? std::string("none") : std::to_string(e->count() - 1)));
    }
    e->positions.push_back(r.position);
    e->last_position = r.position;
    memtable_bytes_ += sizeof(uint64_t);
    e->w_next = r.version + 1;
    if (r.stream.starts_with("$$") && r.type == kMetadataType) {
      // Metadata that does not parse (written through a system append) is ignored, as in
      // EventStoreDB: the stream keeps its previous metadata.
      auto md = StreamMetadata::Parse(r.data);
      if (md.ok()) {
        CAIRN_ASSIGN_OR_RETURN(StreamEntry* target, GetOrCreateEntry(r.stream.substr(2)));
        target->metadata = *md;
        target->w_metadata = *md;
        target->has_meta = true;
        target->dirty = true;
      }
    }
  }
  e->dirty = true;
  time_index_.Add(r.recorded_at, r.position, 1);
  last_time_ = std::max(last_time_, r.recorded_at);
  rec_end_ = r.position + r.length;
  rec_crc_ = r.crc;
  // A long scan (a rebuild) writes the memtable out as it goes, at the end of an append.
  if (r.commit() && memtable_bytes_ > options_.index_memory_bytes) {
    IndexHead head;
    head.position = rec_end_;
    head.capacity = rec_capacity_;
    head.crc = rec_crc_;
    head.segment_ends = rec_segment_ends_;
    CAIRN_RETURN_IF_ERROR(FlushIndex(std::move(head)));
  }
  return Status::Ok();
}

void EmbeddedStore::ResetIndexes() {
  streams_.clear();
  memtable_bytes_ = 0;
  next_stream_id_ = 1;
  ids_ = IdWindow(options_.idempotency_window_events);
  time_index_ = TimeIndex();
  last_time_ = 0;
  rec_end_ = 0;
  rec_crc_ = 0;
  rec_segment_ends_.clear();
}

Status EmbeddedStore::FlushIndex(IndexHead head) {
  CAIRN_RETURN_IF_ERROR(WaitForFlush());
  IndexBatch batch;
  for (auto& [name, e] : streams_) {
    if (!e->dirty) continue;
    batch.streams.push_back({name, e->Row(), e->base, e->positions});
  }
  batch.marks = time_index_.marks();
  head.records = time_index_.total();
  head.last_time = last_time_;
  head.next_stream_id = next_stream_id_;
  batch.head = std::move(head);
  CAIRN_RETURN_IF_ERROR(index_->Write(batch));
  // Readers that looked at the memtable saw the same versions; from now on they find them in
  // the IndexStore.
  std::unique_lock lock(index_mu_, std::defer_lock);
  if (!recovering_) lock.lock();
  streams_.clear();
  time_index_.ClearMarks();
  memtable_bytes_ = 0;
  return Status::Ok();
}

IndexHead EmbeddedStore::HeadAtPublished() const {
  IndexHead head;
  head.position = log_->head();
  head.capacity = log_->capacity();
  head.crc = log_->CrcOfRecordEndingAt(head.position);
  head.segment_ends = log_->SegmentEndsBefore(head.position);
  return head;
}

Status EmbeddedStore::FlushIndexAtHead() { return FlushIndex(HeadAtPublished()); }

Status EmbeddedStore::WaitForFlush() {
  std::unique_lock lock(flush_mu_);
  flush_cv_.wait(lock, [&] { return !flush_pending_; });
  return flush_status_;
}

Status EmbeddedStore::StartBackgroundFlush() {
  // Back-pressure: one memtable is written at a time, so the writer waits when the flusher is
  // behind (the IndexStore's chunks of a stream must be written in order).
  CAIRN_RETURN_IF_ERROR(WaitForFlush());
  IndexHead head = HeadAtPublished();
  head.records = time_index_.total();
  head.last_time = last_time_;
  head.next_stream_id = next_stream_id_;
  {
    std::unique_lock lock(index_mu_);
    imm_streams_ = std::move(streams_);
    streams_.clear();
    imm_marks_ = time_index_.marks();
    time_index_.ClearMarks();
  }
  memtable_bytes_ = 0;
  {
    std::lock_guard lock(flush_mu_);
    imm_head_ = std::move(head);
    flush_pending_ = true;
  }
  flush_cv_.notify_all();
  return Status::Ok();
}

void EmbeddedStore::FlusherLoop() {
  for (;;) {
    {
      std::unique_lock lock(flush_mu_);
      flush_cv_.wait(lock, [&] { return flush_pending_ || flusher_stop_; });
      if (!flush_pending_) return;
    }
    // Only this thread changes the immutable memtable while a flush is pending.
    IndexBatch batch;
    for (const auto& [name, e] : imm_streams_) {
      if (e->dirty) batch.streams.push_back({name, e->Row(), e->base, e->positions});
    }
    batch.marks = imm_marks_;
    batch.head = imm_head_;
    Status s = index_->Write(batch);
    if (s.ok()) {
      // Readers looking here find the same versions in the IndexStore from now on.
      std::unique_lock lock(index_mu_);
      imm_streams_.clear();
      imm_marks_.clear();
    }
    {
      std::lock_guard lock(flush_mu_);
      if (!s.ok()) flush_status_ = s;  // kept: readers still find everything; the writer stops
      flush_pending_ = false;
    }
    flush_cv_.notify_all();
  }
}

Status EmbeddedStore::RebuildIdWindow() {
  const uint64_t window = ids_.capacity();
  if (window == 0) return Status::Ok();
  // Scan from a mark at or before the first of the last `window` records; the window's ring
  // forgets the few extra older ones as the later ones come in.
  const uint64_t total = time_index_.total();
  const uint64_t target = total > window ? total - window : 0;
  uint64_t position = 0;
  if (auto m = time_index_.LastWithRecordsAtMost(target)) {
    position = m->position;
  } else {
    CAIRN_ASSIGN_OR_RETURN(std::optional<TimeMark> stored, index_->LastMarkWithRecordsAtMost(target));
    if (stored) position = stored->position;
  }
  const uint64_t cap = log_->capacity();
  const uint64_t head = log_->head();
  // A damaged record among them fails the open (naming it), as a full scan would.
  uint64_t dropped = 0;  // offset in the current segment up to which pages were dropped
  while (true) {
    if (position % cap < kSegmentHeaderSize) position += kSegmentHeaderSize - position % cap;
    if (position >= head) break;
    const Segment* seg = log_->SegmentAt(position / cap);
    if (seg == nullptr) return Status::Corruption(fmt::format("no segment holds position {}", position));
    if (position % cap >= seg->end.load(std::memory_order_acquire)) {
      position = (position / cap + 1) * cap;  // on to the next segment
      dropped = 0;
      continue;
    }
    RecordView r;
    CAIRN_RETURN_IF_ERROR(log_->ReadAt(position, &r, nullptr));
    if (r.generated_id()) {
      ids_.Skip();
    } else {
      ids_.Insert(r.id, r.position);
    }
    position += r.length;
    // The pages read leave the resident set every 16 MiB, as after recovery's scan (readers
    // fault in what they need), so that the scan does not raise the process's peak memory.
    const uint64_t off = position % cap == 0 ? cap : position % cap;
    if (off - dropped >= (16 << 20) || off >= seg->end.load(std::memory_order_acquire) || position >= head) {
      env::DropMappedPages(seg->base + dropped, off - dropped);
      dropped = off == cap ? 0 : off & ~uint64_t{4095};
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Appends: validation and queueing (caller threads)

Result<AppendResult> EmbeddedStore::Append(std::string_view stream, ExpectedVersion expected,
                                           std::span<const EventData> events, const AppendOptions& options) {
  auto req = std::make_unique<Request>();
  req->stream = std::string(stream);
  req->expected = expected;
  req->events = events;  // the caller blocks until done: no copy needed
  auto size = ValidateAppend(stream, expected, events, options, log_->capacity());
  if (!size.ok()) return size.status();
  req->bytes = *size;
  return queue_.Submit(std::move(req));
}

void EmbeddedStore::AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                                AppendCallback done, const AppendOptions& options) {
  AppendAsync(stream, expected, std::vector<EventData>(events.begin(), events.end()), std::move(done), options);
}

void EmbeddedStore::AppendAsync(std::string_view stream, ExpectedVersion expected, std::vector<EventData>&& events,
                                AppendCallback done, const AppendOptions& options) {
  auto req = std::make_unique<Request>();
  req->stream = std::string(stream);
  req->expected = expected;
  req->done = std::move(done);
  auto size = ValidateAppend(stream, expected, events, options, log_->capacity());
  if (!size.ok()) {
    req->error = size.status();
  } else {
    req->owned = std::move(events);  // taken, not copied
    req->events = req->owned;
    req->bytes = *size;
  }
  queue_.Enqueue(std::move(req));
}

Result<AppendResult> EmbeddedStore::SetStreamMetadata(std::string_view stream, ExpectedVersion expected,
                                                      const StreamMetadata& metadata) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, /*allow_system=*/true));
  CAIRN_RETURN_IF_ERROR(ValidateExpected(expected));
  if (stream.starts_with("$$")) return Status::InvalidArgument("stream name: a metastream has no metadata of its own");
  auto req = std::make_unique<Request>();
  req->kind = Request::Kind::kMetadata;
  req->stream = std::string(stream);
  req->expected = expected;
  req->metadata = metadata;
  std::string json = metadata.ToJson();
  if (json.size() > kMaxEventBytes) {
    return Status::InvalidArgument(fmt::format("stream metadata is {} bytes, the limit is {}", json.size(), kMaxEventBytes));
  }
  req->bytes = RecordSize(stream.size() + 2, kMetadataType.size(), json.size(), 0);
  return queue_.Submit(std::move(req));
}

Result<AppendResult> EmbeddedStore::DeleteStream(std::string_view stream, ExpectedVersion expected) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, /*allow_system=*/false));
  CAIRN_RETURN_IF_ERROR(ValidateExpected(expected));
  auto req = std::make_unique<Request>();
  req->kind = Request::Kind::kDelete;
  req->stream = std::string(stream);
  req->expected = expected;
  req->bytes = 4096;
  return queue_.Submit(std::move(req));
}

Result<AppendResult> EmbeddedStore::TombstoneStream(std::string_view stream, ExpectedVersion expected) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, /*allow_system=*/false));
  CAIRN_RETURN_IF_ERROR(ValidateExpected(expected));
  auto req = std::make_unique<Request>();
  req->kind = Request::Kind::kTombstone;
  req->stream = std::string(stream);
  req->expected = expected;
  req->bytes = RecordSize(stream.size(), kTombstoneType.size(), 0, 0);
  return queue_.Submit(std::move(req));
}

// ---------------------------------------------------------------------------------------------
// The writer thread

void EmbeddedStore::WriterLoop() {
  std::vector<std::unique_ptr<Request>> group;
  const auto interval = std::chrono::milliseconds(options_.sync_interval_ms);
  for (;;) {
    AppendQueue::TakeLimits limits;
    limits.max_bytes = kMaxGroupWriteBytes;  // up to one group-commit write
    if (options_.sync == SyncMode::kInterval && unsynced_) limits.wait = interval;
    if (!queue_.Take(&group, limits)) break;
    if (!group.empty()) ProcessGroup(group);
    group.clear();
    if (options_.sync == SyncMode::kInterval && unsynced_ && !stopped_ &&
        env_->MonotonicNanos() - last_sync_mono_ >= int64_t{options_.sync_interval_ms} * 1'000'000) {
      Status s = SyncLog();
      if (!s.ok()) (void)FailStop(s);
      unsynced_ = false;
      last_sync_mono_ = env_->MonotonicNanos();
    }
  }
  if (unsynced_ && !stopped_) {
    Status s = SyncLog();
    if (!s.ok()) (void)FailStop(s);
    unsynced_ = false;
  }
}

Status EmbeddedStore::SyncLog() {
  const int64_t start = env_->MonotonicNanos();
  Status s = log_->SyncActive();
  const double seconds = static_cast<double>(env_->MonotonicNanos() - start) / 1e9;
  std::lock_guard lock(stats_mu_);
  stats_.fsyncs++;
  stats_.fsync_seconds.Observe(seconds);
  return s;
}

Status EmbeddedStore::FailStop(const Status& cause) {
  // fsyncgate: after a failed write or sync the file's state is unknown, so the writer never
  // tries again; every later append fails and says why.
  if (!stopped_) {
    stopped_status_ = Status::IOError("the writer stopped after a failed write or sync: " + cause.ToString(),
                                      ErrorDetail::kWriterStopped);
    stopped_ = true;
  }
  return stopped_status_;
}

void EmbeddedStore::ProcessGroup(std::vector<std::unique_ptr<Request>>& group) {
  buf_.clear();
  pending_.clear();
  std::vector<Result<AppendResult>> results;
  results.reserve(group.size());
  // One recorded time per group: never earlier than the previous group's.
  group_time_ = std::max(env_->NowNanos(), last_time_);
  last_time_ = group_time_;
  group_first_position_ = log_->tail();
  group_records_ = 0;

  // Start fetching every stream of the group from memory at once, rather than one cache miss
  // after another as each request is processed (only this thread changes the table).
  for (const auto& req : group) streams_.prefetch(req->stream);
  for (const auto& req : group) {
    if (const StreamEntry* e = FindEntry(req->stream)) __builtin_prefetch(e);
  }

  bool wrote = false;
  for (auto& req : group) {
    if (stopped_) {
      results.emplace_back(stopped_status_);
    } else if (!req->error.ok()) {
      results.emplace_back(req->error);
    } else {
      size_t before = pending_.size();
      results.push_back(Process(*req));
      wrote = wrote || pending_.size() != before;
    }
  }

  Status io;
  if (!stopped_ && !buf_.empty()) {
    io = log_->Append(buf_);
    if (io.ok() && options_.sync == SyncMode::kAlways) io = SyncLog();
    if (io.ok() && options_.sync != SyncMode::kAlways) unsynced_ = true;
  }
  if (!io.ok() || stopped_) {
    Status s = FailStop(io.ok() ? stopped_status_ : io);
    for (auto& r : results)
      if (r.ok()) r = s;
  } else if (wrote) {
    {
      std::unique_lock lock(index_mu_);
      for (auto& op : pending_) {
        switch (op.kind) {
          case PendingOp::Kind::kEvent:
            op.entry->positions.push_back(op.position);
            op.entry->last_position = op.position;
            break;
          case PendingOp::Kind::kTombstone: op.entry->tombstone_position = op.position; break;
          case PendingOp::Kind::kMetadata:
            op.target->metadata = op.metadata;
            op.target->has_meta = true;
            op.target->dirty = true;
            break;
        }
        op.entry->dirty = true;
      }
      memtable_bytes_ += pending_.size() * sizeof(uint64_t);
      time_index_.Add(group_time_, group_first_position_, group_records_);
      log_->Publish();
    }
    {
      std::lock_guard lock(head_mu_);
    }
    head_cv_.notify_all();
  }
  // Past its memory budget the memtable goes to the IndexStore: between groups, when everything
  // in it is published. A failure to write the index stops the writer like a failed log write.
  if (!stopped_ && memtable_bytes_ > options_.index_memory_bytes) {
    Status s = StartBackgroundFlush();
    if (!s.ok()) {
      s = FailStop(s);
      for (auto& r : results)
        if (r.ok()) r = s;
    }
  }
  {
    std::lock_guard lock(stats_mu_);
    CountAppendResults(results, &stats_);
    if (wrote && io.ok() && !stopped_) {
      stats_.commits++;
      stats_.events_written += group_records_;
      stats_.bytes_written += log_->tail() - group_first_position_;
      stats_.batch_events.Observe(static_cast<double>(group_records_));
      stats_.total_events += group_records_;
      stats_.streams = next_stream_id_ - 1;
    }
  }
  queue_.Complete(group, results);
}

const std::byte* EmbeddedStore::WriterBytesAt(uint64_t position, size_t* avail) const {
  // Records of the group being built are still in buf_; earlier ones are in the mapped log (also
  // those written but not yet published, which only the writer may look at).
  const uint64_t tail = log_->tail();
  if (position >= tail) {
    const uint64_t off = position - tail;
    if (off >= buf_.size()) return nullptr;
    *avail = buf_.size() - off;
    return reinterpret_cast<const std::byte*>(buf_.data()) + off;
  }
  const uint64_t cap = log_->capacity();
  const Segment* s = log_->SegmentAt(position / cap);
  if (s == nullptr) return nullptr;
  *avail = cap - position % cap;
  return s->base + position % cap;
}

bool EmbeddedStore::WriterRecordAt(uint64_t position, RecordView* out) const {
  size_t avail = 0;
  const std::byte* p = WriterBytesAt(position, &avail);
  return p != nullptr && DecodeRecord(p, avail, position, out) == DecodeError::kOk;
}

bool EmbeddedStore::StartsAnAppend(const RecordView& r) const {
  // Appends never straddle segments, and their records are contiguous: r starts one when the
  // record before it in the log ends one, or is the metadata that re-opened r's stream.
  const uint64_t cap = log_->capacity();
  if (r.position % cap <= kSegmentHeaderSize) return true;
  size_t avail = 0;
  const std::byte* trailer = WriterBytesAt(r.position - kRecordTrailerSize, &avail);
  if (trailer == nullptr || avail < kRecordTrailerSize) return false;
  RecordView prev;
  if (!WriterRecordAt(r.position - util::DecodeU32(trailer), &prev)) return false;
  return prev.commit() || (prev.stream.starts_with("$$") && prev.stream.substr(2) == r.stream &&
                           prev.type == kMetadataType);
}

Status EmbeddedStore::EnsureRoom(size_t bytes) {
  const uint64_t cap = log_->capacity();
  // The offset in the active segment; it can equal cap when the last append filled it exactly.
  const uint64_t off = log_->tail() + buf_.size() - log_->active()->number * cap;
  if (off + bytes <= cap) return Status::Ok();
  if (bytes > cap - kSegmentHeaderSize) {
    return Status::InvalidArgument(fmt::format("append of {} bytes exceeds the limit of {} bytes (segment_size {})",
                                               bytes, cap - kSegmentHeaderSize, cap));
  }
  // Roll: write and sync what this segment got so far, then open the next. Syncing before the
  // next segment exists is what lets recovery treat every older segment as sealed and whole.
  Status s;
  if (!buf_.empty()) {
    s = log_->Append(buf_);
    buf_.clear();
  }
  if (s.ok()) s = SyncLog();
  if (s.ok()) s = log_->Roll();
  if (!s.ok()) return FailStop(s);
  if (group_records_ == 0) group_first_position_ = log_->tail();
  return Status::Ok();
}

uint64_t EmbeddedStore::Encode(StreamEntry* entry, uint64_t version, const Uuid& id, uint8_t flags, ContentType ct,
                               std::string_view type, std::string_view data, std::string_view metadata) {
  const uint64_t position = log_->tail() + buf_.size();
  EncodeRecord(RecordFields{position, group_time_, version, id, flags, ct, entry->name, type, data, metadata}, &buf_);
  if (flags & kFlagGeneratedId) {
    ids_.Skip();
  } else {
    ids_.Insert(id, position);
  }
  group_records_++;
  return position;
}

Result<uint64_t> EmbeddedStore::EncodeMetadata(StreamEntry* target, const StreamMetadata& md, uint8_t flags) {
  CAIRN_ASSIGN_OR_RETURN(StreamEntry* meta, GetOrCreateEntry(MetastreamName(target->name)));
  std::string json = md.ToJson();
  uint64_t pos = Encode(meta, meta->w_next, Uuid::V7(group_time_ / 1'000'000), flags | kFlagGeneratedId, ContentType::kJson, kMetadataType, json, {});
  meta->w_next++;
  target->w_metadata = md;
  pending_.push_back({meta, pos, PendingOp::Kind::kEvent, nullptr, {}});
  pending_.push_back({meta, pos, PendingOp::Kind::kMetadata, target, md});
  return pos;
}

Result<AppendResult> EmbeddedStore::Process(Request& req) {
  CAIRN_ASSIGN_OR_RETURN(StreamEntry* entry, GetOrCreateEntry(req.stream));
  if (entry->w_tombstoned) return StreamDeleted(req.stream);
  const std::optional<uint64_t> actual = entry->WActualVersion();

  switch (req.kind) {
    case Request::Kind::kAppend:
      return ProcessAppend(req, entry);

    case Request::Kind::kMetadata: {
      CAIRN_ASSIGN_OR_RETURN(StreamEntry* meta, GetOrCreateEntry(MetastreamName(req.stream)));
      std::optional<uint64_t> meta_actual;
      if (meta->w_next > 0) meta_actual = meta->w_next - 1;
      CAIRN_RETURN_IF_ERROR(CheckExpected(MetastreamName(req.stream), req.expected, meta_actual));
      const size_t size = RecordSize(req.stream.size() + 2, kMetadataType.size(), req.metadata.ToJson().size(), 0);
      CAIRN_RETURN_IF_ERROR(EnsureRoom(size));
      const uint64_t version = meta->w_next;
      CAIRN_ASSIGN_OR_RETURN(uint64_t pos, EncodeMetadata(entry, req.metadata, kFlagCommit));
      return AppendResult{version, version + 1, Position(pos)};
    }

    case Request::Kind::kDelete: {
      CAIRN_RETURN_IF_ERROR(CheckExpected(req.stream, req.expected, actual));
      if (!actual) return StreamNotFound(req.stream);
      StreamMetadata md = entry->w_metadata;
      md.truncate_before = kSoftDeletedTruncateBefore;
      const size_t size = RecordSize(req.stream.size() + 2, kMetadataType.size(), md.ToJson().size(), 0);
      CAIRN_RETURN_IF_ERROR(EnsureRoom(size));
      CAIRN_ASSIGN_OR_RETURN(uint64_t pos, EncodeMetadata(entry, md, kFlagCommit));
      return AppendResult{entry->w_next, entry->w_next, Position(pos)};
    }

    case Request::Kind::kTombstone: {
      CAIRN_RETURN_IF_ERROR(CheckExpected(req.stream, req.expected, actual));
      CAIRN_RETURN_IF_ERROR(EnsureRoom(RecordSize(req.stream.size(), kTombstoneType.size(), 0, 0)));
      uint64_t pos = Encode(entry, kTombstoneVersion, Uuid::V7(group_time_ / 1'000'000), kFlagCommit | kFlagTombstone | kFlagGeneratedId, ContentType::kJson,
                            kTombstoneType, {}, {});
      entry->w_tombstoned = true;
      pending_.push_back({entry, pos, PendingOp::Kind::kTombstone, nullptr, {}});
      return AppendResult{entry->w_next, entry->w_next, Position(pos)};
    }
  }
  return Status::Internal("unknown request kind");
}

Result<AppendResult> EmbeddedStore::ProcessAppend(Request& req, StreamEntry* entry) {
  const auto& events = req.events;
  const size_t n = events.size();

  // Idempotency first: a retry of an acknowledged append must succeed even though the stream
  // has since moved past its expected version.
  auto known = [&](size_t i, RecordView* rv) {
    if (events[i].id.IsNil()) return false;
    const uint64_t pos = ids_.Find(events[i].id);
    return pos != 0 && WriterRecordAt(pos, rv);
  };
  RecordView first;
  const bool first_known = known(0, &first);
  bool any_known = first_known;
  for (size_t i = 1; i < n && !any_known; ++i) {
    RecordView rv;
    any_known = known(i, &rv);
  }
  if (any_known) {
    bool same = first_known && first.stream == req.stream && !first.tombstone();
    for (size_t i = 1; i < n && same; ++i) {
      RecordView rv;
      same = known(i, &rv) && rv.stream == req.stream && rv.version == first.version + i;
    }
    // Exactly one earlier append: it starts at the first event and ends at the last.
    RecordView last = first;
    if (same && n > 1) same = known(n - 1, &last);
    same = same && last.commit() && StartsAnAppend(first);
    if (same) return AppendResult{first.version, first.version + n, Position(first.position)};
    for (size_t i = 0; i < n; ++i) {
      RecordView rv;
      if (known(i, &rv)) {
        return Status::AlreadyExists(
            fmt::format("append to {}: event id {} is already stored in stream {} at version {}, by another append",
                        req.stream, events[i].id.ToString(), rv.stream, rv.version),
            ErrorDetail::kDuplicateEventId);
      }
    }
  }

  const bool soft_deleted = entry->WSoftDeleted();
  CAIRN_RETURN_IF_ERROR(CheckExpected(req.stream, req.expected, entry->WActualVersion()));
  if (entry->w_next + n - 1 > kMaxStreamVersion) {
    return Status::InvalidArgument(fmt::format("append to {}: versions would pass the limit {}", req.stream, kMaxStreamVersion));
  }

  size_t size = 0;
  for (const auto& e : events) size += RecordSize(req.stream.size(), e.type.size(), e.data.size(), e.metadata.size());
  StreamMetadata reopened;
  if (soft_deleted) {
    // Re-opening a soft-deleted stream: its metadata now truncates before the first new version,
    // written in the same atomic append as the events.
    reopened = entry->w_metadata;
    reopened.truncate_before = entry->w_next;
    size += RecordSize(req.stream.size() + 2, kMetadataType.size(), reopened.ToJson().size(), 0);
  }
  // `$metadata` events appended to a metastream directly (a system append, as EventStoreDB's
  // clients write metadata) apply to their stream at once, as when the log is replayed at open;
  // data that does not parse is ignored in both places.
  StreamEntry* meta_target = nullptr;
  std::vector<std::optional<StreamMetadata>> metadata_of;
  if (req.stream.starts_with("$$")) {
    metadata_of.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (events[i].type != kMetadataType) continue;
      auto md = StreamMetadata::Parse(events[i].data);
      if (md.ok()) metadata_of[i] = std::move(*md);
    }
    CAIRN_ASSIGN_OR_RETURN(meta_target, GetOrCreateEntry(std::string_view(req.stream).substr(2)));
  }
  CAIRN_RETURN_IF_ERROR(EnsureRoom(size));
  if (soft_deleted) CAIRN_RETURN_IF_ERROR(EncodeMetadata(entry, reopened, 0).status());

  const uint64_t first_version = entry->w_next;
  uint64_t first_position = 0;
  for (size_t i = 0; i < n; ++i) {
    const EventData& e = events[i];
    const uint8_t flags = (i + 1 == n ? kFlagCommit : 0) | (e.id.IsNil() ? kFlagGeneratedId : 0);
    const Uuid id = e.id.IsNil() ? Uuid::V7(group_time_ / 1'000'000) : e.id;
    uint64_t pos = Encode(entry, first_version + i, id, flags, e.content_type, e.type, e.data, e.metadata);
    if (i == 0) first_position = pos;
    pending_.push_back({entry, pos, PendingOp::Kind::kEvent, nullptr, {}});
    if (meta_target != nullptr && metadata_of[i]) {
      meta_target->w_metadata = *metadata_of[i];
      pending_.push_back({entry, pos, PendingOp::Kind::kMetadata, meta_target, *metadata_of[i]});
    }
  }
  entry->w_next += n;
  return AppendResult{first_version, first_version + n, Position(first_position)};
}

// ---------------------------------------------------------------------------------------------
// Reads

Result<EventCursor> EmbeddedStore::ReadStream(std::string_view stream, const ReadStreamOptions& options) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, /*allow_system=*/true));
  if (options.from && *options.from > kMaxStreamVersion) {
    return Status::InvalidArgument(fmt::format("from version {} exceeds the limit {}", *options.from, kMaxStreamVersion));
  }
  uint64_t limit = log_->head();
  if (options.as_of) {
    CAIRN_ASSIGN_OR_RETURN(limit, PositionAfter(options.as_of->nanos));
  }
  std::shared_lock lock(index_mu_);
  StreamRef e;
  CAIRN_RETURN_IF_ERROR(FindStream(stream, &e));
  if (!e.found) return StreamNotFound(stream);
  if (e.tombstone_position) return StreamDeleted(stream);
  if (e.count == 0 || e.SoftDeleted()) return StreamNotFound(stream);

  // Versions are looked up one at a time below: a binary search needs few of them.
  auto position_of = [&](uint64_t version) -> Result<uint64_t> {
    std::vector<uint64_t> one;
    CAIRN_RETURN_IF_ERROR(PositionsOf(e, version, 1, &one));
    return one.front();
  };
  const uint64_t size = e.count;
  uint64_t lo = 0;
  if (e.metadata.truncate_before) lo = std::max(lo, *e.metadata.truncate_before);
  if (e.metadata.max_count) lo = std::max(lo, size > *e.metadata.max_count ? size - *e.metadata.max_count : 0);
  if (e.metadata.max_age_seconds && lo < size) {
    const int64_t cutoff = env_->NowNanos() - static_cast<int64_t>(*e.metadata.max_age_seconds) * 1'000'000'000;
    uint64_t a = lo, b = size;  // first version recorded at or after the cutoff
    while (a < b) {
      uint64_t mid = (a + b) / 2;
      CAIRN_ASSIGN_OR_RETURN(uint64_t p, position_of(mid));
      RecordView rv;
      CAIRN_RETURN_IF_ERROR(log_->ReadAt(p, &rv));
      if (rv.recorded_at < cutoff) a = mid + 1; else b = mid;
    }
    lo = a;
  }
  // hi: one past the last visible version (the first one at or past `limit`).
  uint64_t hi = size;
  if (e.last_position >= limit) {
    uint64_t a = 0, b = size;
    while (a < b) {
      uint64_t mid = (a + b) / 2;
      CAIRN_ASSIGN_OR_RETURN(uint64_t p, position_of(mid));
      if (p < limit) a = mid + 1; else b = mid;
    }
    hi = a;
  }
  return MakeStreamCursor(*this, std::string(stream), lo, hi, options);
}

Result<EventCursor> EmbeddedStore::ReadAll(const ReadAllOptions& options) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  uint64_t limit = log_->head();
  if (options.as_of) {
    CAIRN_ASSIGN_OR_RETURN(uint64_t at, PositionAfter(options.as_of->nanos));
    limit = std::min(limit, at);
  }
  return MakeAllCursor(*this, options, limit);
}

Result<uint64_t> EmbeddedStore::PositionAfter(int64_t t) const {
  uint64_t start = 0;
  {
    std::shared_lock lock(index_mu_);
    if (auto recent = time_index_.StartFor(t)) {
      start = *recent;
    } else if (auto older = TimeIndex::StartIn(imm_marks_, t)) {
      start = *older;
    } else {
      CAIRN_ASSIGN_OR_RETURN(std::optional<TimeMark> stored, index_->LastMarkAtOrBefore(t));
      if (stored) start = stored->position;
    }
  }
  ReadAllOptions o;
  o.from = Position(start);
  auto cursor = MakeAllCursor(*this, o, log_->head());
  if (!cursor.ok()) return cursor.status();
  while (cursor->Next()) {
    if (cursor->event().recorded_at.nanos > t) return cursor->event().position.value();
  }
  CAIRN_RETURN_IF_ERROR(cursor->status());
  return Position::End().value();
}

Result<Position> EmbeddedStore::PositionAtTime(Timestamp time) {
  CAIRN_ASSIGN_OR_RETURN(uint64_t p, PositionAfter(time.nanos));
  return Position(p);
}

Result<StreamInfo> EmbeddedStore::GetStreamInfo(std::string_view stream) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, /*allow_system=*/true));
  StreamInfo info;
  std::shared_lock lock(index_mu_);
  StreamRef e;
  CAIRN_RETURN_IF_ERROR(FindStream(stream, &e));
  if (!e.found) return info;
  info.tombstoned = e.tombstone_position.has_value();
  info.deleted = e.SoftDeleted() && !info.tombstoned;
  info.exists = e.count > 0 && !info.deleted && !info.tombstoned;
  if (e.count > 0) {
    info.last_version = e.count - 1;
    info.last_position = Position(e.last_position);
  }
  if (e.has_meta) {
    StreamRef meta;
    CAIRN_RETURN_IF_ERROR(FindStream(MetastreamName(stream), &meta));
    if (meta.count > 0) info.metadata_version = meta.count - 1;
  }
  info.metadata = e.metadata;
  return info;
}

Result<std::vector<StreamSummary>> EmbeddedStore::ListStreams(const ListStreamsOptions& options) {
  if (options.max_count == 0 || options.max_count > kMaxListStreams) {
    return Status::InvalidArgument(
        fmt::format("max_count {} is outside 1..{}", options.max_count, kMaxListStreams));
  }
  if (options.prefix.size() > kMaxStreamNameBytes) {
    return Status::InvalidArgument(fmt::format("prefix of {} bytes exceeds the limit of {} bytes",
                                               options.prefix.size(), kMaxStreamNameBytes));
  }
  const bool system = options.include_system || options.prefix.starts_with('$');
  // Without system streams, start past every name beginning with '$' (valid UTF-8 has no 0xff).
  std::string after = options.after;
  if (!system && after < "$\xff") after = "$\xff";
  // Every tier under the shared lock: a stream the flusher moves from the immutable memtable to
  // the IndexStore is in one of them either way. The newest tier that knows a stream wins.
  std::shared_lock lock(index_mu_);
  std::map<std::string, StreamRow, std::less<>> rows;
  for (const auto* tier : {&streams_, &imm_streams_}) {
    for (const auto& [name, e] : *tier) {
      if (name.starts_with(options.prefix) && name > after) rows.emplace(name, e->Row());
    }
  }
  std::vector<StreamSummary> out;
  std::string emitted = after;  // names up to here are decided
  for (;;) {
    // The IndexStore's next names; rows of the memtables (already in `rows`) stay.
    std::vector<std::pair<std::string, StreamRow>> stored;
    CAIRN_RETURN_IF_ERROR(index_->ListStreams(options.prefix, emitted, options.max_count, &stored));
    const bool exhausted = stored.size() < options.max_count;
    std::string frontier;
    for (auto& [name, row] : stored) {
      frontier = std::max(frontier, name);
      rows.emplace(std::move(name), std::move(row));
    }
    for (auto it = rows.upper_bound(emitted); it != rows.end() && out.size() < options.max_count; ++it) {
      const auto& [name, row] = *it;
      if (!exhausted && name > frontier) break;
      emitted = name;
      if (row.count == 0 && row.tombstone == 0) continue;  // only its metadata was ever set
      StreamSummary sum;
      sum.name = name;
      sum.last_version = row.count > 0 ? row.count - 1 : 0;
      sum.last_position = Position(row.last_position);
      sum.tombstoned = row.tombstone != 0;
      if (row.has_meta && !sum.tombstoned) {
        auto md = StreamMetadata::Parse(row.metadata_json);
        if (!md.ok()) return Status::Corruption(fmt::format("index: the metadata of stream {} does not parse", name));
        sum.deleted = md->truncate_before == kSoftDeletedTruncateBefore;
      }
      out.push_back(std::move(sum));
    }
    if (exhausted || out.size() == options.max_count) break;
    emitted = std::max(emitted, frontier);
  }
  return out;
}

StoreStats EmbeddedStore::Stats() const {
  StoreStats s;
  {
    std::lock_guard lock(stats_mu_);
    s = stats_;
  }
  s.reads = reads_.load(std::memory_order_relaxed);
  s.head = HeadPosition();
  if (env_->IsNativeFileSystem()) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code fec;
      if (it->is_regular_file(fec)) {
        const auto n = it->file_size(fec);
        if (!fec) s.disk_bytes += n;
      }
    }
  }
  return s;
}

Position EmbeddedStore::WaitForAppend(Position after, std::chrono::milliseconds timeout) {
  std::unique_lock lock(head_mu_);
  head_cv_.wait_for(lock, timeout, [&] {
    return log_->head() > after.value() || queue_.closed();
  });
  return Position(log_->head());
}

Status EmbeddedStore::Close() {
  if (!queue_.Stop()) return Status::Ok();
  if (writer_.joinable()) writer_.join();
  queue_.MarkClosed();
  // A clean close writes the memtable to the IndexStore, so that the next open scans nothing.
  // Failing to write it costs only time at the next open.
  if (!stopped_ && log_ != nullptr) (void)FlushIndexAtHead();
  if (flusher_.joinable()) {
    {
      std::lock_guard lock(flush_mu_);
      flusher_stop_ = true;
    }
    flush_cv_.notify_all();
    flusher_.join();
  }
  {
    std::lock_guard lock(head_mu_);
  }
  head_cv_.notify_all();
  lock_.reset();
  return stopped_ ? stopped_status_ : Status::Ok();
}

}  // namespace cairn::storage

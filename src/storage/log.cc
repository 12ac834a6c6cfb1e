#include "storage/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

#include "util/check.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/thread_name.h"

namespace cairn::storage {

namespace {

bool ParseSegmentFileName(const std::string& name, uint64_t* number) {
  if (name.size() != 20 || name.compare(16, 4, ".seg") != 0) return false;
  uint64_t n = 0;
  for (int i = 0; i < 16; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *number = n;
  return true;
}

std::string EncodeSegmentHeader(uint64_t number, uint64_t capacity, int64_t created_at) {
  std::string h(kSegmentHeaderSize, '\0');
  std::memcpy(h.data() + kSegMagicOffset, kSegmentMagic, 8);
  util::EncodeU32(h.data() + kSegVersionOffset, kFormatVersion);
  util::EncodeU32(h.data() + kSegHeaderSizeOffset, kSegmentHeaderSize);
  util::EncodeU64(h.data() + kSegNumberOffset, number);
  util::EncodeU64(h.data() + kSegCapacityOffset, capacity);
  util::EncodeU64(h.data() + kSegCreatedAtOffset, static_cast<uint64_t>(created_at));
  util::EncodeU32(h.data() + kSegCrcOffset, util::Crc32c(h.data(), kSegCrcOffset));
  return h;
}

// Validates a segment header; on success sets *capacity.
Status CheckSegmentHeader(const std::byte* p, size_t n, uint64_t number, const std::string& path, uint64_t* capacity) {
  auto bad = [&](const char* what) { return Status::Corruption(fmt::format("segment {}: {}", path, what)); };
  if (n < kSegmentHeaderSize) return bad("shorter than its 64-byte header");
  const char* c = reinterpret_cast<const char*>(p);
  if (std::memcmp(c + kSegMagicOffset, kSegmentMagic, 8) != 0) return bad("bad magic (not a cairn log segment)");
  if (util::DecodeU32(c + kSegCrcOffset) != util::Crc32c(c, kSegCrcOffset)) return bad("header checksum mismatch");
  uint32_t version = util::DecodeU32(c + kSegVersionOffset);
  if (version != kFormatVersion) {
    return Status::NotSupported(fmt::format("segment {}: format version {} (this build reads version {})", path,
                                            version, kFormatVersion));
  }
  if (util::DecodeU32(c + kSegHeaderSizeOffset) != kSegmentHeaderSize) return bad("unexpected header size");
  if (util::DecodeU64(c + kSegNumberOffset) != number) return bad("segment number does not match its file name");
  *capacity = util::DecodeU64(c + kSegCapacityOffset);
  if (*capacity < (64 << 10) || *capacity > (uint64_t{1} << 40) || *capacity % kRecordAlignment != 0) {
    return bad("implausible segment capacity");
  }
  return Status::Ok();
}

bool AllZero(const std::byte* p, size_t n) {
  static const std::byte kZeros[4096] = {};
  while (n > 0) {
    size_t k = std::min(n, sizeof kZeros);
    if (std::memcmp(p, kZeros, k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

// The checksum field of the whole, valid record ending at `end` in a mapped segment.
bool CrcOfRecordEndingAtOffset(const std::byte* base, uint64_t base_pos, uint64_t end, uint32_t* crc) {
  if (end <= kSegmentHeaderSize + kRecordTrailerSize) return false;
  const uint32_t len = util::DecodeU32(base + end - kRecordTrailerSize);
  if (len < kMinRecordSize || len % kRecordAlignment != 0 || len > end - kSegmentHeaderSize) return false;
  RecordView rv;
  if (DecodeRecord(base + end - len, len, base_pos + end - len, &rv) != DecodeError::kOk) return false;
  *crc = util::DecodeU32(base + end - len);
  return true;
}

}  // namespace

std::string SegmentFileName(uint64_t number) { return fmt::format("{:016d}.seg", number); }

Log::~Log() { StopPreparer(); }

const Segment* Log::SegmentAt(uint64_t number) const {
  std::shared_lock lock(segments_mu_);
  return number < segments_.size() ? segments_[number].get() : nullptr;
}

uint64_t Log::SegmentCount() const {
  std::shared_lock lock(segments_mu_);
  return segments_.size();
}

std::string Log::SegmentPath(uint64_t number) const { return dir_ + "/" + SegmentFileName(number); }

Status Log::ReadAt(uint64_t position, RecordView* out, const Segment** cache) const {
  const uint64_t number = position / capacity_;
  const uint64_t offset = position % capacity_;
  const Segment* s = cache != nullptr && *cache != nullptr && (*cache)->number == number ? *cache : SegmentAt(number);
  if (cache != nullptr) *cache = s;
  if (s == nullptr || offset < kSegmentHeaderSize || offset >= s->end.load(std::memory_order_acquire)) {
    return Status::InvalidArgument(fmt::format("position {} is not the position of an event", position));
  }
  DecodeError e = DecodeRecord(s->base + offset, capacity_ - offset, position, out);
  if (e != DecodeError::kOk) {
    return Status::Corruption(fmt::format("segment {} offset {} (position {}): {}", s->path, offset, position,
                                          DecodeErrorName(e)));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Segment>> Log::CreateSegment(uint64_t number) {
  auto seg = std::make_unique<Segment>();
  seg->number = number;
  seg->path = SegmentPath(number);
  CAIRN_ASSIGN_OR_RETURN(seg->file, env_->OpenFile(seg->path, env::OpenMode::kCreateNew));
  // Allocate the whole segment first: writes inside it then never change the file's size, and the
  // mapping below covers every byte that will ever be written.
  CAIRN_RETURN_IF_ERROR(seg->file->Allocate(capacity_));
  std::string header = EncodeSegmentHeader(number, capacity_, env_->NowNanos());
  CAIRN_RETURN_IF_ERROR(seg->file->Write(0, std::as_bytes(std::span(header))));
  // The header is durable, and the directory entry too, before any record goes in: recovery may
  // then treat a segment without a valid header as one whose creation was interrupted.
  CAIRN_RETURN_IF_ERROR(seg->file->Sync());
  CAIRN_RETURN_IF_ERROR(env_->SyncDir(dir_));
  CAIRN_ASSIGN_OR_RETURN(seg->base, seg->file->Map(capacity_));
  seg->end.store(kSegmentHeaderSize, std::memory_order_release);
  return seg;
}

Result<std::unique_ptr<Log>> Log::Open(env::Env* env, const std::string& dir, const LogOpenOptions& options,
                                       const RecordFn& on_record, RecoveryReport* report) {
  const std::string log_dir = dir + "/log";
  if (!env->FileExists(log_dir)) {
    if (!options.create || options.verify_only) return Status::NotFound(fmt::format("no cairn log at {}", log_dir));
    CAIRN_RETURN_IF_ERROR(env->CreateDir(log_dir));
    CAIRN_RETURN_IF_ERROR(env->SyncDir(dir));
  }
  CAIRN_ASSIGN_OR_RETURN(auto names, env->ListDir(log_dir));
  std::vector<uint64_t> numbers;
  for (const auto& name : names) {
    uint64_t n;
    if (ParseSegmentFileName(name, &n)) numbers.push_back(n);
  }
  std::sort(numbers.begin(), numbers.end());
  for (size_t i = 0; i < numbers.size(); ++i) {
    if (numbers[i] != i) {
      return Status::Corruption(fmt::format("log {}: segment {} is missing", log_dir, SegmentFileName(i)));
    }
  }

  uint64_t capacity = options.capacity_for_new;
  if (!numbers.empty()) {
    // The first segment's header fixes the capacity for the whole log.
    CAIRN_ASSIGN_OR_RETURN(auto f, env->OpenFile(log_dir + "/" + SegmentFileName(0), env::OpenMode::kRead));
    std::byte header[kSegmentHeaderSize];
    size_t got = 0;
    CAIRN_RETURN_IF_ERROR(f->Read(0, sizeof header, header, &got));
    Status hs = CheckSegmentHeader(header, got, 0, log_dir + "/" + SegmentFileName(0), &capacity);
    if (!hs.ok() && !(numbers.size() == 1 && !options.verify_only)) return hs;
    if (!hs.ok()) capacity = options.capacity_for_new;  // an interrupted creation of segment 0
  } else if (options.verify_only) {
    return Status::NotFound(fmt::format("no cairn log segments in {}", log_dir));
  }

  std::unique_ptr<Log> log(new Log(env, log_dir, capacity));
  log->segments_at_open_ = numbers.size();
  if (options.on_capacity) options.on_capacity(capacity);
  CAIRN_RETURN_IF_ERROR(log->Recover(options, on_record, report));
  if (options.prepare_ahead > 0 && !options.verify_only) log->StartPreparer(options.prepare_ahead);
  return log;
}

uint32_t Log::CrcOfRecordEndingAt(uint64_t position) const {
  if (position <= kSegmentHeaderSize) return 0;
  uint64_t number = (position - 1) / capacity_;
  uint64_t end = position - number * capacity_;
  if (end <= kSegmentHeaderSize) {
    if (number == 0) return 0;
    number--;
    const Segment* prev = SegmentAt(number);
    if (prev == nullptr) return 0;
    end = prev->end.load(std::memory_order_acquire);
  }
  const Segment* s = SegmentAt(number);
  uint32_t crc = 0;
  if (s == nullptr || !CrcOfRecordEndingAtOffset(s->base, number * capacity_, end, &crc)) return 0;
  return crc;
}

std::vector<uint64_t> Log::SegmentEndsBefore(uint64_t position) const {
  std::vector<uint64_t> ends;
  const uint64_t number = position <= kSegmentHeaderSize ? 0 : (position - 1) / capacity_;
  for (uint64_t i = 0; i < number; ++i) ends.push_back(SegmentAt(i)->end.load(std::memory_order_acquire));
  return ends;
}

Status Log::Recover(const LogOpenOptions& options, const RecordFn& on_record, RecoveryReport* report) {
  if (options.resume_position != 0 && !options.verify_only) {
    Status s = RecoverFrom(options, /*resume=*/true, on_record, report);
    const bool rejected = s.code() == StatusCode::kUnavailable && s.message() == "resume rejected";
    if (!rejected) {
      report->resumed = s.ok();
      return s;
    }
    // Nothing was handed to on_record yet: start over from the first record.
    segments_.clear();
    *report = RecoveryReport{};
    report->note = "index checkpoint does not match the log: indexes rebuilt from the log; ";
    if (options.on_resume_rejected) options.on_resume_rejected();
  }
  return RecoverFrom(options, /*resume=*/false, on_record, report);
}

Status Log::RecoverFrom(const LogOpenOptions& options, bool resume, const RecordFn& on_record,
                        RecoveryReport* report) {
  const Status kRejected = Status::Unavailable("resume rejected");
  // Resuming: segment k is where the checkpoint's head lies (offset o in it).
  const uint64_t k = resume ? (options.resume_position - 1) / capacity_ : 0;
  const uint64_t o = resume ? options.resume_position - k * capacity_ : kSegmentHeaderSize;
  if (resume && (o < kSegmentHeaderSize || options.segment_ends.size() != k || options.resume_capacity != capacity_)) {
    return kRejected;
  }
  const uint64_t count = segments_at_open_;  // counted, and checked for gaps, by Open
  if (resume && count <= k) return kRejected;
  const env::OpenMode mode = options.verify_only ? env::OpenMode::kRead : env::OpenMode::kReadWrite;
  const uint64_t total = count * capacity_;
  std::vector<RecordView> pending;  // records of an append whose commit record is not yet seen

  for (uint64_t i = 0; i < count; ++i) {
    const bool last = i + 1 == count;
    auto seg = std::make_unique<Segment>();
    seg->number = i;
    seg->path = SegmentPath(i);
    CAIRN_ASSIGN_OR_RETURN(seg->file, env_->OpenFile(seg->path, mode));
    CAIRN_ASSIGN_OR_RETURN(uint64_t size, seg->file->Size());
    std::byte header[kSegmentHeaderSize];
    size_t got = 0;
    CAIRN_RETURN_IF_ERROR(seg->file->Read(0, sizeof header, header, &got));
    uint64_t cap = 0;
    Status hs = CheckSegmentHeader(header, got, i, seg->path, &cap);
    if (hs.ok() && cap != capacity_) hs = Status::Corruption(fmt::format("segment {}: capacity differs from segment 0", seg->path));
    if (!hs.ok()) {
      // Only the newest segment may have an unfinished header: its creation was interrupted
      // before the header and directory entry were synced, so it never held a record.
      if (!last || options.verify_only || hs.code() == StatusCode::kNotSupported) return hs;
      seg->file.reset();
      CAIRN_RETURN_IF_ERROR(env_->RemoveFile(seg->path));
      CAIRN_RETURN_IF_ERROR(env_->SyncDir(dir_));
      report->removed_segments++;
      report->note += fmt::format("removed {} (creation interrupted); ", seg->path);
      break;
    }
    if (size > capacity_) return Status::Corruption(fmt::format("segment {}: larger than its capacity", seg->path));
    if (size < capacity_) {
      if (options.verify_only) {
        return Status::Corruption(fmt::format("segment {}: {} bytes, shorter than its capacity {}", seg->path, size, capacity_));
      }
      CAIRN_RETURN_IF_ERROR(seg->file->Allocate(capacity_));
    }
    CAIRN_ASSIGN_OR_RETURN(seg->base, seg->file->Map(capacity_));

    const uint64_t base_pos = i * capacity_;
    const std::byte* b = seg->base;
    if (resume && i < k) {
      // Covered by the checkpoint: not scanned (cairn verify scans everything).
      const uint64_t end = options.segment_ends[i];
      if (end < kSegmentHeaderSize || end > capacity_) return kRejected;
      seg->end.store(end, std::memory_order_release);
      segments_.push_back(std::move(seg));
      continue;
    }
    uint64_t off = kSegmentHeaderSize;
    uint64_t commit_end = kSegmentHeaderSize;
    if (resume && i == k) {
      // The record ending where the checkpoint ends must be the one it saw.
      uint32_t crc = 0;
      bool found = false;
      if (o > kSegmentHeaderSize) {
        found = CrcOfRecordEndingAtOffset(b, base_pos, o, &crc);
      } else if (k > 0) {
        const Segment* prev = segments_.back().get();
        found = CrcOfRecordEndingAtOffset(prev->base, (k - 1) * capacity_, prev->end.load(), &crc);
      }
      if ((found ? crc : 0) != options.resume_check_crc || (!found && o != kSegmentHeaderSize)) return kRejected;
      // This segment is still scanned from its start, so that damage anywhere in the newest
      // segment fails the open as without a checkpoint; only records from the checkpoint's head
      // on are handed to on_record.
    }
    const uint64_t apply_from = resume && i == k ? options.resume_position : 0;
    DecodeError stop = DecodeError::kZero;
    pending.clear();
    while (capacity_ - off >= kMinRecordSize) {
      RecordView rv;
      stop = DecodeRecord(b + off, capacity_ - off, base_pos + off, &rv);
      if (stop != DecodeError::kOk) break;
      pending.push_back(rv);
      off += rv.length;
      if (rv.commit()) {
        for (const auto& r : pending) {
          if (r.position < apply_from) continue;
          Status s = on_record(r);
          if (!s.ok()) return s.WithContext(fmt::format("segment {} offset {}", seg->path, r.position - base_pos));
          report->records++;
        }
        pending.clear();
        commit_end = off;
      }
      if (options.progress && ((off - rv.length) >> 23) != (off >> 23)) options.progress(base_pos + off, total);
    }
    if (capacity_ - off < kMinRecordSize) stop = DecodeError::kZero;
    const uint64_t stop_off = off;
    const uint64_t check_end = std::min<uint64_t>(capacity_, stop_off + 4096);
    const bool clean_end = stop == DecodeError::kZero && pending.empty() && AllZero(b + stop_off, check_end - stop_off);

    // The log ends before the checkpoint's head: it lost what the checkpoint indexed. Nothing
    // was handed to on_record yet (records are handed over in order), so start over.
    if (resume && i == k && commit_end < o) return kRejected;
    // The scan touched every page of the segment; readers will fault in what they need.
    env::DropMappedPages(b, stop_off);
    if (!last) {
      // Sealed: synced before the next segment was created, so it must end cleanly.
      if (!clean_end) {
        return Status::Corruption(fmt::format("segment {} offset {} (position {}): {} in a sealed segment", seg->path,
                                              stop_off, base_pos + stop_off,
                                              stop == DecodeError::kZero ? "uncommitted or damaged data" : DecodeErrorName(stop)));
      }
      seg->end.store(commit_end, std::memory_order_release);
      segments_.push_back(std::move(seg));
      continue;
    }

    // The newest segment: look for valid records after the stop, within one group-commit write.
    uint64_t found = 0;
    const uint64_t probe_end = std::min<uint64_t>(capacity_, stop_off + kMaxGroupWriteBytes + (16 << 20));
    for (uint64_t q = stop_off + kRecordAlignment; q + kMinRecordSize <= probe_end; q += kRecordAlignment) {
      const char* c = reinterpret_cast<const char*>(b + q);
      if (util::DecodeU64(c + kRecPositionOffset) != base_pos + q) continue;
      RecordView rv;
      if (DecodeRecord(b + q, capacity_ - q, base_pos + q, &rv) == DecodeError::kOk) {
        found = q;
        break;
      }
    }
    if (found != 0 && !AllZero(b + stop_off, found - stop_off)) {
      return Status::Corruption(fmt::format(
          "segment {} offset {} (position {}): {}, followed by valid records at offset {}", seg->path, stop_off,
          base_pos + stop_off, stop == DecodeError::kZero ? "zero length" : DecodeErrorName(stop), found));
    }
    if (!clean_end || found != 0) {
      report->truncated_bytes = (found != 0 ? found : stop_off) - commit_end;
      report->note += fmt::format("torn tail in {} at offset {} ({}); ", seg->path, commit_end,
                                  found != 0 ? "lost write" : DecodeErrorName(stop));
      if (!options.verify_only) {
        // Cut back to the last whole append and zero everything after it, so that no stale
        // record can ever reappear behind a later, shorter write.
        CAIRN_RETURN_IF_ERROR(seg->file->Truncate(commit_end));
        CAIRN_RETURN_IF_ERROR(seg->file->Allocate(capacity_));
        CAIRN_RETURN_IF_ERROR(seg->file->Sync());
      }
    }
    seg->end.store(commit_end, std::memory_order_release);
    segments_.push_back(std::move(seg));
  }

  if (segments_.empty()) {
    if (options.verify_only) return Status::NotFound(fmt::format("no cairn log segments in {}", dir_));
    CAIRN_ASSIGN_OR_RETURN(auto seg, CreateSegment(0));
    segments_.push_back(std::move(seg));
  }
  active_ = segments_.back().get();
  tail_ = active_->number * capacity_ + active_->end.load(std::memory_order_relaxed);
  head_.store(tail_, std::memory_order_release);
  if (options.progress) options.progress(total, total);
  return Status::Ok();
}

Status Log::Append(std::string_view bytes) {
  const uint64_t off = tail_ % capacity_;
  CAIRN_CHECK(tail_ / capacity_ == active_->number);
  CAIRN_CHECK(off + bytes.size() <= capacity_);
  const uint64_t end = off + bytes.size();
  // While the preparer runs, when this write ends inside a page no earlier write touched, the
  // same write goes on with zeros to the end of that page. Prepared blocks are written extents:
  // a write covering part of such a page that is not in the page cache makes the kernel read the
  // page from the device first, inside this pwrite (about one device read per log page,
  // measured). A page written whole needs no read, and the writes after it find it cached. The
  // zeros are those already on disk past the tail.
  uint64_t last_page = 0;  // the page to fill to its end, 0 for none (page 0 is the header's)
  const bool preparing = prepare_ahead_ > 0 && !prep_ended_.load(std::memory_order_relaxed);
  const bool ends_in_fresh_page = end % kPreparePage != 0 && (end - 1) / kPreparePage > (off - 1) / kPreparePage;
  if (preparing && ends_in_fresh_page && (end / kPreparePage + 1) * kPreparePage <= capacity_) {
    last_page = end / kPreparePage * kPreparePage;
  }
  if (prepare_ahead_ > 0) ReserveForWrite(last_page > 0 ? last_page + kPreparePage : end);
  const auto data = std::as_bytes(std::span(bytes.data(), bytes.size()));
  if (last_page > 0) {
    static constexpr std::array<std::byte, kPreparePage> kZeros{};
    CAIRN_RETURN_IF_ERROR(active_->file->WriteThen(off, data, std::span(kZeros).first(last_page + kPreparePage - end)));
  } else {
    CAIRN_RETURN_IF_ERROR(active_->file->Write(off, data));
  }
  tail_ += bytes.size();
  return Status::Ok();
}

Status Log::SyncActive() { return active_->file->Sync(); }

Status Log::Roll() {
  const uint64_t number = active_->number + 1;
  // Seal: readers jump from this end to the next segment. Still bounded by head() until Publish.
  active_->end.store(tail_ - active_->number * capacity_, std::memory_order_release);
  CAIRN_ASSIGN_OR_RETURN(auto seg, CreateSegment(number));
  Segment* raw = seg.get();
  {
    std::unique_lock lock(segments_mu_);
    segments_.push_back(std::move(seg));
  }
  active_ = raw;
  tail_ = number * capacity_ + kSegmentHeaderSize;
  if (prepare_ahead_ > 0) {
    // The preparer moves on to the new segment. A claim still running in the old one cannot
    // meet the writer there; until it ends, the writer may wait on it for nothing, never wrongly.
    std::lock_guard lock(prep_mu_);
    prep_seg_ = raw;
    reserved_ = kSegmentHeaderSize;
    prepared_to_ = kPreparePage;  // the header's page is written already
    prep_cv_.notify_all();
  }
  return Status::Ok();
}

void Log::Publish() {
  active_->end.store(tail_ - active_->number * capacity_, std::memory_order_release);
  head_.store(tail_, std::memory_order_release);
}

// ---------------------------------------------------------------------------------------------
// The preparer
//
// A thread that keeps the active segment prepared (File::PrepareAhead) from just past the
// writer's reserved bytes to `prepare_ahead` bytes beyond them, a chunk at a time. It claims a
// chunk under prep_mu_ at or above reserved_ (rounded up to a page, so it never shares a page
// with written bytes); the writer reserves its write under the same lock and waits only if that
// write would reach into a chunk being claimed, which happens only when the writer outruns the
// preparer. Zeros over zeros: a prepare lost in a crash changes nothing on disk.

namespace {
constexpr uint64_t RoundUpToPage(uint64_t v) { return (v + kPreparePage - 1) / kPreparePage * kPreparePage; }
}  // namespace

void Log::StartPreparer(uint64_t ahead) {
  prepare_ahead_ = ahead;
  const uint64_t off = tail_ - active_->number * capacity_;
  prep_seg_ = active_;
  reserved_ = off;
  prepared_to_ = RoundUpToPage(off);
  preparer_ = std::thread([this] {
    util::NameThisThread("cairn-preparer");
    PreparerLoop();
  });
}

void Log::StopPreparer() {
  if (!preparer_.joinable()) return;
  {
    std::lock_guard lock(prep_mu_);
    prep_stop_ = true;
  }
  prep_cv_.notify_all();
  preparer_.join();
}

void Log::ReserveForWrite(uint64_t end) {
  std::unique_lock lock(prep_mu_);
  // Nothing to wait for unless the preparer is writing below `end` right now.
  if (claiming_ && end > claim_lo_) prep_cv_.wait(lock, [&] { return !claiming_ || end <= claim_lo_; });
  reserved_ = std::max(reserved_, end);
  wrote_ = true;
  // Wake the preparer once the tail has used half of what is prepared ahead of it.
  if (!prep_off_ && !claiming_ && prepared_to_ < capacity_ && prepared_to_ < reserved_ + prepare_ahead_ / 2) {
    prep_cv_.notify_all();
  }
}

void Log::PreparerLoop() {
  // Small chunks: a group's sync waits for any write the device has in flight, a prepare's too
  // (256 KiB of 4 MiB: 1 MiB chunks doubled the p99 of 1 x 100 appends).
  const uint64_t chunk = std::max<uint64_t>(kPreparePage, RoundUpToPage(prepare_ahead_ / 16));
  std::unique_lock lock(prep_mu_);
  for (;;) {
    // Work: the segment is not prepared `prepare_ahead_` past the writer's reserved bytes. The
    // first chunk waits for the first write, so that a store opened and closed unused costs
    // nothing.
    prep_cv_.wait(lock, [&] {
      return prep_stop_ || (wrote_ && prepared_to_ < capacity_ && prepared_to_ < reserved_ + prepare_ahead_);
    });
    if (prep_stop_) return;
    Segment* seg = prep_seg_;
    const uint64_t lo = std::max(prepared_to_, RoundUpToPage(reserved_));
    const uint64_t hi = std::min(capacity_, lo + chunk);
    if (lo >= hi) {
      prepared_to_ = capacity_;
      continue;
    }
    claiming_ = true;
    claim_lo_ = lo;
    lock.unlock();
    Status s = seg->file->PrepareAhead(lo, hi - lo);
    lock.lock();
    claiming_ = false;
    prep_cv_.notify_all();
    if (!s.ok()) {
      // An optimization only: the writer's own Sync still makes its data durable. A real disk
      // error shows there.
      prep_off_ = true;
      prep_ended_.store(true, std::memory_order_relaxed);
      return;
    }
    prepared_bytes_.fetch_add(hi - lo, std::memory_order_relaxed);
    if (seg == prep_seg_) prepared_to_ = hi;
  }
}

}  // namespace cairn::storage

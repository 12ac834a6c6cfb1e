// PgStore: see pg_store.h for the design (ordering, group commit, idempotency window, wake-up).
#include "postgres/pg_store.h"

#include <endian.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "postgres/pg.h"
#include "postgres/schema.h"
#include "storage/append_queue.h"
#include "storage/validate.h"
#include "util/check.h"

namespace cairn::postgres {

using storage::CheckExpected;
using storage::kMetadataType;
using storage::kTombstoneType;
using storage::MetastreamName;
using storage::StreamDeleted;
using storage::StreamNotFound;

namespace {

// Bounds (see STYLE.md: every queue and batch has one).
// Requests in one group commit: one transaction; past it the rest wait for the next group.
constexpr size_t kMaxGroupRequests = 2'000;
// Event bytes in one group commit (one append alone may reach kMaxAppendBytes).
constexpr uint64_t kMaxGroupBytes = 32 << 20;
// Appends waiting for the writer, in bytes. Past it, callers block (back-pressure).
constexpr uint64_t kMaxQueuedBytes = 64 << 20;
// Group-commit gathering: a group costs a round trip or two and a WAL flush whatever its size, so
// when fewer requests wait than the last group had (its callers are still coming back with their
// next append), the writer waits this long at most for them (PostgreSQL's commit_delay idea).
constexpr auto kGatherWait = std::chrono::microseconds(1000);
// Stream states the writer keeps for one-round-trip groups (about 250 bytes each, so at most
// ~32 MiB); past it the cache starts over.
constexpr size_t kMaxCachedStreams = size_t{1} << 17;
// A listening store's row in `listeners` lives this long unless renewed, and is renewed (with the
// head read again under the head lock) every third of it. A store that dies leaves a row that
// makes writers NOTIFY for nobody until it expires and the next registration deletes it.
constexpr auto kListenerTtl = std::chrono::seconds(30);
constexpr auto kListenerRenew = std::chrono::seconds(10);
// Idle reader connections kept for cursors and lookups.
constexpr size_t kMaxIdleReaders = 8;
// Rows per page of a cursor: the first page is small (most reads are), later ones grow.
constexpr int64_t kFirstPageRows = 256;
constexpr int64_t kMaxPageRows = 16'384;
// Position ranges of a forward $all read fetched ahead of the one being walked, each on its own
// reader connection (so at most this many pages of kMaxPageRows rows wait in memory). Three, not
// two: on a machine whose cores other work also wants, a third backend made the read faster (by
// about a fifth, docs/performance.md, PostgreSQL eighth run); idle machines measured no difference.
constexpr size_t kPrefetchRanges = 3;
// Blocks of copied COPY tuples (BlockPool::kBytes each) a forward `$all` cursor keeps between
// ranges: a full range of small events fills about 8, and kPrefetchRanges + 1 ranges are held at
// once; the blocks of the range just walked come back as the next one is fetched.
constexpr size_t kIdleCopyBlocks = 16;

constexpr int64_t kTombstoneVersion = std::numeric_limits<int64_t>::max();  // EventStoreDB's marker
constexpr uint64_t kSoftDeletedTruncateBefore = 0x7fffffffffffffffULL;      // the engine's too

// ---------------------------------------------------------------------------------------------
// URL

struct ParsedPgUrl {
  ConnInfo info;
  std::string schema = "cairn";
  Options options;
  // How often the listener re-reads the head besides NOTIFY (the safety net for a notification
  // lost with a connection).
  uint32_t head_poll_ms = 1000;
  // How long after the last WaitForAppend call the store stays registered as a listener (writers
  // send NOTIFY only while some store is).
  uint32_t listen_idle_ms = 60'000;
  // For tests only: the writer sleeps a random 0..N ms after its group took its positions (under
  // the head lock) and before COMMIT, to widen the window in which a wrong design reorders.
  uint32_t debug_commit_delay_ms = 0;
};

Result<uint64_t> ParseNumber(std::string_view key, std::string_view value) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
    return Status::InvalidArgument(fmt::format("store URL: {}={} is not a non-negative integer", key, value));
  }
  return v;
}

Result<ParsedPgUrl> ParsePgUrl(std::string_view url, const Options& base) {
  ParsedPgUrl out;
  out.options = base;
  std::string_view rest = url;
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::vector<std::string> passed;  // parameters for libpq
  bool has_timeout = false;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (kv.empty()) continue;
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return Status::InvalidArgument(fmt::format("store URL: option \"{}\" has no value", kv));
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "schema") {
      out.schema = std::string(value);
      if (!ValidSchemaName(out.schema)) {
        return Status::InvalidArgument(fmt::format(
            "store URL: schema={} must be 1 to 48 of a-z, 0-9 and _, not starting with a digit", value));
      }
    } else if (key == "sync") {
      if (value == "always") out.options.sync = SyncMode::kAlways;
      else if (value == "interval") out.options.sync = SyncMode::kInterval;
      else if (value == "none") out.options.sync = SyncMode::kNone;
      else return Status::InvalidArgument(fmt::format("store URL: sync={} (expected always, interval or none)", value));
    } else if (key == "idempotency_window") {
      CAIRN_ASSIGN_OR_RETURN(out.options.idempotency_window_events, ParseNumber(key, value));
    } else if (key == "segment_size") {
      CAIRN_ASSIGN_OR_RETURN(out.options.segment_size_bytes, ParseNumber(key, value));
    } else if (key == "head_poll_ms" || key == "debug_commit_delay_ms" || key == "listen_idle_ms") {
      CAIRN_ASSIGN_OR_RETURN(uint64_t v, ParseNumber(key, value));
      if (v == 0 || v > 3'600'000) return Status::InvalidArgument(fmt::format("store URL: {} must be 1 to 3600000", key));
      (key == "head_poll_ms" ? out.head_poll_ms : key == "listen_idle_ms" ? out.listen_idle_ms : out.debug_commit_delay_ms) =
          static_cast<uint32_t>(v);
    } else {
      if (key == "connect_timeout") has_timeout = true;
      passed.emplace_back(kv);
    }
  }
  // An unreachable server should fail the open in seconds, not hang on the OS's TCP timeout.
  if (!has_timeout) passed.emplace_back("connect_timeout=10");
  std::string conninfo(rest);
  for (size_t i = 0; i < passed.size(); ++i) conninfo += (i == 0 ? "?" : "&") + passed[i];
  CAIRN_ASSIGN_OR_RETURN(out.info, ParseConnInfo(conninfo));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rows

// The event header (schema version 4): what a reader needs of an event besides its data and
// metadata, packed into one bytea column, so that a read selects three columns where it selected
// nine (PostgreSQL runs a send function per column and row; for `$all` that was most of the
// server's work). On disk, never change: big-endian like PostgreSQL's binary formats,
//   int64 position, int64 version, 16 bytes event id, int64 recorded_at (ns since the epoch),
//   int16 content type, int32 stream name length, the stream name, then the event type (the rest).
// The writer fills it with the columns it duplicates; rows without one (written by a version 3
// binary) get it built by the server from their columns, in the same layout.
constexpr size_t kHeaderFixedBytes = 8 + 8 + 16 + 8 + 2 + 4;

void PutBig64(std::string* out, int64_t v) {
  const uint64_t b = htobe64(static_cast<uint64_t>(v));
  out->append(reinterpret_cast<const char*>(&b), 8);
}

void EncodeHeader(std::string* out, int64_t position, int64_t version, const Uuid& id, int64_t recorded_at,
                  ContentType ct, std::string_view stream, std::string_view type) {
  out->clear();
  PutBig64(out, position);
  PutBig64(out, version);
  out->append(reinterpret_cast<const char*>(id.bytes.data()), 16);
  PutBig64(out, recorded_at);
  const uint16_t c = htobe16(static_cast<uint16_t>(static_cast<int16_t>(ct)));
  out->append(reinterpret_cast<const char*>(&c), 2);
  const uint32_t n = htobe32(static_cast<uint32_t>(stream.size()));
  out->append(reinterpret_cast<const char*>(&n), 4);
  out->append(stream);
  out->append(type);
}

// The columns every event read selects, in this order: the header (or, for a row written before
// version 4, the same bytes built from its columns), data, metadata.
constexpr std::string_view kEventColumns =
    "coalesce(header, int8send(position) || int8send(version) || uuid_send(event_id) || int8send(recorded_at) || "
    "int2send(content_type) || int4send(octet_length(textsend(stream))) || textsend(stream) || textsend(type)), "
    "data, metadata";

int64_t BigEndian64(std::string_view b) {
  uint64_t v;
  std::memcpy(&v, b.data(), 8);
  return static_cast<int64_t>(be64toh(v));
}

Status DecodeHeader(std::string_view h, RecordedEventView* out) {
  if (h.size() < kHeaderFixedBytes) {
    return Status::Internal(fmt::format("event header of {} bytes, expected at least {}", h.size(), kHeaderFixedBytes));
  }
  out->position = Position(static_cast<uint64_t>(BigEndian64(h.substr(0, 8))));
  out->version = static_cast<uint64_t>(BigEndian64(h.substr(8, 8)));
  std::memcpy(out->id.bytes.data(), h.data() + 16, 16);
  out->recorded_at = Timestamp{BigEndian64(h.substr(32, 8))};
  uint16_t ct;
  std::memcpy(&ct, h.data() + 40, 2);
  out->content_type = static_cast<ContentType>(static_cast<int16_t>(be16toh(ct)));
  uint32_t n;
  std::memcpy(&n, h.data() + 42, 4);
  n = be32toh(n);
  if (n > h.size() - kHeaderFixedBytes) {
    return Status::Internal(fmt::format("event header of {} bytes names a stream of {} bytes", h.size(), n));
  }
  out->stream = h.substr(kHeaderFixedBytes, n);
  out->type = h.substr(kHeaderFixedBytes + n);
  return Status::Ok();
}

// One row of a statement's result over kEventColumns (binary format). Views point into it.
Status FillView(const Res& r, int row, RecordedEventView* out) {
  CAIRN_RETURN_IF_ERROR(DecodeHeader(r.Bytes(row, 0), out));
  out->data = r.Bytes(row, 1);
  out->metadata = r.Bytes(row, 2);
  return Status::Ok();
}

// One tuple of `COPY (SELECT kEventColumns ...) TO STDOUT (FORMAT binary)`: header, data and
// metadata as bytea. Views point into the tuple.
Status DecodeCopyEvent(std::string_view tuple, RecordedEventView* out) {
  std::array<std::string_view, 3> f;
  CAIRN_RETURN_IF_ERROR(SplitCopyTuple(tuple, f));
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i].data() == nullptr)
      return Status::Internal(fmt::format("binary COPY of events: column {} is NULL", i));
  }
  CAIRN_RETURN_IF_ERROR(DecodeHeader(f[0], out));
  out->data = f[1];
  out->metadata = f[2];
  return Status::Ok();
}

// A cursor's page of events: views into the statement's result or into the COPY's tuples, which
// the page owns (moving it moves neither).
struct Page {
  static Result<Page> FromRes(Res r) {
    Page p;
    p.events.resize(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) CAIRN_RETURN_IF_ERROR(FillView(r, i, &p.events[static_cast<size_t>(i)]));
    p.res = std::move(r);
    return p;
  }
  int rows() const { return static_cast<int>(events.size()); }

  Res res;
  CopyRows copy;
  std::vector<RecordedEventView> events;
};

// A stream's row in `streams`, as the writer and readers see it.
struct StreamState {
  bool in_db = false;
  int64_t next_version = 0;  // versions ever written (the next one to write)
  std::optional<int64_t> last_position;
  std::optional<int64_t> tombstone_position;
  bool has_meta = false;
  StreamMetadata metadata;
  bool dirty = false;

  bool tombstoned() const { return tombstone_position.has_value(); }
  bool soft_deleted() const { return metadata.truncate_before == kSoftDeletedTruncateBefore; }
  // What expected versions are checked against: nullopt when no events or soft-deleted.
  std::optional<uint64_t> actual() const {
    return next_version > 0 && !soft_deleted() ? std::optional<uint64_t>(next_version - 1) : std::nullopt;
  }
};

// Columns: name, next_version, last_position, tombstone_position, metadata (from `col`).
StreamState StateFromRow(const Res& r, int row, int col) {
  StreamState s;
  s.in_db = true;
  s.next_version = r.Int64(row, col + 1);
  if (!r.IsNull(row, col + 2)) s.last_position = r.Int64(row, col + 2);
  if (!r.IsNull(row, col + 3)) s.tombstone_position = r.Int64(row, col + 3);
  if (!r.IsNull(row, col + 4)) {
    auto md = StreamMetadata::Parse(r.Bytes(row, col + 4));
    if (md.ok()) {
      s.metadata = std::move(*md);
      s.has_meta = true;
    }
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The store

class PgStore final : public Store {
 public:
  PgStore(ParsedPgUrl url, env::Env* clock) : url_(std::move(url)), clock_(clock) {
    s_ = url_.schema;
    window_ = static_cast<int64_t>(std::min<uint64_t>(url_.options.idempotency_window_events,
                                                      std::numeric_limits<int64_t>::max() / 2));
  }
  ~PgStore() override;

  Status Start();

  Result<AppendResult> Append(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                              const AppendOptions& options) override;
  void AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
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
  Position HeadPosition() const override { return Position(head_.load(std::memory_order_acquire)); }
  Position WaitForAppend(Position after, std::chrono::milliseconds timeout) override;
  Status Close() override;

  // For cursors: a reader connection from the pool, and back.
  Result<std::unique_ptr<Conn>> AcquireReader(bool* pooled = nullptr) const;
  void ReleaseReader(std::unique_ptr<Conn> c) const;
  // The planner settings of a reader connection (see the definition).
  static Status SetReaderPlans(Conn& c);
  // Runs fn(Conn&) -> Result<T> on a reader connection. A pooled connection that turns out broken
  // (the server restarted since it was used) empties the pool and the call is tried once more on
  // a new connection, so that a restart costs the readers nothing but the reconnect.
  template <typename Fn>
  auto WithReader(Fn fn) const -> decltype(fn(std::declval<Conn&>())) {
    for (int attempt = 0;; ++attempt) {
      bool pooled = false;
      auto c = AcquireReader(&pooled);
      if (!c.ok()) return c.status();
      auto r = fn(**c);
      if (!r.ok() && pooled && attempt == 0 && !(*c)->Healthy()) {
        std::lock_guard lock(pool_mu_);
        idle_.clear();
        continue;
      }
      ReleaseReader(std::move(c).value());
      return r;
    }
  }
  const std::string& schema() const { return s_; }
  // Reads the committed head (one past the last position) and moves HeadPosition() up to it.
  Result<int64_t> ReadHead(Conn& c);

 private:
  using Request = storage::AppendRequest;

  // What one group's transaction builds: the rows to insert and the state they lead to.
  struct Group;
  struct KnownEvent {
    std::string stream;
    int64_t version = 0;
    int64_t position = 0;
    int16_t flags = 0;
  };

  void BumpHead(uint64_t head);
  void WriterLoop();
  void ProcessGroup(std::vector<std::unique_ptr<Request>>& group);
  Status RunGroup(std::vector<std::unique_ptr<Request>>& group, std::vector<Result<AppendResult>>* results);
  Result<bool> RunGroupFromCache(Conn& c, std::vector<std::unique_ptr<Request>>& group,
                                 const std::vector<std::string>& names, const std::vector<Uuid>& ids,
                                 std::vector<Result<AppendResult>>* results);
  // Sends the group as one append_events() call into `p`: the checks of a cached group against
  // `expected_last` (the head it was numbered from), `absent` (streams assumed new) and `ids`
  // (client ids assumed not stored), then its rows, stream states, commit record, head and, when
  // a store listens, the NOTIFY.
  void SendWrites(Conn::Pipeline& p, Group& g, int64_t expected_last, std::string absent, std::string ids);
  void DebugCommitDelay(Conn::Pipeline* p);
  void RememberStates(const Group& g);
  // Counts a committed group in stats_; `started_nanos` is when its commit round trip began.
  void CountCommit(const Group& g, int64_t started_nanos);
  void ForgetStates();
  Result<AppendResult> Process(Group& g, Request& req);
  Result<AppendResult> ProcessAppend(Group& g, Request& req, StreamState& st);
  int64_t AddEvent(Group& g, const std::string& stream, int64_t version, const Uuid& id, bool generated, int16_t flags,
                   ContentType ct, std::string_view type, std::string_view data, std::string_view metadata);
  int64_t AddMetadataEvent(Group& g, const std::string& stream, const StreamMetadata& md, int16_t flags);
  Status EnsureWriter();
  void ListenerLoop();
  // Registers this store in `listeners` (or renews its row) and reads the head under the head
  // lock; Unregister deletes the row. The listener connection only.
  Status Register(Conn& c);
  Status Unregister(Conn& c);
  // Raises the head to the highest NOTIFY payload libpq has queued on `c`.
  void DrainNotifications(Conn& c);
  Result<StreamState> LoadStream(Conn& c, std::string_view name, int64_t* head);

  ParsedPgUrl url_;
  env::Env* clock_;
  std::string s_;  // the schema
  int64_t window_ = 0;

  std::atomic<uint64_t> head_{1};
  std::mutex head_mu_;
  std::condition_variable head_cv_;

  storage::AppendQueue queue_{kMaxQueuedBytes};
  std::thread writer_;
  std::unique_ptr<Conn> writer_conn_;  // writer thread only
  // The writer's cache of stream states (writer thread only; see "Appends in one round trip"):
  // exact as of the head row's last_position == cache_last_, unusable while cache_last_ < 0.
  std::unordered_map<std::string, StreamState> cache_;
  int64_t cache_last_ = -1;
  int64_t cache_time_ = 0;


  // Readers.
  // The reader pool: a cache of connections, so const members (Stats) may use it too.
  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<Conn>> idle_;

  // Stats (see cairn/stats.h): counters of this process's writer, under stats_mu_.
  mutable std::mutex stats_mu_;
  StoreStats stats_;
  std::atomic<uint64_t> reads_{0};

  // Listener.
  std::thread listener_;
  int wake_fd_ = -1;
  std::atomic<bool> listener_stop_{false};
  const Uuid listener_id_ = Uuid::V7();
  std::atomic<bool> registered_{false};
  std::atomic<int> waiters_{0};                 // WaitForAppend calls in progress
  std::atomic<int64_t> last_wait_nanos_{-1};    // steady clock; -1: never waited
};

struct PgStore::Group {
  int64_t last = 0;  // the last position assigned so far (the head row's, then this group's)
  int64_t time = 0;
  int64_t first = 0;  // the group's first position, 0 when it wrote nothing yet
  uint64_t bytes = 0;  // stream names, types, data and metadata of the rows
  std::unordered_map<std::string, StreamState> streams;
  std::unordered_map<std::string, KnownEvent> known;  // by the id's 16 bytes
  ArrayBuilder positions{kOidInt8}, names{kOidText}, versions{kOidInt8}, ids{kOidUuid}, types{kOidText},
      content_types{kOidInt2}, flags{kOidInt2}, data{kOidBytea}, metadata{kOidBytea}, headers{kOidBytea};
  std::string header;  // scratch for the event being added
  StreamState& State(const std::string& name) { return streams[name]; }
};

std::string IdKey(const Uuid& id) { return std::string(reinterpret_cast<const char*>(id.bytes.data()), 16); }

PgStore::~PgStore() {
  (void)Close();
  // Here, not in Close(): WaitForAppend may still write to it while Close() runs.
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status PgStore::Start() {
  const Options& o = url_.options;
  if (o.segment_size_bytes < (64 << 10) || o.segment_size_bytes > (uint64_t{1} << 40) || o.segment_size_bytes % 8 != 0) {
    return Status::InvalidArgument(fmt::format(
        "segment_size_bytes is {}: it must be a multiple of 8 between 65536 and 1099511627776 (on PostgreSQL it "
        "bounds one append, as on the embedded engine)",
        o.segment_size_bytes));
  }
  if (o.sync == SyncMode::kInterval && o.sync_interval_ms == 0) {
    return Status::InvalidArgument("sync_interval_ms must be at least 1 with sync=interval");
  }
  {
    CAIRN_ASSIGN_OR_RETURN(auto c, Conn::Connect(url_.info));
    CAIRN_RETURN_IF_ERROR(Migrate(*c, s_));
    CAIRN_ASSIGN_OR_RETURN(int64_t head, ReadHead(*c));
    (void)head;
    CAIRN_RETURN_IF_ERROR(SetReaderPlans(*c));
    ReleaseReader(std::move(c));
  }
  if (o.sync != SyncMode::kAlways) {
    std::fprintf(stderr,
                 "cairn: warning: %s (schema %s) opened with sync=%s: synchronous_commit is off for cairn's writes, "
                 "so acknowledged appends can be lost if PostgreSQL crashes\n",
                 url_.info.where.c_str(), s_.c_str(), o.sync == SyncMode::kNone ? "none" : "interval");
  }
  CAIRN_RETURN_IF_ERROR(EnsureWriter());
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::IOError("eventfd failed");
  listener_ = std::thread([this] { ListenerLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Connections

Result<std::unique_ptr<Conn>> PgStore::AcquireReader(bool* pooled) const {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (pooled != nullptr) *pooled = true;
      return c;
    }
  }
  if (pooled != nullptr) *pooled = false;
  CAIRN_ASSIGN_OR_RETURN(auto c, Conn::Connect(url_.info));
  CAIRN_RETURN_IF_ERROR(SetReaderPlans(*c));
  return c;
}

Status PgStore::SetReaderPlans(Conn& c) {
  // Every read cairn runs has an index that yields its rows in the order asked for (positions,
  // versions, names, times), and reads position or version ranges. Without statistics (a table
  // filled since the last ANALYZE, autovacuum's or anyone's), the planner guessed a bitmap heap
  // scan plus a sort for a range of 16,384 positions, and the sort spilled to disk past work_mem:
  // 34 ms per range against 8 ms for the index scan (EXPLAIN ANALYZE on 1 M events), and the $all
  // read ran at two thirds of its speed until autovacuum happened to analyze the table. Readers
  // take the index order whatever the statistics say.
  return c.Exec("SET enable_bitmapscan = off; SET enable_sort = off").status();
}

void PgStore::ReleaseReader(std::unique_ptr<Conn> c) const {
  if (c == nullptr || !c->Healthy()) return;
  std::lock_guard lock(pool_mu_);
  if (idle_.size() < kMaxIdleReaders) idle_.push_back(std::move(c));
}

Result<int64_t> PgStore::ReadHead(Conn& c) {
  CAIRN_ASSIGN_OR_RETURN(Res r, c.Exec(fmt::format("SELECT last_position FROM {}.head WHERE id = 1", s_), Params()));
  if (r.rows() != 1) return Status::Internal(fmt::format("PostgreSQL schema {}: the head row is missing", s_));
  const int64_t head = r.Int64(0, 0) + 1;
  BumpHead(static_cast<uint64_t>(head));
  return head;
}

void PgStore::BumpHead(uint64_t head) {
  uint64_t cur = head_.load(std::memory_order_acquire);
  bool moved = false;
  while (head > cur) {
    if (head_.compare_exchange_weak(cur, head, std::memory_order_acq_rel)) {
      moved = true;
      break;
    }
  }
  if (moved) {
    { std::lock_guard lock(head_mu_); }
    head_cv_.notify_all();
  }
}

Status PgStore::EnsureWriter() {
  if (writer_conn_ != nullptr && writer_conn_->Healthy()) return Status::Ok();
  writer_conn_.reset();
  CAIRN_ASSIGN_OR_RETURN(auto c, Conn::Connect(url_.info));
  if (url_.options.sync != SyncMode::kAlways) CAIRN_RETURN_IF_ERROR(c->Exec("SET synchronous_commit = off").status());
  // Every statement the writer runs finds its rows through an index. A generic plan made while
  // `streams` or `events` was small chose a sequential scan, and kept it as the tables grew (0.5 ms
  // per group on a fresh schema after a few thousand streams); planning every execution instead
  // cost a fifth of a small group's server time. So plans are made once per connection (and
  // append_events() plans its statements once, with the same setting of its own), and never
  // with a sequential scan where an index serves.
  // (enable_seqscan = off prices a table that has no index for the query, such as `listeners`,
  // past jit_above_cost: JIT compiling such a statement took 30 ms.)
  CAIRN_RETURN_IF_ERROR(c->Exec("SET enable_seqscan = off; SET jit = off").status());
  const std::string& s = s_;
  CAIRN_RETURN_IF_ERROR(c->Prepare("lock_head", fmt::format("SELECT last_position, last_time FROM {}.head WHERE id = 1 FOR UPDATE", s)));
  CAIRN_RETURN_IF_ERROR(c->Prepare("load_streams",
      fmt::format("SELECT name, next_version, last_position, tombstone_position, metadata FROM {}.streams "
                  "WHERE name = ANY($1::text[])", s)));
  CAIRN_RETURN_IF_ERROR(c->Prepare("find_ids",
      fmt::format("SELECT event_id, stream, version, position, flags FROM {}.events "
                  "WHERE event_id = ANY($1::uuid[]) AND (flags & 4) = 0", s)));
  CAIRN_RETURN_IF_ERROR(c->Prepare("append_events",
      fmt::format("SELECT {}.append_events($1::int8, $2::text[], $3::uuid[], $4::int8[], $5::text[], $6::int8[], "
                  "$7::uuid[], $8::text[], $9::int2[], $10::int2[], $11::bytea[], $12::bytea[], $13::bytea[], $14::int8, "
                  "$15::text[], $16::int8[], $17::int8[], $18::int8[], $19::text[])", s)));
  writer_conn_ = std::move(c);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Appends: validation and queueing (caller threads)

namespace {

// The engine's checks, plus what PostgreSQL text cannot hold.
Result<uint64_t> ValidatePgAppend(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                                  const AppendOptions& options, uint64_t segment_size) {
  CAIRN_ASSIGN_OR_RETURN(uint64_t bytes, storage::ValidateAppend(stream, expected, events, options, segment_size));
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].type.find('\0') != std::string::npos) {
      return Status::InvalidArgument(
          fmt::format("event {}: event type contains a NUL byte (PostgreSQL text cannot hold it)", i));
    }
  }
  return bytes;
}

}  // namespace

Result<AppendResult> PgStore::Append(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                                     const AppendOptions& options) {
  auto req = std::make_unique<Request>();
  req->stream = std::string(stream);
  req->expected = expected;
  req->events = events;  // the caller blocks until done: no copy needed
  auto size = ValidatePgAppend(stream, expected, events, options, url_.options.segment_size_bytes);
  if (!size.ok()) return size.status();
  req->bytes = *size;
  return queue_.Submit(std::move(req));
}

void PgStore::AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                          AppendCallback done, const AppendOptions& options) {
  auto req = std::make_unique<Request>();
  req->stream = std::string(stream);
  req->expected = expected;
  req->done = std::move(done);
  auto size = ValidatePgAppend(stream, expected, events, options, url_.options.segment_size_bytes);
  if (!size.ok()) {
    req->error = size.status();
  } else {
    req->owned.assign(events.begin(), events.end());
    req->events = req->owned;
    req->bytes = *size;
  }
  queue_.Enqueue(std::move(req));
}

Result<AppendResult> PgStore::SetStreamMetadata(std::string_view stream, ExpectedVersion expected,
                                                const StreamMetadata& metadata) {
  CAIRN_RETURN_IF_ERROR(storage::ValidateStreamName(stream, /*allow_system=*/true));
  CAIRN_RETURN_IF_ERROR(storage::ValidateExpected(expected));
  if (stream.starts_with("$$")) return Status::InvalidArgument("stream name: a metastream has no metadata of its own");
  std::string json = metadata.ToJson();
  if (json.size() > kMaxEventBytes) {
    return Status::InvalidArgument(fmt::format("stream metadata is {} bytes, the limit is {}", json.size(), kMaxEventBytes));
  }
  auto req = std::make_unique<Request>();
  req->kind = Request::Kind::kMetadata;
  req->stream = std::string(stream);
  req->expected = expected;
  req->metadata = metadata;
  req->bytes = json.size() + stream.size();
  return queue_.Submit(std::move(req));
}

Result<AppendResult> PgStore::DeleteStream(std::string_view stream, ExpectedVersion expected) {
  CAIRN_RETURN_IF_ERROR(storage::ValidateStreamName(stream, /*allow_system=*/false));
  CAIRN_RETURN_IF_ERROR(storage::ValidateExpected(expected));
  auto req = std::make_unique<Request>();
  req->kind = Request::Kind::kDelete;
  req->stream = std::string(stream);
  req->expected = expected;
  req->bytes = 4096;
  return queue_.Submit(std::move(req));
}

Result<AppendResult> PgStore::TombstoneStream(std::string_view stream, ExpectedVersion expected) {
  CAIRN_RETURN_IF_ERROR(storage::ValidateStreamName(stream, /*allow_system=*/false));
  CAIRN_RETURN_IF_ERROR(storage::ValidateExpected(expected));
  auto req = std::make_unique<Request>();
  req->kind = Request::Kind::kTombstone;
  req->stream = std::string(stream);
  req->expected = expected;
  req->bytes = stream.size() + 64;
  return queue_.Submit(std::move(req));
}

// ---------------------------------------------------------------------------------------------
// The writer thread

void PgStore::WriterLoop() {
  std::vector<std::unique_ptr<Request>> group;
  size_t last_group = 0;
  for (;;) {
    storage::AppendQueue::TakeLimits limits;
    limits.max_requests = kMaxGroupRequests;
    limits.max_bytes = kMaxGroupBytes;
    limits.gather_target = last_group;
    limits.gather_wait = kGatherWait;
    if (!queue_.Take(&group, limits)) break;
    last_group = group.size();
    ProcessGroup(group);
    group.clear();
  }
  writer_conn_.reset();
}

void PgStore::ProcessGroup(std::vector<std::unique_ptr<Request>>& group) {
  std::vector<Result<AppendResult>> results;
  results.reserve(group.size());
  Status s = RunGroup(group, &results);
  if (!s.ok()) {
    // The transaction failed as a whole: nothing it would have written is there (or, when the
    // connection broke during COMMIT, nobody knows: the message says to retry, which is safe
    // because retries with the same ids are idempotent).
    writer_conn_.reset();
    ForgetStates();
    results.resize(group.size(), s);
    for (auto& r : results) {
      if (r.ok()) r = s;
    }
  }
  {
    std::lock_guard lock(stats_mu_);
    storage::CountAppendResults(results, &stats_);
  }
  queue_.Complete(group, results);
}

// Appends in one round trip. The writer keeps the state of the streams it has seen (`cache_`),
// exact as long as nobody else has written since: the head row still says cache_last_. A group
// is then checked and numbered from the cache alone, and sent as one statement in an implicit
// transaction: append_events() (schema version 4; append_group() in 3) takes the head lock and
// proves the cache exact (the head has not moved, no stream the cache did not know exists, no event id of the group is
// stored), then makes the writes (events, streams, the commit row, the head, NOTIFY when a store
// listens), and the transaction commits at the pipeline's end. The head lock is held for one
// statement and the WAL flush. When the proof fails (another process or store wrote, a
// stream predates the cache, an id is a retry), the transaction rolls back whole and the group
// runs on the general path below: lock and read, decide, write: two round trips. A group with an
// error also takes that path, so that every error is decided under the lock.
Status PgStore::RunGroup(std::vector<std::unique_ptr<Request>>& group, std::vector<Result<AppendResult>>* results) {
  // Names and ids the group needs, for the lookups (or the cache).
  std::vector<std::string> name_list;
  std::vector<Uuid> id_list;
  {
    std::unordered_map<std::string, bool> seen_names;
    std::unordered_map<std::string, bool> seen_ids;
    auto add_name = [&](std::string n) {
      if (seen_names.emplace(n, true).second) name_list.push_back(std::move(n));
    };
    bool any = false;
    for (const auto& req : group) {
      if (!req->error.ok()) continue;
      any = true;
      add_name(req->stream);
      if (req->stream.starts_with("$$")) {
        add_name(req->stream.substr(2));
      } else {
        add_name(MetastreamName(req->stream));
      }
      if (req->kind == Request::Kind::kAppend && window_ > 0) {
        for (const auto& e : req->events) {
          if (!e.id.IsNil() && seen_ids.emplace(IdKey(e.id), true).second) id_list.push_back(e.id);
        }
      }
    }
    if (!any) {
      for (const auto& req : group) results->push_back(req->error);
      return Status::Ok();
    }
  }
  auto fail_all_with = [&](Status s) { return s.WithContext("append"); };
  Status st = EnsureWriter();
  if (!st.ok()) return fail_all_with(st);
  Conn& c = *writer_conn_;

  if (cache_last_ >= 0) {
    auto done = RunGroupFromCache(c, group, name_list, id_list, results);
    if (!done.ok()) return fail_all_with(done.status());
    if (*done) return Status::Ok();
    results->clear();
  }

  ArrayBuilder names(kOidText), ids(kOidUuid);
  for (const auto& n : name_list) names.Bytes(n);
  for (const auto& id : id_list) ids.Uuid(id);
  Group g;
  int64_t locked_last = 0;
  {
    Conn::Pipeline p(c);
    p.Send("BEGIN", Params());
    p.SendPrepared("lock_head", Params());
    p.SendPrepared("load_streams", Params().Array(names.Finish()));
    if (ids.size() > 0) p.SendPrepared("find_ids", Params().Array(ids.Finish()));
    auto rs = p.Sync();
    if (!rs.ok()) return fail_all_with(rs.status());
    const Res& head = (*rs)[1];
    if (head.rows() != 1) return Status::Internal(fmt::format("PostgreSQL schema {}: the head row is missing", s_));
    g.last = head.Int64(0, 0);
    locked_last = g.last;
    g.time = std::max(clock_->NowNanos(), head.Int64(0, 1));
    // Someone else wrote since the cache was exact: start it over from what this group reads.
    if (g.last != cache_last_) ForgetStates();
    for (const auto& n : name_list) g.streams[n] = StreamState{};
    const Res& streams = (*rs)[2];
    for (int i = 0; i < streams.rows(); ++i) g.streams[std::string(streams.Bytes(i, 0))] = StateFromRow(streams, i, 0);
    if (ids.size() > 0) {
      const Res& found = (*rs)[3];
      for (int i = 0; i < found.rows(); ++i) {
        KnownEvent k{std::string(found.Bytes(i, 1)), found.Int64(i, 2), found.Int64(i, 3), found.Int16(i, 4)};
        std::string key = IdKey(found.GetUuid(i, 0));
        auto it = g.known.find(key);
        if (it == g.known.end() || it->second.position < k.position) g.known[key] = std::move(k);
      }
    }
  }
  // The other processes' commits we just waited behind are visible now.
  BumpHead(static_cast<uint64_t>(g.last + 1));

  for (auto& req : group) {
    results->push_back(req->error.ok() ? Process(g, *req) : Result<AppendResult>(req->error));
  }

  if (g.first == 0) {
    // Nothing to write (every request failed its checks): end the transaction.
    auto r = c.Exec("ROLLBACK");
    if (!r.ok()) return r.status();
    RememberStates(g);
    return Status::Ok();
  }
  DebugCommitDelay(nullptr);
  const int64_t started = clock_->MonotonicNanos();
  {
    Conn::Pipeline p(c);
    // Decided under the lock this transaction holds: nothing for append_events() to re-check.
    SendWrites(p, g, locked_last, ArrayBuilder(kOidText).Finish(), ArrayBuilder(kOidUuid).Finish());
    p.Send("COMMIT", Params());
    auto rs = p.Sync();
    if (!rs.ok()) {
      return Status::Unavailable(fmt::format(
          "{} (the append is not acknowledged; if the connection broke during COMMIT it may have been stored: "
          "retry with the same event ids, which is idempotent)",
          rs.status().message()));
    }
  }
  CountCommit(g, started);
  RememberStates(g);
  BumpHead(static_cast<uint64_t>(g.last + 1));
  return Status::Ok();
}

Result<bool> PgStore::RunGroupFromCache(Conn& c, std::vector<std::unique_ptr<Request>>& group,
                                        const std::vector<std::string>& names, const std::vector<Uuid>& ids,
                                        std::vector<Result<AppendResult>>* results) {
  Group g;
  g.last = cache_last_;
  g.time = std::max(clock_->NowNanos(), cache_time_);
  ArrayBuilder absent(kOidText), id_array(kOidUuid);
  for (const auto& n : names) {
    auto it = cache_.find(n);
    if (it != cache_.end()) {
      g.streams.emplace(n, it->second);
    } else {
      g.streams.emplace(n, StreamState{});  // assumed new: append_events() checks it
      absent.Bytes(n);
    }
  }
  for (const auto& id : ids) id_array.Uuid(id);
  for (auto& req : group) {
    if (!req->error.ok()) {
      results->push_back(req->error);
      continue;
    }
    auto r = Process(g, *req);
    if (!r.ok()) return false;
    results->push_back(std::move(r));
  }
  if (g.first == 0) return false;
  const int64_t started = clock_->MonotonicNanos();
  {
    Conn::Pipeline p(c);
    SendWrites(p, g, cache_last_, absent.Finish(), id_array.Finish());
    DebugCommitDelay(&p);
    auto rs = p.Sync();
    if (!rs.ok()) {
      ForgetStates();
      if (HasSqlstate(rs.status(), kStaleCacheSqlstate)) return false;  // rolled back: nothing was written
      return Status::Unavailable(fmt::format(
          "{} (the append is not acknowledged; if the connection broke during the commit it may have been stored: "
          "retry with the same event ids, which is idempotent)",
          rs.status().message()));
    }
  }
  CountCommit(g, started);
  RememberStates(g);
  BumpHead(static_cast<uint64_t>(g.last + 1));
  return true;
}

void PgStore::SendWrites(Conn::Pipeline& p, Group& g, int64_t expected_last, std::string absent, std::string ids) {
  ArrayBuilder sn(kOidText), sv(kOidInt8), slp(kOidInt8), stp(kOidInt8), smd(kOidText);
  for (const auto& [name, state] : g.streams) {
    if (!state.dirty) continue;
    sn.Bytes(name);
    sv.Int64(state.next_version);
    slp.Int64(state.last_position.value_or(-1));
    stp.Int64(state.tombstone_position.value_or(-1));
    smd.Bytes(state.has_meta ? state.metadata.ToJson() : std::string());
  }
  p.SendPrepared("append_events", Params()
                                     .Int64(expected_last)
                                     .Array(std::move(absent))
                                     .Array(std::move(ids))
                                     .Array(g.positions.Finish())
                                     .Array(g.names.Finish())
                                     .Array(g.versions.Finish())
                                     .Array(g.ids.Finish())
                                     .Array(g.types.Finish())
                                     .Array(g.content_types.Finish())
                                     .Array(g.flags.Finish())
                                     .Array(g.data.Finish())
                                     .Array(g.metadata.Finish())
                                     .Array(g.headers.Finish())
                                     .Int64(g.time)
                                     .Array(sn.Finish())
                                     .Array(sv.Finish())
                                     .Array(slp.Finish())
                                     .Array(stp.Finish())
                                     .Array(smd.Finish()));
}

// The ordering test's delay between taking positions and committing (?debug_commit_delay_ms),
// inside the transaction and holding the head lock: the two-round-trip path sleeps between its
// round trips, the one-round-trip path has the server sleep inside its pipeline.
void PgStore::DebugCommitDelay(Conn::Pipeline* p) {
  if (url_.debug_commit_delay_ms == 0) return;
  thread_local std::mt19937 rng(std::random_device{}());
  const int64_t ms = rng() % (url_.debug_commit_delay_ms + 1);
  if (p == nullptr) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  } else {
    p->Send("SELECT pg_sleep($1::int8 / 1000.0)", Params().Int64(ms));
  }
}

void PgStore::CountCommit(const Group& g, int64_t started_nanos) {
  const double seconds = static_cast<double>(clock_->MonotonicNanos() - started_nanos) / 1e9;
  const uint64_t events = static_cast<uint64_t>(g.last - g.first + 1);
  std::lock_guard lock(stats_mu_);
  stats_.commits++;
  if (url_.options.sync == SyncMode::kAlways) {
    // PostgreSQL flushed the commit's WAL before answering: the flush is inside this time.
    stats_.fsyncs++;
    stats_.fsync_seconds.Observe(seconds);
  }
  stats_.events_written += events;
  stats_.bytes_written += g.bytes;
  stats_.batch_events.Observe(static_cast<double>(events));
}

void PgStore::RememberStates(const Group& g) {
  if (cache_.size() + g.streams.size() > kMaxCachedStreams) cache_.clear();
  for (const auto& [name, state] : g.streams) {
    StreamState& e = cache_[name];
    const bool in_db = e.in_db || state.in_db || state.dirty;
    e = state;
    e.in_db = in_db;
    e.dirty = false;
  }
  cache_last_ = g.last;
  cache_time_ = g.time;
}

void PgStore::ForgetStates() {
  cache_.clear();
  cache_last_ = -1;
}

int64_t PgStore::AddEvent(Group& g, const std::string& stream, int64_t version, const Uuid& id, bool generated,
                          int16_t flags, ContentType ct, std::string_view type, std::string_view data,
                          std::string_view metadata) {
  const int64_t pos = ++g.last;
  if (g.first == 0) g.first = pos;
  const Uuid stored = generated ? Uuid::V7(g.time / 1'000'000) : id;
  if (generated) flags |= kFlagGeneratedId;
  g.bytes += stream.size() + type.size() + data.size() + metadata.size();
  g.positions.Int64(pos);
  g.names.Bytes(stream);
  g.versions.Int64(version);
  g.ids.Uuid(stored);
  g.types.Bytes(type);
  g.content_types.Int16(static_cast<int16_t>(ct));
  g.flags.Int16(flags);
  g.data.Bytes(data);
  g.metadata.Bytes(metadata);
  EncodeHeader(&g.header, pos, version, stored, g.time, ct, stream, type);
  g.headers.Bytes(g.header);
  if (!generated) g.known[IdKey(stored)] = KnownEvent{stream, version, pos, flags};
  return pos;
}

int64_t PgStore::AddMetadataEvent(Group& g, const std::string& stream, const StreamMetadata& md, int16_t flags) {
  const std::string meta_name = MetastreamName(stream);
  StreamState& meta = g.State(meta_name);
  const std::string json = md.ToJson();
  const int64_t pos = AddEvent(g, meta_name, meta.next_version, Uuid{}, true, flags, ContentType::kJson, kMetadataType,
                               json, {});
  meta.next_version++;
  meta.last_position = pos;
  meta.dirty = true;
  StreamState& target = g.State(stream);
  target.metadata = md;
  target.has_meta = true;
  target.dirty = true;
  return pos;
}

Result<AppendResult> PgStore::Process(Group& g, Request& req) {
  StreamState& st = g.State(req.stream);
  if (st.tombstoned()) return StreamDeleted(req.stream);
  const std::optional<uint64_t> actual = st.actual();
  constexpr int16_t kWhole = kFlagStartsAppend | kFlagEndsAppend;

  switch (req.kind) {
    case Request::Kind::kAppend:
      return ProcessAppend(g, req, st);

    case Request::Kind::kMetadata: {
      const std::string meta_name = MetastreamName(req.stream);
      StreamState& meta = g.State(meta_name);
      std::optional<uint64_t> meta_actual;
      if (meta.next_version > 0) meta_actual = meta.next_version - 1;
      CAIRN_RETURN_IF_ERROR(CheckExpected(meta_name, req.expected, meta_actual));
      const uint64_t version = static_cast<uint64_t>(meta.next_version);
      const int64_t pos = AddMetadataEvent(g, req.stream, req.metadata, kWhole);
      return AppendResult{version, version + 1, Position(static_cast<uint64_t>(pos))};
    }

    case Request::Kind::kDelete: {
      CAIRN_RETURN_IF_ERROR(CheckExpected(req.stream, req.expected, actual));
      if (!actual) return StreamNotFound(req.stream);
      StreamMetadata md = st.metadata;
      md.truncate_before = kSoftDeletedTruncateBefore;
      const int64_t pos = AddMetadataEvent(g, req.stream, md, kWhole);
      const uint64_t next = static_cast<uint64_t>(g.State(req.stream).next_version);
      return AppendResult{next, next, Position(static_cast<uint64_t>(pos))};
    }

    case Request::Kind::kTombstone: {
      CAIRN_RETURN_IF_ERROR(CheckExpected(req.stream, req.expected, actual));
      const int64_t pos = AddEvent(g, req.stream, kTombstoneVersion, Uuid{}, true, kWhole, ContentType::kJson,
                                   kTombstoneType, {}, {});
      StreamState& s = g.State(req.stream);
      s.tombstone_position = pos;
      s.dirty = true;
      const uint64_t next = static_cast<uint64_t>(s.next_version);
      return AppendResult{next, next, Position(static_cast<uint64_t>(pos))};
    }
  }
  return Status::Internal("unknown request kind");
}

Result<AppendResult> PgStore::ProcessAppend(Group& g, Request& req, StreamState& st_in) {
  const auto& events = req.events;
  const size_t n = events.size();

  // Idempotency first: a retry of an acknowledged append must succeed even though the stream
  // has since moved past its expected version. Known = stored among the last window_ positions.
  auto known = [&](size_t i) -> const KnownEvent* {
    if (window_ == 0 || events[i].id.IsNil()) return nullptr;
    auto it = g.known.find(IdKey(events[i].id));
    if (it == g.known.end() || it->second.position <= g.last - window_) return nullptr;
    return &it->second;
  };
  const KnownEvent* first = known(0);
  bool any_known = first != nullptr;
  for (size_t i = 1; i < n && !any_known; ++i) any_known = known(i) != nullptr;
  if (any_known) {
    bool same = first != nullptr && first->stream == req.stream && first->version != kTombstoneVersion &&
                (first->flags & kFlagStartsAppend) != 0;
    const KnownEvent* last = first;
    for (size_t i = 1; i < n && same; ++i) {
      const KnownEvent* k = known(i);
      same = k != nullptr && k->stream == req.stream && k->version == first->version + static_cast<int64_t>(i);
      last = k;
    }
    same = same && last != nullptr && (last->flags & kFlagEndsAppend) != 0;
    if (same) {
      const uint64_t v = static_cast<uint64_t>(first->version);
      return AppendResult{v, v + n, Position(static_cast<uint64_t>(first->position))};
    }
    for (size_t i = 0; i < n; ++i) {
      if (const KnownEvent* k = known(i)) {
        return Status::AlreadyExists(
            fmt::format("append to {}: event id {} is already stored in stream {} at version {}, by another append",
                        req.stream, events[i].id.ToString(), k->stream, k->version),
            ErrorDetail::kDuplicateEventId);
      }
    }
  }

  (void)st_in;
  StreamState& st = g.State(req.stream);
  const bool soft_deleted = st.soft_deleted();
  CAIRN_RETURN_IF_ERROR(CheckExpected(req.stream, req.expected, st.actual()));
  if (static_cast<uint64_t>(st.next_version) + n - 1 > kMaxStreamVersion) {
    return Status::InvalidArgument(fmt::format("append to {}: versions would pass the limit {}", req.stream, kMaxStreamVersion));
  }
  if (soft_deleted) {
    // Re-opening a soft-deleted stream: its metadata now truncates before the first new version,
    // written in the same transaction as the events.
    StreamMetadata reopened = st.metadata;
    reopened.truncate_before = static_cast<uint64_t>(st.next_version);
    AddMetadataEvent(g, req.stream, reopened, 0);
  }
  // `$metadata` events appended to a metastream directly (as EventStoreDB's clients write
  // metadata) apply to their stream at once; data that does not parse changes nothing.
  std::string target_name;
  if (req.stream.starts_with("$$")) target_name = req.stream.substr(2);

  StreamState& s = g.State(req.stream);
  const int64_t first_version = s.next_version;
  int64_t first_position = 0;
  for (size_t i = 0; i < n; ++i) {
    const EventData& e = events[i];
    int16_t flags = 0;
    if (i == 0) flags |= kFlagStartsAppend;
    if (i + 1 == n) flags |= kFlagEndsAppend;
    const int64_t pos = AddEvent(g, req.stream, first_version + static_cast<int64_t>(i), e.id, e.id.IsNil(), flags,
                                 e.content_type, e.type, e.data, e.metadata);
    if (i == 0) first_position = pos;
    s.last_position = pos;
    if (!target_name.empty() && e.type == kMetadataType) {
      auto md = StreamMetadata::Parse(e.data);
      if (md.ok()) {
        StreamState& target = g.State(target_name);
        target.metadata = std::move(*md);
        target.has_meta = true;
        target.dirty = true;
      }
    }
  }
  s.next_version += static_cast<int64_t>(n);
  s.dirty = true;
  const uint64_t fv = static_cast<uint64_t>(first_version);
  return AppendResult{fv, fv + n, Position(static_cast<uint64_t>(first_position))};
}

// ---------------------------------------------------------------------------------------------
// Reads

namespace {

// Reads pages of events with a reader connection per page (the connection goes back to the pool
// between pages, so an idle cursor holds none). Views point into the current page.
class PageCursor : public CursorImpl {
 public:
  // `query(from_exclusive_or_inclusive, rows)` runs one page.
  using PageFn = std::function<Result<Res>(Conn&, int64_t rows)>;

  PageCursor(PgStore& store, uint64_t max_count) : store_(store), remaining_(max_count) {}

  bool Next(RecordedEventView* out) override {
    while (status_.ok()) {
      if (row_ < page_.rows()) {
        *out = page_.events[static_cast<size_t>(row_)];
        row_++;
        remaining_--;
        Advance(*out);
        return true;
      }
      if (exhausted_ || remaining_ == 0) {
        Finish();
        return false;
      }
      const int64_t rows = static_cast<int64_t>(std::min<uint64_t>(remaining_, static_cast<uint64_t>(page_rows_)));
      auto page = store_.WithReader([&](Conn& c) { return Fetch(c, rows); });
      if (!page.ok()) {
        status_ = page.status();
        return false;
      }
      page_ = std::move(page).value();
      row_ = 0;
      if (LastPage(page_, rows)) exhausted_ = true;
      page_rows_ = std::min(page_rows_ * 4, kMaxPageRows);
    }
    return false;
  }
  Status status() const override { return status_; }

 protected:
  virtual Result<Page> Fetch(Conn& c, int64_t rows) = 0;
  // Whether `page`, asked for `rows` rows, was the last one.
  virtual bool LastPage(const Page& page, int64_t rows) const { return page.rows() < rows; }
  virtual void Advance(const RecordedEventView& e) = 0;
  virtual void Finish() {}

  PgStore& store_;
  uint64_t remaining_;

 private:
  Page page_;
  int row_ = 0;
  int64_t page_rows_ = kFirstPageRows;
  bool exhausted_ = false;
  Status status_;
};

class AllCursor final : public PageCursor {
 public:
  AllCursor(PgStore& store, const ReadAllOptions& options, int64_t limit)
      : PageCursor(store, options.max_count), forward_(options.direction == ReadDirection::kForward), limit_(limit) {
    const uint64_t from = options.from.value();
    if (forward_) {
      next_ = static_cast<int64_t>(std::min<uint64_t>(from, static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
    } else {
      next_ = std::min<int64_t>(static_cast<int64_t>(std::min<uint64_t>(from, uint64_t{1} << 62)), limit_);
    }
    checkpoint_ = from;
    // The filter in SQL: one parameter per criterion, after the three of the page.
    const EventFilter& f = options.filter;
    int n = 4;
    if (!f.stream_prefixes.empty()) {
      ArrayBuilder a(kOidText);
      for (const auto& p : f.stream_prefixes) a.Bytes(p);
      where_ += fmt::format(" AND EXISTS (SELECT 1 FROM unnest(${}::text[]) AS p WHERE starts_with(stream, p))", n++);
      filter_.push_back(a.Finish());
    }
    if (!f.categories.empty()) {
      ArrayBuilder a(kOidText);
      for (const auto& p : f.categories) a.Bytes(p);
      where_ += fmt::format(" AND split_part(stream, '-', 1) = ANY(${}::text[])", n++);
      filter_.push_back(a.Finish());
    }
    if (!f.event_types.empty()) {
      ArrayBuilder a(kOidText);
      for (const auto& p : f.event_types) a.Bytes(p);
      where_ += fmt::format(" AND type = ANY(${}::text[])", n++);
      filter_.push_back(a.Finish());
    }
    if (f.exclude_system_events) where_ += " AND NOT starts_with(type, '$')";
    ranges_ = forward_ && filter_.empty() && where_.empty();
    range_next_ = next_;
  }

  Position checkpoint() const override { return Position(checkpoint_); }

 protected:
  Result<Page> Fetch(Conn& c, int64_t rows) override {
    if (ranges_) return FetchRange(c, rows);
    Params p;
    std::string sql;
    if (forward_) {
      sql = fmt::format("SELECT {} FROM {}.events WHERE position >= $1 AND position < $2{} ORDER BY position LIMIT $3",
                        kEventColumns, store_.schema(), where_);
      p.Int64(next_).Int64(limit_).Int64(rows);
    } else {
      sql = fmt::format("SELECT {} FROM {}.events WHERE position < $1 AND position >= $2{} ORDER BY position DESC LIMIT $3",
                        kEventColumns, store_.schema(), where_);
      p.Int64(next_).Int64(0).Int64(rows);
    }
    for (const auto& a : filter_) p.Array(a);
    CAIRN_ASSIGN_OR_RETURN(Res r, c.Exec(sql, p));
    return Page::FromRes(std::move(r));
  }
  bool LastPage(const Page& page, int64_t rows) const override {
    return ranges_ ? range_next_ >= limit_ : PageCursor::LastPage(page, rows);
  }
  void Advance(const RecordedEventView& e) override {
    const int64_t pos = static_cast<int64_t>(e.position.value());
    if (forward_) {
      next_ = pos + 1;
      checkpoint_ = static_cast<uint64_t>(pos + 1);
    } else {
      next_ = pos;
      checkpoint_ = static_cast<uint64_t>(pos);
    }
  }
  void Finish() override {
    // Forward, the whole range up to the limit was scanned (a filter may have skipped the rest).
    if (forward_ && remaining_ > 0 && checkpoint_ < static_cast<uint64_t>(limit_)) checkpoint_ = static_cast<uint64_t>(limit_);
  }

 private:
  // Forward without a filter, pages are position ranges (positions are dense below the head, and
  // a range with gaps just yields fewer rows), so the next pages do not depend on this one's
  // rows: the next kPrefetchRanges ranges are fetched, each on another reader connection, while
  // the caller walks this one. Several PostgreSQL backends then produce rows at once (producing
  // them costs the server about twice what decoding them costs this thread).
  Result<Page> FetchRange(Conn& c, int64_t rows) {
    const int64_t lo = range_next_;
    const int64_t hi = lo >= limit_ ? lo : lo + std::min(rows, limit_ - lo);  // no overflow near INT64_MAX
    Result<Page> page = Page();
    if (!ahead_.empty() && ahead_.front().lo == lo && ahead_.front().hi == hi) {
      page = ahead_.front().rows.get();
      ahead_.pop_front();
    } else {
      // Prefetched ranges that are not the one asked for (max_count cut the page short).
      for (auto& a : ahead_) a.rows.wait();
      ahead_.clear();
      page = RunRange(c, lo, hi);
    }
    range_next_ = hi;
    if (!page.ok() || hi >= limit_) return page;
    // The next pages are as long as this one or, while pages still grow, four times as long; the
    // cursor asks for min(remaining, page size), so guess that (assuming every position below
    // the head is an event) and refetch on a miss.
    int64_t next_lo = ahead_.empty() ? hi : ahead_.back().hi;
    int64_t size = ahead_.empty() ? rows : ahead_.back().hi - ahead_.back().lo;
    const int64_t remaining = static_cast<int64_t>(std::min<uint64_t>(remaining_, uint64_t{1} << 40));
    while (ahead_.size() < kPrefetchRanges && next_lo < limit_) {
      const int64_t left = remaining - (next_lo - lo);
      if (left <= 0) break;
      size = std::min({size * 4, kMaxPageRows, left});
      const int64_t next_hi = next_lo + std::min(size, limit_ - next_lo);
      Ahead a;
      a.lo = next_lo;
      a.hi = next_hi;
      a.rows = std::async(std::launch::async, [this, next_lo, next_hi] {
        return store_.WithReader([&](Conn& c2) { return RunRange(c2, next_lo, next_hi); });
      });
      ahead_.push_back(std::move(a));
      next_lo = next_hi;
    }
    return page;
  }
  // A range in binary COPY: each row's bytes are copied once, whole, into blocks of the cursor's
  // pool (CopyOut), and the page decodes them in place as they arrive, where a statement's result
  // copies every value into the PGresult first and decodes after the last row. COPY takes no
  // parameters, so the bounds are integer literals.
  Result<Page> RunRange(Conn& c, int64_t lo, int64_t hi) {
    Page page;
    page.events.reserve(static_cast<size_t>(hi - lo));
    CAIRN_ASSIGN_OR_RETURN(
        page.copy,
        c.CopyOut(fmt::format("SELECT {} FROM {}.events WHERE position >= {} AND position < {} ORDER BY position",
                              kEventColumns, store_.schema(), lo, hi),
                  [&page](std::string_view tuple) { return DecodeCopyEvent(tuple, &page.events.emplace_back()); },
                  pool_));
    return page;
  }

  bool forward_;
  int64_t limit_;  // positions below it are visible to this cursor
  bool ranges_ = false;
  int64_t range_next_ = 0;  // the next range's first position
  struct Ahead {
    int64_t lo = 0, hi = 0;
    std::future<Result<Page>> rows;
  };
  // Memory the ranges' tuples are copied into, reused from range to range (pages hold it too).
  // Declared before ahead_, so that it outlives the fetches ahead_'s destruction waits for.
  std::shared_ptr<BlockPool> pool_ = std::make_shared<BlockPool>(kIdleCopyBlocks);
  std::deque<Ahead> ahead_;  // ranges being fetched, in order, starting at range_next_
  int64_t next_;
  uint64_t checkpoint_;
  std::string where_;
  std::vector<std::string> filter_;
};

class StreamCursor final : public PageCursor {
 public:
  // Versions [lo, hi) visible (hi = the stream's next version), positions below `limit`.
  StreamCursor(PgStore& store, std::string stream, const ReadStreamOptions& options, int64_t lo, int64_t hi,
               int64_t limit)
      : PageCursor(store, options.max_count), stream_(std::move(stream)), forward_(options.direction == ReadDirection::kForward),
        lo_(lo), hi_(hi), limit_(limit) {
    if (forward_) {
      next_ = std::max<int64_t>(lo_, options.from ? static_cast<int64_t>(*options.from) : 0);
    } else {
      next_ = std::min<int64_t>(hi_ - 1, options.from ? static_cast<int64_t>(*options.from) : hi_ - 1);
    }
  }
  Position checkpoint() const override { return Position(checkpoint_); }

 protected:
  Result<Page> Fetch(Conn& c, int64_t rows) override {
    if (forward_ ? next_ >= hi_ : next_ < lo_) return Page();
    Params p;
    p.Text(stream_).Int64(next_).Int64(forward_ ? hi_ : lo_).Int64(limit_).Int64(rows);
    std::string sql =
        forward_ ? fmt::format("SELECT {} FROM {}.events WHERE stream = $1 AND version >= $2 AND version < $3 AND "
                               "position < $4 ORDER BY version LIMIT $5",
                               kEventColumns, store_.schema())
                 : fmt::format("SELECT {} FROM {}.events WHERE stream = $1 AND version <= $2 AND version >= $3 AND "
                               "position < $4 ORDER BY version DESC LIMIT $5",
                               kEventColumns, store_.schema());
    CAIRN_ASSIGN_OR_RETURN(Res r, c.Exec(sql, p));
    return Page::FromRes(std::move(r));
  }
  void Advance(const RecordedEventView& e) override {
    const int64_t v = static_cast<int64_t>(e.version);
    next_ = forward_ ? v + 1 : v - 1;
    checkpoint_ = e.position.value();
  }

 private:
  std::string stream_;
  bool forward_;
  int64_t lo_, hi_, limit_;
  int64_t next_;
  uint64_t checkpoint_ = 0;
};

}  // namespace

Result<StreamState> PgStore::LoadStream(Conn& c, std::string_view name, int64_t* head) {
  // One statement, one snapshot: the stream's row as of the head read with it.
  CAIRN_ASSIGN_OR_RETURN(
      Res r, c.Exec(fmt::format("SELECT h.last_position, s.name, s.next_version, s.last_position, s.tombstone_position, "
                                "s.metadata FROM {0}.head h LEFT JOIN {0}.streams s ON s.name = $1 WHERE h.id = 1",
                                s_),
                    Params().Text(name)));
  if (r.rows() != 1) return Status::Internal(fmt::format("PostgreSQL schema {}: the head row is missing", s_));
  *head = r.Int64(0, 0) + 1;
  BumpHead(static_cast<uint64_t>(*head));
  if (r.IsNull(0, 1)) return StreamState{};
  return StateFromRow(r, 0, 1);
}

Result<EventCursor> PgStore::ReadStream(std::string_view stream, const ReadStreamOptions& options) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  CAIRN_RETURN_IF_ERROR(storage::ValidateStreamName(stream, /*allow_system=*/true));
  if (options.from && *options.from > kMaxStreamVersion) {
    return Status::InvalidArgument(fmt::format("from version {} exceeds the limit {}", *options.from, kMaxStreamVersion));
  }
  int64_t limit = 0;
  CAIRN_ASSIGN_OR_RETURN(StreamState st, WithReader([&](Conn& c) { return LoadStream(c, stream, &limit); }));
  if (!st.in_db) return StreamNotFound(stream);
  if (st.tombstoned()) return StreamDeleted(stream);
  if (st.next_version == 0 || st.soft_deleted()) return StreamNotFound(stream);
  if (options.as_of) {
    CAIRN_ASSIGN_OR_RETURN(Position at, PositionAtTime(*options.as_of));
    if (at != Position::End()) limit = std::min<int64_t>(limit, static_cast<int64_t>(at.value()));
  }
  const int64_t size = st.next_version;
  int64_t lo = 0;
  const StreamMetadata& md = st.metadata;
  if (md.truncate_before) lo = std::max<int64_t>(lo, static_cast<int64_t>(std::min<uint64_t>(*md.truncate_before, uint64_t{1} << 62)));
  if (md.max_count) {
    const uint64_t keep = *md.max_count;
    lo = std::max<int64_t>(lo, static_cast<uint64_t>(size) > keep ? size - static_cast<int64_t>(keep) : 0);
  }
  if (md.max_age_seconds && lo < size) {
    const int64_t cutoff =
        clock_->NowNanos() - static_cast<int64_t>(std::min<uint64_t>(*md.max_age_seconds, 1ULL << 32)) * 1'000'000'000;
    // Times never decrease with versions: the first young enough event, then all after it.
    CAIRN_ASSIGN_OR_RETURN(Res r, WithReader([&](Conn& c) {
      return c.Exec(fmt::format("SELECT version FROM {}.events WHERE stream = $1 AND version >= $2 AND version < $3 "
                                "AND recorded_at >= $4 ORDER BY version LIMIT 1",
                                s_),
                    Params().Text(stream).Int64(lo).Int64(size).Int64(cutoff));
    }));
    lo = r.rows() == 0 ? size : r.Int64(0, 0);
  }
  return EventCursor(std::make_unique<StreamCursor>(*this, std::string(stream), options, lo, size, limit));
}

Result<EventCursor> PgStore::ReadAll(const ReadAllOptions& options) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  CAIRN_ASSIGN_OR_RETURN(int64_t limit, WithReader([&](Conn& c) { return ReadHead(c); }));
  if (options.as_of) {
    CAIRN_ASSIGN_OR_RETURN(Position at, PositionAtTime(*options.as_of));
    if (at != Position::End()) limit = std::min<int64_t>(limit, static_cast<int64_t>(at.value()));
  }
  return EventCursor(std::make_unique<AllCursor>(*this, options, limit));
}

Result<Position> PgStore::PositionAtTime(Timestamp time) {
  // Every event of one commit has its recorded time, and times never decrease with positions:
  // the first event after `time` is the first of the first commit after it.
  CAIRN_ASSIGN_OR_RETURN(Res r, WithReader([&](Conn& c) {
    return c.Exec(fmt::format("SELECT first_position FROM {}.commits WHERE recorded_at > $1 "
                              "ORDER BY recorded_at, first_position LIMIT 1",
                              s_),
                  Params().Int64(time.nanos));
  }));
  if (r.rows() == 0) return Position::End();
  return Position(static_cast<uint64_t>(r.Int64(0, 0)));
}

Result<StreamInfo> PgStore::GetStreamInfo(std::string_view stream) {
  CAIRN_RETURN_IF_ERROR(storage::ValidateStreamName(stream, /*allow_system=*/true));
  const std::string meta_name = MetastreamName(stream);
  auto r = WithReader([&](Conn& c) {
    return c.Exec(fmt::format("SELECT name, next_version, last_position, tombstone_position, metadata FROM {}.streams "
                              "WHERE name = $1 OR name = $2",
                              s_),
                  Params().Text(stream).Text(meta_name));
  });
  if (!r.ok()) return r.status();
  StreamInfo info;
  for (int i = 0; i < r->rows(); ++i) {
    StreamState st = StateFromRow(*r, i, 0);
    if (r->Bytes(i, 0) == meta_name && meta_name != stream) {
      if (st.next_version > 0) info.metadata_version = static_cast<uint64_t>(st.next_version - 1);
      continue;
    }
    info.tombstoned = st.tombstoned();
    info.deleted = st.soft_deleted() && !info.tombstoned;
    info.exists = st.next_version > 0 && !info.deleted && !info.tombstoned;
    if (st.next_version > 0) {
      info.last_version = static_cast<uint64_t>(st.next_version - 1);
      if (st.last_position) info.last_position = Position(static_cast<uint64_t>(*st.last_position));
    }
    info.metadata = st.metadata;
  }
  return info;
}

Result<std::vector<StreamSummary>> PgStore::ListStreams(const ListStreamsOptions& options) {
  if (options.max_count == 0 || options.max_count > kMaxListStreams) {
    return Status::InvalidArgument(fmt::format("max_count {} is outside 1..{}", options.max_count, kMaxListStreams));
  }
  if (options.prefix.size() > kMaxStreamNameBytes) {
    return Status::InvalidArgument(fmt::format("prefix of {} bytes exceeds the limit of {} bytes", options.prefix.size(),
                                               kMaxStreamNameBytes));
  }
  const bool system = options.include_system || options.prefix.starts_with('$');
  // streams.name is COLLATE "C": the primary key's order is the bytewise order the API promises.
  // A stream only ever given metadata has no events and no tombstone: not listed.
  CAIRN_ASSIGN_OR_RETURN(Res r, WithReader([&](Conn& c) {
    return c.Exec(fmt::format("SELECT name, next_version, last_position, tombstone_position, metadata FROM {}.streams "
                              "WHERE name > $1 AND starts_with(name, $2) AND (next_version > 0 OR tombstone_position "
                              "IS NOT NULL){} ORDER BY name LIMIT $3",
                              s_, system ? "" : " AND NOT starts_with(name, '$')"),
                  Params().Text(options.after).Text(options.prefix).Int64(static_cast<int64_t>(options.max_count)));
  }));
  std::vector<StreamSummary> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    const StreamState st = StateFromRow(r, i, 0);
    StreamSummary sum;
    sum.name = std::string(r.Bytes(i, 0));
    sum.last_version = st.next_version > 0 ? static_cast<uint64_t>(st.next_version - 1) : 0;
    sum.last_position = Position(static_cast<uint64_t>(st.last_position.value_or(0)));
    sum.tombstoned = st.tombstoned();
    sum.deleted = !sum.tombstoned && st.soft_deleted();
    out.push_back(std::move(sum));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Wake-up and life cycle

StoreStats PgStore::Stats() const {
  StoreStats out;
  {
    std::lock_guard lock(stats_mu_);
    out = stats_;
  }
  out.reads = reads_.load(std::memory_order_relaxed);
  // The totals are the database's, whoever wrote them: positions are dense from 1, so the head
  // row counts the events; disk use is the schema's tables with their indexes and TOAST.
  auto totals = WithReader([&](Conn& c) {
    return c.Exec(fmt::format("SELECT (SELECT last_position FROM {0}.head WHERE id = 1), "
                              "(SELECT count(*) FROM {0}.streams)::int8, "
                              "(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r')",
                              s_),
                  Params().Text(s_));
  });
  if (totals.ok() && totals->rows() == 1) {
    out.total_events = static_cast<uint64_t>(totals->Int64(0, 0));
    out.streams = static_cast<uint64_t>(totals->Int64(0, 1));
    out.disk_bytes = static_cast<uint64_t>(totals->Int64(0, 2));
    out.head = Position(std::max<uint64_t>(out.total_events + 1, HeadPosition().value()));
  } else {
    out.head = HeadPosition();
  }
  return out;
}

namespace {
int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Position PgStore::WaitForAppend(Position after, std::chrono::milliseconds timeout) {
  waiters_.fetch_add(1);
  last_wait_nanos_.store(SteadyNanos());
  if (!registered_.load() && wake_fd_ >= 0) {
    // The listener registers (and reads the head under the head lock) before it can be woken by
    // NOTIFY: until then this waits for that read.
    uint64_t one = 1;
    ssize_t w = write(wake_fd_, &one, sizeof one);
    (void)w;
  }
  {
    std::unique_lock lock(head_mu_);
    head_cv_.wait_for(lock, timeout, [&] {
      return head_.load(std::memory_order_acquire) > after.value() || queue_.closed();
    });
  }
  last_wait_nanos_.store(SteadyNanos());
  waiters_.fetch_sub(1);
  return HeadPosition();
}

// Wake-up without a NOTIFY per commit when nobody waits. A store registers in `listeners` only
// while someone calls WaitForAppend (and listen_idle_ms after), and append_events() (or a version
// 3 binary's append_group()) sends NOTIFY only while a row there is alive. No commit is missed by a store that registers: it LISTENs
// first, then in one transaction writes its row and reads the head with FOR SHARE, which waits for
// a writer holding the head lock and is waited for by the next one. A writer that took the lock
// before the registration commits the head the registration then reads; a writer that takes it
// after checks `listeners` in a statement that starts after the registration committed, sees the
// row, and notifies. The listener also re-reads the head every head_poll_ms, registered or not:
// the safety net for a lost connection, and how HeadPosition() follows other processes' commits
// while nobody waits.
Status PgStore::Register(Conn& c) {
  // One implicit transaction (a pipeline up to its sync): rolled back whole if refused.
  Conn::Pipeline p(c);
  p.Send(fmt::format("DELETE FROM {}.listeners WHERE expires_at < now()", s_), Params());
  p.Send(fmt::format("INSERT INTO {}.listeners (id, expires_at) VALUES ($1::uuid, now() + $2::int8 * interval '1 second') "
                     "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                     s_),
         Params().Text(listener_id_.ToString())
             .Int64(std::chrono::duration_cast<std::chrono::seconds>(kListenerTtl).count()));
  p.Send(fmt::format("SELECT last_position FROM {}.head WHERE id = 1 FOR SHARE", s_), Params());
  CAIRN_ASSIGN_OR_RETURN(auto rs, p.Sync());
  if (rs[2].rows() != 1) return Status::Internal(fmt::format("PostgreSQL schema {}: the head row is missing", s_));
  BumpHead(static_cast<uint64_t>(rs[2].Int64(0, 0) + 1));
  return Status::Ok();
}

Status PgStore::Unregister(Conn& c) {
  CAIRN_RETURN_IF_ERROR(c.Exec(fmt::format("DELETE FROM {}.listeners WHERE id = $1::uuid", s_),
                               Params().Text(listener_id_.ToString()))
                            .status());
  return c.Exec("UNLISTEN *").status();
}

void PgStore::DrainNotifications(Conn& c) {
  std::string channel, payload;
  uint64_t best = 0;
  while (c.NextNotification(&channel, &payload)) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), v);
    if (ec == std::errc() && p == payload.data() + payload.size()) best = std::max(best, v);
  }
  if (best != 0) BumpHead(best);
}

void PgStore::ListenerLoop() {
  std::unique_ptr<Conn> c;
  bool registered = false;
  const std::string listen = fmt::format("LISTEN \"{}\"", s_);
  const int64_t poll_nanos = int64_t{url_.head_poll_ms} * 1'000'000;
  const int64_t idle_nanos = int64_t{url_.listen_idle_ms} * 1'000'000;
  const int64_t renew_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(kListenerRenew).count();
  int64_t next_poll = 0, next_renew = 0;
  int64_t next_try = 0;  // when to try registering again after a refusal (a hot standby refuses)
  auto drop = [&] {
    c.reset();
    registered = false;
    registered_.store(false);
  };
  while (!listener_stop_.load()) {
    int64_t now = SteadyNanos();
    if (c == nullptr) {
      auto conn = Conn::Connect(url_.info);
      if (conn.ok() && ReadHead(**conn).ok()) {
        c = std::move(conn).value();
        next_poll = now + poll_nanos;
      } else {
        pollfd w{wake_fd_, POLLIN, 0};
        (void)poll(&w, 1, 500);
        continue;
      }
    }
    const int64_t last_wait = last_wait_nanos_.load();
    const bool want = waiters_.load() > 0 || (last_wait >= 0 && now - last_wait < idle_nanos);
    if (want && (registered ? now >= next_renew : now >= next_try)) {
      if ((!registered && !c->Exec(listen).ok()) || !Register(*c).ok()) {
        registered = false;
        registered_.store(false);
        if (!c->Healthy()) {
          drop();
          continue;
        }
        // Refused on a working connection: a hot standby (no LISTEN, no writes there). The head
        // re-read every head_poll_ms is then the only wake-up; try again later.
        (void)c->Exec("UNLISTEN *");
        next_try = now + renew_nanos;
      } else {
        registered = true;
        registered_.store(true);
        next_renew = now + renew_nanos;
      }
    } else if (!want && registered) {
      registered = false;
      registered_.store(false);
      if (!Unregister(*c).ok()) {
        drop();
        continue;
      }
    }
    // Notifications that libpq read from the socket while it waited for a command's answer
    // (Register, ReadHead) are already in its queue: the socket will not wake poll() for them.
    DrainNotifications(*c);
    int64_t deadline = next_poll;
    if (registered) {
      deadline = std::min(deadline, next_renew);
      if (waiters_.load() == 0) deadline = std::min(deadline, last_wait + idle_nanos);
    }
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>((deadline - now + 999'999) / 1'000'000, 0, 3'600'000));
    pollfd fds[2] = {{c->socket(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = poll(fds, 2, timeout_ms);
    if (listener_stop_.load()) break;
    if (n > 0 && fds[1].revents != 0) {
      uint64_t count = 0;
      ssize_t r = read(wake_fd_, &count, sizeof count);
      (void)r;
    }
    if (n > 0 && fds[0].revents != 0) {
      if (!c->ConsumeInput().ok()) {
        drop();
        continue;
      }
      DrainNotifications(*c);
    }
    now = SteadyNanos();
    if (now >= next_poll) {
      // The safety net: a notification lost with a connection is caught here.
      if (!ReadHead(*c).ok()) {
        drop();
        continue;
      }
      next_poll = now + poll_nanos;
    }
  }
  if (c != nullptr && registered) (void)Unregister(*c);
}

Status PgStore::Close() {
  if (!queue_.Stop()) return Status::Ok();
  if (writer_.joinable()) writer_.join();
  queue_.MarkClosed();
  listener_stop_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t w = write(wake_fd_, &one, sizeof one);
    (void)w;
  }
  if (listener_.joinable()) listener_.join();
  if (wake_fd_ >= 0) {
  }
  { std::lock_guard lock(head_mu_); }
  head_cv_.notify_all();
  {
    std::lock_guard lock(pool_mu_);
    idle_.clear();
  }
  return Status::Ok();
}

Result<std::unique_ptr<Store>> OpenPgStore(std::string_view url, const Options& options, env::Env* clock) {
  CAIRN_ASSIGN_OR_RETURN(ParsedPgUrl parsed, ParsePgUrl(url, options));
  auto store = std::make_unique<PgStore>(std::move(parsed), clock != nullptr ? clock : env::Env::Posix());
  CAIRN_RETURN_IF_ERROR(store->Start());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace cairn::postgres

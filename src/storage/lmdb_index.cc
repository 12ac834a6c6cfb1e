// The persistent index tier on LMDB (format: docs/format/index.md).
//
// Four named databases in one environment:
//   streams    stream key -> StreamRow (with the full name, so a hashed key is checked)
//   positions  (stream id, chunk) big-endian -> up to kChunk positions, little-endian u64
//   marks      (time, position) big-endian -> records before position
//   head       "head" -> IndexHead
// Why LMDB: readers run without locks against a consistent snapshot while the writer commits,
// which is what the engine's readers and its one writer need; B+tree lookups are a few page
// reads; and it is a well-kept library in Debian. The environment is opened with
// MDB_NOMETASYNC: a power loss may lose the last commit, never the database's integrity, and a
// lost commit only makes the engine scan a longer log tail at open.
#include <fmt/format.h>
#include <lmdb.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "storage/index_store.h"
#include "util/coding.h"

namespace cairn::storage {

namespace {

constexpr uint64_t kChunk = 128;  // positions per value: 1 KiB, so values stay inside a page
constexpr size_t kMaxPlainKey = 480;  // below LMDB's 511-byte key limit
constexpr uint64_t kMapSize = uint64_t{1} << 40;  // address space reserved, not disk used

Status LmdbError(std::string_view what, int rc) {
  return Status::IOError(fmt::format("index {}: {}", what, mdb_strerror(rc)));
}

void PutBE64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetBE64(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}
// Times sort as unsigned big-endian once the sign bit is flipped.
uint64_t TimeKey(int64_t t) { return static_cast<uint64_t>(t) ^ (uint64_t{1} << 63); }
int64_t TimeFromKey(uint64_t k) { return static_cast<int64_t>(k ^ (uint64_t{1} << 63)); }

std::string StreamKey(std::string_view name) {
  if (name.size() <= kMaxPlainKey) return std::string(name);
  // Long names: a prefix and a 128-bit hash of the whole name (the row holds the name itself).
  std::string key(name.substr(0, kMaxPlainKey - 16));
  const XXH128_hash_t h = XXH3_128bits(name.data(), name.size());
  PutBE64(&key, h.high64);
  PutBE64(&key, h.low64);
  return key;
}

std::string ChunkKey(uint64_t id, uint64_t chunk) {
  std::string k;
  PutBE64(&k, id);
  PutBE64(&k, chunk);
  return k;
}

void PutU64(std::string* out, uint64_t v) {
  char b[8];
  util::EncodeU64(b, v);
  out->append(b, 8);
}

std::string EncodeRow(std::string_view name, const StreamRow& r) {
  std::string v;
  PutU64(&v, r.id);
  PutU64(&v, r.count);
  PutU64(&v, r.last_position);
  PutU64(&v, r.tombstone);
  v.push_back(r.has_meta ? 1 : 0);
  PutU64(&v, name.size());
  v.append(name);
  PutU64(&v, r.metadata_json.size());
  v.append(r.metadata_json);
  return v;
}

bool DecodeRow(std::string_view v, std::string_view name, StreamRow* r) {
  if (v.size() < 41) return false;
  const char* p = v.data();
  r->id = util::DecodeU64(p);
  r->count = util::DecodeU64(p + 8);
  r->last_position = util::DecodeU64(p + 16);
  r->tombstone = util::DecodeU64(p + 24);
  r->has_meta = p[32] != 0;
  const uint64_t n = util::DecodeU64(p + 33);
  if (n > v.size() - 41) return false;
  if (std::string_view(p + 41, n) != name) return false;
  size_t off = 41 + n;
  if (v.size() - off < 8) return false;
  const uint64_t j = util::DecodeU64(p + off);
  off += 8;
  if (j != v.size() - off) return false;
  r->metadata_json.assign(p + off, j);
  return true;
}

std::string EncodeHead(const IndexHead& h) {
  std::string v;
  PutU64(&v, h.position);
  PutU64(&v, h.capacity);
  PutU64(&v, h.crc);
  PutU64(&v, h.records);
  PutU64(&v, static_cast<uint64_t>(h.last_time));
  PutU64(&v, h.next_stream_id);
  PutU64(&v, h.segment_ends.size());
  for (uint64_t e : h.segment_ends) PutU64(&v, e);
  return v;
}

bool DecodeHead(std::string_view v, IndexHead* h) {
  if (v.size() < 56) return false;
  const char* p = v.data();
  h->position = util::DecodeU64(p);
  h->capacity = util::DecodeU64(p + 8);
  h->crc = static_cast<uint32_t>(util::DecodeU64(p + 16));
  h->records = util::DecodeU64(p + 24);
  h->last_time = static_cast<int64_t>(util::DecodeU64(p + 32));
  h->next_stream_id = util::DecodeU64(p + 40);
  const uint64_t n = util::DecodeU64(p + 48);
  if (n != (v.size() - 56) / 8 || (v.size() - 56) % 8 != 0) return false;
  h->segment_ends.resize(n);
  for (uint64_t i = 0; i < n; ++i) h->segment_ends[i] = util::DecodeU64(p + 56 + 8 * i);
  return true;
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// Read-only transaction handles kept for reuse. mdb_txn_begin allocates a handle (calloc) and
// mdb_txn_abort frees it, once per read: for the writer, which looks up every stream that is new
// to the memtable, that was about a tenth of its time with 16 writers of one event each
// (docs/performance.md, the server's eighth run). A reset handle is renewed instead: no
// allocation. LMDB binds a reader slot to a thread, not to a handle (no MDB_NOTLS), so a handle
// may be renewed on any thread whose slot is free; each thread holds one read at a time here.
class ReadTxnPool {
 public:
  ~ReadTxnPool() { Clear(); }
  // Aborts the idle handles (before the environment closes).
  void Clear() {
    std::lock_guard lock(mu_);
    for (MDB_txn* txn : idle_) mdb_txn_abort(txn);
    idle_.clear();
  }
  // A handle to renew, or nullptr.
  MDB_txn* Take() {
    std::lock_guard lock(mu_);
    if (idle_.empty()) return nullptr;
    MDB_txn* txn = idle_.back();
    idle_.pop_back();
    return txn;
  }
  // A reset handle; aborted when the pool holds enough.
  void Give(MDB_txn* txn) {
    {
      std::lock_guard lock(mu_);
      if (idle_.size() < kMaxIdle) {
        idle_.push_back(txn);
        return;
      }
    }
    mdb_txn_abort(txn);
  }

 private:
  static constexpr size_t kMaxIdle = 16;
  std::mutex mu_;
  std::vector<MDB_txn*> idle_;
};

// A read-only transaction from the pool (or new), reset and given back when it goes out of scope.
class ReadTxn {
 public:
  ReadTxn(MDB_env* env, ReadTxnPool* pool) : pool_(pool) {
    txn_ = pool_->Take();
    if (txn_ != nullptr) {
      rc_ = mdb_txn_renew(txn_);
      if (rc_ == 0) return;
      mdb_txn_abort(txn_);
      txn_ = nullptr;
    }
    rc_ = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_);
    if (rc_ != 0) txn_ = nullptr;
  }
  ~ReadTxn() {
    if (txn_ == nullptr) return;
    mdb_txn_reset(txn_);
    pool_->Give(txn_);
  }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  int rc() const { return rc_; }
  MDB_txn* get() const { return txn_; }

 private:
  ReadTxnPool* pool_;
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &c_); }
  ~Cursor() {
    if (c_ != nullptr) mdb_cursor_close(c_);
  }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  int rc() const { return rc_; }
  MDB_cursor* get() const { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
  int rc_ = 0;
};

class LmdbIndex final : public IndexStore {
 public:
  ~LmdbIndex() override {
    read_pool_.Clear();  // its handles go before the environment
    if (env_ != nullptr) mdb_env_close(env_);
  }

  Status Init(const std::string& path) {
    int rc = mdb_env_create(&env_);
    if (rc != 0) return LmdbError("create", rc);
    if ((rc = mdb_env_set_mapsize(env_, kMapSize)) != 0) return LmdbError("map size", rc);
    if ((rc = mdb_env_set_maxdbs(env_, 8)) != 0) return LmdbError("max dbs", rc);
    // One slot per thread with a read open at a time: servers read from many threads.
    if ((rc = mdb_env_set_maxreaders(env_, 4096)) != 0) return LmdbError("max readers", rc);
    if ((rc = mdb_env_open(env_, path.c_str(), MDB_NOMETASYNC | MDB_NORDAHEAD, 0644)) != 0) {
      return LmdbError(fmt::format("open {}", path), rc);
    }
    int dead = 0;
    (void)mdb_reader_check(env_, &dead);  // slots left by a crashed process
    MDB_txn* txn = nullptr;
    if ((rc = mdb_txn_begin(env_, nullptr, 0, &txn)) != 0) return LmdbError("begin", rc);
    const std::pair<const char*, MDB_dbi*> dbs[] = {
        {"streams", &streams_}, {"positions", &positions_}, {"marks", &marks_}, {"head", &head_}};
    for (const auto& [name, dbi] : dbs) {
      if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi)) != 0) {
        mdb_txn_abort(txn);
        return LmdbError(fmt::format("open database {}", name), rc);
      }
    }
    if ((rc = mdb_txn_commit(txn)) != 0) return LmdbError("commit", rc);
    return Status::Ok();
  }

  Result<std::optional<StreamRow>> GetStream(std::string_view name) const override {
    ReadTxn txn(env_, &read_pool_);
    if (txn.rc() != 0) return LmdbError("read", txn.rc());
    const std::string key = StreamKey(name);
    MDB_val k = Val(key), v;
    const int rc = mdb_get(txn.get(), streams_, &k, &v);
    if (rc == MDB_NOTFOUND) return std::optional<StreamRow>();
    if (rc != 0) return LmdbError("read stream", rc);
    StreamRow row;
    if (!DecodeRow(View(v), name, &row)) {
      return Status::Corruption(fmt::format("index: the row of stream {} does not decode", name));
    }
    return std::optional<StreamRow>(std::move(row));
  }

  Status ListStreams(std::string_view prefix, std::string_view after, size_t max,
                     std::vector<std::pair<std::string, StreamRow>>* out) const override {
    // Keys are the names themselves, except that long names share their first kLongKeyPrefix
    // bytes with a hash after them: keys with the same first kLongKeyPrefix bytes (a "group")
    // may be out of name order, so a group is always taken whole and the caller sorts.
    static constexpr size_t kGroup = kMaxPlainKey - 16;
    auto group_of = [](std::string_view key) { return key.substr(0, std::min(key.size(), kGroup)); };
    ReadTxn txn(env_, &read_pool_);
    if (txn.rc() != 0) return LmdbError("read", txn.rc());
    Cursor c(txn.get(), streams_);
    if (c.rc() != 0) return LmdbError("cursor", c.rc());
    std::string start = std::max(std::string(prefix), std::string(after));
    start = std::string(group_of(StreamKey(start)));
    const std::string_view prefix_key = group_of(prefix);
    MDB_val k = Val(start), v;
    size_t taken = 0;
    std::string last_group;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, start.empty() ? MDB_FIRST : MDB_SET_RANGE); rc != MDB_NOTFOUND;
         rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
      if (rc != 0) return LmdbError("list streams", rc);
      const std::string_view key = View(k);
      if (key.substr(0, std::min(key.size(), prefix_key.size())) > prefix_key) break;
      if (taken >= max && group_of(key) != last_group) break;
      const std::string_view val = View(v);
      if (val.size() < 41) return Status::Corruption("index: a stream row does not decode");
      const uint64_t n = util::DecodeU64(val.data() + 33);
      if (n > val.size() - 41) return Status::Corruption("index: a stream row does not decode");
      std::string name(val.substr(41, n));
      if (!name.starts_with(prefix) || name <= after) continue;
      StreamRow row;
      if (!DecodeRow(val, name, &row)) {
        return Status::Corruption(fmt::format("index: the row of stream {} does not decode", name));
      }
      out->emplace_back(std::move(name), std::move(row));
      ++taken;
      last_group = std::string(group_of(key));
    }
    return Status::Ok();
  }

  Status GetPositions(uint64_t id, uint64_t from, uint64_t n, std::vector<uint64_t>* out) const override {
    if (n == 0) return Status::Ok();
    ReadTxn txn(env_, &read_pool_);
    if (txn.rc() != 0) return LmdbError("read", txn.rc());
    Cursor c(txn.get(), positions_);
    if (c.rc() != 0) return LmdbError("cursor", c.rc());
    uint64_t next = from;
    const uint64_t end = from + n;
    const std::string first = ChunkKey(id, from / kChunk);
    MDB_val k = Val(first), v;
    int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_KEY);
    while (next < end) {
      if (rc != 0 || k.mv_size != 16 || GetBE64(k.mv_data) != id || GetBE64(static_cast<char*>(k.mv_data) + 8) != next / kChunk) {
        return rc != 0 && rc != MDB_NOTFOUND
                   ? LmdbError("read positions", rc)
                   : Status::Corruption(fmt::format("index: stream number {} lacks the position of version {}", id, next));
      }
      const uint64_t have = v.mv_size / 8;
      const uint64_t off = next % kChunk;
      const uint64_t take = std::min(end - next, have > off ? have - off : 0);
      if (take == 0) {
        return Status::Corruption(fmt::format("index: stream number {} lacks the position of version {}", id, next));
      }
      const char* p = static_cast<const char*>(v.mv_data) + off * 8;
      for (uint64_t i = 0; i < take; ++i) out->push_back(util::DecodeU64(p + 8 * i));
      next += take;
      if (next < end) rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
    }
    return Status::Ok();
  }

  Result<std::optional<TimeMark>> LastMarkAtOrBefore(int64_t t) const override {
    ReadTxn txn(env_, &read_pool_);
    if (txn.rc() != 0) return LmdbError("read", txn.rc());
    Cursor c(txn.get(), marks_);
    if (c.rc() != 0) return LmdbError("cursor", c.rc());
    // The first key past (t, max), then one back.
    MDB_val k, v;
    int rc;
    if (t == INT64_MAX) {
      rc = mdb_cursor_get(c.get(), &k, &v, MDB_LAST);
    } else {
      std::string after;
      PutBE64(&after, TimeKey(t + 1));
      PutBE64(&after, 0);
      k = Val(after);
      rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE);
      rc = rc == MDB_NOTFOUND ? mdb_cursor_get(c.get(), &k, &v, MDB_LAST) : mdb_cursor_get(c.get(), &k, &v, MDB_PREV);
    }
    if (rc == MDB_NOTFOUND) return std::optional<TimeMark>();
    if (rc != 0) return LmdbError("read marks", rc);
    return std::optional<TimeMark>(DecodeMark(k, v));
  }

  Result<std::optional<TimeMark>> LastMarkWithRecordsAtMost(uint64_t n) const override {
    ReadTxn txn(env_, &read_pool_);
    if (txn.rc() != 0) return LmdbError("read", txn.rc());
    Cursor c(txn.get(), marks_);
    if (c.rc() != 0) return LmdbError("cursor", c.rc());
    // Marks are few (one per kEvery records at most per millisecond): walk back from the end.
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_LAST); rc != MDB_NOTFOUND;
         rc = mdb_cursor_get(c.get(), &k, &v, MDB_PREV)) {
      if (rc != 0) return LmdbError("read marks", rc);
      TimeMark m = DecodeMark(k, v);
      if (m.records <= n) return std::optional<TimeMark>(m);
    }
    return std::optional<TimeMark>();
  }

  Result<IndexHead> Head() const override {
    ReadTxn txn(env_, &read_pool_);
    if (txn.rc() != 0) return LmdbError("read", txn.rc());
    MDB_val k = Val("head"), v;
    const int rc = mdb_get(txn.get(), head_, &k, &v);
    IndexHead h;
    if (rc == MDB_NOTFOUND) return h;
    if (rc != 0) return LmdbError("read head", rc);
    if (!DecodeHead(View(v), &h)) return Status::Corruption("index: the head record does not decode");
    return h;
  }

  Status Write(const IndexBatch& batch) override {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc != 0) return LmdbError("begin", rc);
    Status s = WriteIn(txn, batch);
    if (!s.ok()) {
      mdb_txn_abort(txn);
      return s;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) return LmdbError("commit", rc);
    return Status::Ok();
  }

  Status Clear() override {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc != 0) return LmdbError("begin", rc);
    for (MDB_dbi dbi : {streams_, positions_, marks_, head_}) {
      if ((rc = mdb_drop(txn, dbi, 0)) != 0) {
        mdb_txn_abort(txn);
        return LmdbError("clear", rc);
      }
    }
    if ((rc = mdb_txn_commit(txn)) != 0) return LmdbError("commit", rc);
    return Status::Ok();
  }

 private:
  static TimeMark DecodeMark(const MDB_val& k, const MDB_val& v) {
    TimeMark m;
    m.time = TimeFromKey(GetBE64(k.mv_data));
    m.position = GetBE64(static_cast<const char*>(k.mv_data) + 8);
    m.records = v.mv_size == 8 ? util::DecodeU64(v.mv_data) : 0;
    return m;
  }

  Status Put(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::string_view value, const char* what) {
    MDB_val k = Val(key), v = Val(value);
    const int rc = mdb_put(txn, dbi, &k, &v, 0);
    return rc == 0 ? Status::Ok() : LmdbError(what, rc);
  }

  Status WriteIn(MDB_txn* txn, const IndexBatch& batch) {
    std::string value;
    for (const auto& s : batch.streams) {
      CAIRN_RETURN_IF_ERROR(Put(txn, streams_, StreamKey(s.name), EncodeRow(s.name, s.row), "write stream"));
      uint64_t version = s.first_new_version;
      size_t i = 0;
      while (i < s.new_positions.size()) {
        const uint64_t chunk = version / kChunk;
        const std::string key = ChunkKey(s.row.id, chunk);
        value.clear();
        if (version % kChunk != 0) {
          // The chunk holding the versions before `version` gets the new ones appended.
          MDB_val k = Val(key), v;
          const int rc = mdb_get(txn, positions_, &k, &v);
          if (rc != 0 || v.mv_size != (version % kChunk) * 8) {
            return rc != 0 && rc != MDB_NOTFOUND
                       ? LmdbError("read positions", rc)
                       : Status::Corruption(fmt::format("index: stream {} lacks positions before version {}", s.name, version));
          }
          value.assign(static_cast<const char*>(v.mv_data), v.mv_size);
        }
        while (i < s.new_positions.size() && value.size() < kChunk * 8) {
          PutU64(&value, s.new_positions[i++]);
          version++;
        }
        CAIRN_RETURN_IF_ERROR(Put(txn, positions_, key, value, "write positions"));
      }
    }
    for (const TimeMark& m : batch.marks) {
      std::string key;
      PutBE64(&key, TimeKey(m.time));
      PutBE64(&key, m.position);
      value.clear();
      PutU64(&value, m.records);
      CAIRN_RETURN_IF_ERROR(Put(txn, marks_, key, value, "write marks"));
    }
    return Put(txn, head_, "head", EncodeHead(batch.head), "write head");
  }

  MDB_env* env_ = nullptr;
  MDB_dbi streams_ = 0, positions_ = 0, marks_ = 0, head_ = 0;
  mutable ReadTxnPool read_pool_;
};

}  // namespace

Result<std::unique_ptr<IndexStore>> OpenLmdbIndex(const std::string& path) {
  auto index = std::make_unique<LmdbIndex>();
  CAIRN_RETURN_IF_ERROR(index->Init(path));
  return std::unique_ptr<IndexStore>(std::move(index));
}

}  // namespace cairn::storage

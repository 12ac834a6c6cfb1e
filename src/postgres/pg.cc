#include "postgres/pg.h"

#include <endian.h>
#include <fmt/format.h>
#include <libpq-fe.h>

#include "util/check.h"

namespace cairn::postgres {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void PutU32(std::string* out, uint32_t v) {
  v = htobe32(v);
  out->append(reinterpret_cast<const char*>(&v), 4);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Res

Res::Res(pg_result* r) : r_(r) {}
Res::~Res() {
  if (r_ != nullptr) PQclear(r_);
}
Res& Res::operator=(Res&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}
int Res::rows() const { return r_ == nullptr ? 0 : PQntuples(r_); }
int Res::columns() const { return r_ == nullptr ? 0 : PQnfields(r_); }
uint32_t Res::ColumnType(int col) const { return PQftype(r_, col); }
bool Res::IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
std::string_view Res::Bytes(int row, int col) const {
  return std::string_view(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}
int64_t Res::Int64(int row, int col) const {
  CAIRN_CHECK(PQgetlength(r_, row, col) == 8);
  uint64_t v;
  std::memcpy(&v, PQgetvalue(r_, row, col), 8);
  return static_cast<int64_t>(be64toh(v));
}
int16_t Res::Int16(int row, int col) const {
  CAIRN_CHECK(PQgetlength(r_, row, col) == 2);
  uint16_t v;
  std::memcpy(&v, PQgetvalue(r_, row, col), 2);
  return static_cast<int16_t>(be16toh(v));
}
Uuid Res::GetUuid(int row, int col) const {
  CAIRN_CHECK(PQgetlength(r_, row, col) == 16);
  Uuid u;
  std::memcpy(u.bytes.data(), PQgetvalue(r_, row, col), 16);
  return u;
}
bool Res::Bool(int row, int col) const {
  CAIRN_CHECK(PQgetlength(r_, row, col) == 1);
  return PQgetvalue(r_, row, col)[0] != 0;
}

// ---------------------------------------------------------------------------------------------
// Binary COPY

std::unique_ptr<char[]> BlockPool::Take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<char[]> b = std::move(idle_.back());
      idle_.pop_back();
      return b;
    }
  }
  return std::make_unique_for_overwrite<char[]>(kBytes);
}
void BlockPool::Give(std::unique_ptr<char[]> block) {
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(block));
}
size_t BlockPool::idle() const {
  std::lock_guard lock(mu_);
  return idle_.size();
}

CopyRows::~CopyRows() { Free(); }
CopyRows::CopyRows(CopyRows&& o) noexcept { *this = std::move(o); }
CopyRows& CopyRows::operator=(CopyRows&& o) noexcept {
  if (this != &o) {
    Free();
    pool_ = std::move(o.pool_);
    blocks_ = std::move(o.blocks_);
    used_ = o.used_;
    large_ = std::move(o.large_);
    rows_ = std::move(o.rows_);
    o.blocks_.clear();
    o.large_.clear();
    o.rows_.clear();
    o.used_ = BlockPool::kBytes;
  }
  return *this;
}
void CopyRows::Free() {
  for (auto& b : blocks_) {
    if (pool_) pool_->Give(std::move(b));
  }
  blocks_.clear();
  large_.clear();
  rows_.clear();
  used_ = BlockPool::kBytes;
}
std::string_view CopyRows::Keep(std::string_view tuple) {
  char* at;
  if (tuple.size() > BlockPool::kBytes / 4) {
    large_.push_back(std::make_unique_for_overwrite<char[]>(tuple.size()));
    at = large_.back().get();
  } else {
    if (BlockPool::kBytes - used_ < tuple.size()) {
      blocks_.push_back(pool_ ? pool_->Take() : std::make_unique_for_overwrite<char[]>(BlockPool::kBytes));
      used_ = 0;
    }
    at = blocks_.back().get() + used_;
    used_ += tuple.size();
  }
  std::memcpy(at, tuple.data(), tuple.size());
  return std::string_view(at, tuple.size());
}

namespace {
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return be32toh(v);
}
uint16_t GetU16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return be16toh(v);
}
// The binary COPY file header's signature (PostgreSQL's "COPY" documentation, "Binary Format").
constexpr std::string_view kCopySignature("PGCOPY\n\377\r\n\0", 11);
}  // namespace

Status SplitCopyTuple(std::string_view tuple, std::span<std::string_view> out) {
  if (tuple.size() < 2)
    return Status::Internal(fmt::format("binary COPY: a tuple of {} bytes has no field count", tuple.size()));
  const size_t fields = GetU16(tuple.data());
  if (fields != out.size()) {
    return Status::Internal(
        fmt::format("binary COPY: a tuple has {} fields, expected {}", fields, out.size()));
  }
  size_t at = 2;
  for (size_t i = 0; i < fields; ++i) {
    if (tuple.size() - at < 4)
      return Status::Internal(fmt::format("binary COPY: field {} has no length (tuple truncated)", i));
    const int32_t len = static_cast<int32_t>(GetU32(tuple.data() + at));
    at += 4;
    if (len == -1) {
      out[i] = std::string_view();
      continue;
    }
    if (len < 0 || static_cast<size_t>(len) > tuple.size() - at) {
      return Status::Internal(
          fmt::format("binary COPY: field {} claims {} bytes, {} are left", i, len, tuple.size() - at));
    }
    out[i] = tuple.substr(at, static_cast<size_t>(len));
    at += static_cast<size_t>(len);
  }
  if (at != tuple.size()) {
    return Status::Internal(
        fmt::format("binary COPY: {} bytes after the last field of a tuple", tuple.size() - at));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Params and arrays

void Params::Add(uint32_t oid, std::string bytes, bool null, int format) {
  values_.push_back(std::move(bytes));
  nulls_.push_back(null);
  oids_.push_back(oid);
  formats_.push_back(format);
}
Params& Params::Untyped(std::string text) {
  Add(0, std::move(text), false, 0);
  return *this;
}
Params& Params::UntypedNull() {
  Add(0, std::string(), true, 0);
  return *this;
}
Params& Params::Int64(int64_t v) {
  uint64_t be = htobe64(static_cast<uint64_t>(v));
  Add(kOidInt8, std::string(reinterpret_cast<const char*>(&be), 8));
  return *this;
}
Params& Params::Text(std::string_view v) {
  Add(kOidText, std::string(v));
  return *this;
}
Params& Params::Bytes(std::string_view v) {
  Add(kOidBytea, std::string(v));
  return *this;
}
Params& Params::Null(uint32_t oid) {
  Add(oid, std::string(), true);
  return *this;
}
Params& Params::Array(std::string encoded) {
  // The array's type comes from the SQL cast ($1::int8[]); the element type inside the bytes
  // must match it.
  Add(0, std::move(encoded));
  return *this;
}

void Params::Prepare(std::vector<const char*>* values, std::vector<int>* lengths, std::vector<int>* formats,
                     std::vector<unsigned>* types) const {
  values->clear();
  lengths->clear();
  formats->clear();
  types->clear();
  for (size_t i = 0; i < values_.size(); ++i) {
    values->push_back(nulls_[i] ? nullptr : values_[i].data());
    lengths->push_back(static_cast<int>(values_[i].size()));
    formats->push_back(formats_[i]);
    types->push_back(oids_[i]);
  }
}

void ArrayBuilder::Int64(int64_t v) {
  PutU32(&body_, 8);
  uint64_t be = htobe64(static_cast<uint64_t>(v));
  body_.append(reinterpret_cast<const char*>(&be), 8);
  count_++;
}
void ArrayBuilder::Int16(int16_t v) {
  PutU32(&body_, 2);
  uint16_t be = htobe16(static_cast<uint16_t>(v));
  body_.append(reinterpret_cast<const char*>(&be), 2);
  count_++;
}
void ArrayBuilder::Uuid(const cairn::Uuid& v) {
  PutU32(&body_, 16);
  body_.append(reinterpret_cast<const char*>(v.bytes.data()), 16);
  count_++;
}
void ArrayBuilder::Bytes(std::string_view v) {
  PutU32(&body_, static_cast<uint32_t>(v.size()));
  body_.append(v);
  count_++;
}
uint32_t ArrayBuilder::array_oid() const {
  switch (oid_) {
    case kOidInt8: return 1016;
    case kOidInt2: return 1005;
    case kOidText: return 1009;
    case kOidBytea: return 1001;
    case kOidUuid: return 2951;
    case kOidBool: return 1000;
  }
  CAIRN_CHECK_MSG(false, "unknown array element type");
  return 0;
}
std::string ArrayBuilder::Finish() const {
  std::string out;
  out.reserve(20 + body_.size());
  if (count_ == 0) {
    PutU32(&out, 0);  // no dimensions
    PutU32(&out, 0);
    PutU32(&out, oid_);
    return out;
  }
  PutU32(&out, 1);  // dimensions
  PutU32(&out, 0);  // has NULLs
  PutU32(&out, oid_);
  PutU32(&out, static_cast<uint32_t>(count_));
  PutU32(&out, 1);  // lower bound
  out += body_;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Conn

Result<ConnInfo> ParseConnInfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err != nullptr ? Trim(err) : "out of memory";
    if (err != nullptr) PQfreemem(err);
    return Status::InvalidArgument(fmt::format("store URL: PostgreSQL connection string: {}", msg));
  }
  std::string host, hostaddr, port, db, user;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view k = o->keyword;
    if (k == "host") host = o->val;
    if (k == "hostaddr") hostaddr = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
    if (k == "user") user = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = hostaddr.empty() ? "localhost" : hostaddr;
  if (port.empty()) port = "5432";
  ConnInfo info;
  info.conninfo = conninfo;
  info.where = fmt::format("{}:{}/{}", host, port, db.empty() ? user : db);
  return info;
}

Result<std::unique_ptr<Conn>> Conn::Connect(const ConnInfo& info) {
  PGconn* c = PQconnectdb(info.conninfo.c_str());
  if (c == nullptr) return Status::ResourceExhausted("PostgreSQL: libpq could not allocate a connection");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = Trim(PQerrorMessage(c));
    PQfinish(c);
    return Status::Unavailable(fmt::format("PostgreSQL at {} is unreachable: {}", info.where, msg));
  }
  // Binary results carry raw bytes; text parameters and names travel as UTF-8.
  PQsetClientEncoding(c, "UTF8");
  // A library does not print: the server's NOTICEs (e.g. "drop cascades to ...") are dropped.
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Conn>(new Conn(c, info.where));
}

Conn::~Conn() { PQfinish(c_); }

bool Conn::Healthy() const {
  return PQstatus(c_) == CONNECTION_OK && PQtransactionStatus(c_) == PQTRANS_IDLE;
}

Status Conn::Error(std::string_view what) const {
  std::string msg = Trim(PQerrorMessage(c_));
  return Status::Unavailable(fmt::format("PostgreSQL at {}: {}: {}", where_, what, msg));
}

Status Conn::ResultError(pg_result* r, std::string_view what) const {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  std::string sqlstate = state != nullptr ? state : "";
  std::string msg = Trim(PQresultErrorMessage(r));
  if (msg.empty()) msg = Trim(PQerrorMessage(c_));
  std::string text = fmt::format("PostgreSQL at {}: {}: {}{}", where_, what, msg,
                                 sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")");
  // Transient classes: connection exceptions, resources, operator intervention (shutdown, crash
  // recovery), serialization failures and deadlocks. Retrying the same call may succeed.
  if (sqlstate.empty() || sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("57P") ||
      sqlstate.starts_with("40") || PQstatus(c_) != CONNECTION_OK) {
    return Status::Unavailable(std::move(text));
  }
  return Status::Internal(std::move(text));
}

bool HasSqlstate(const Status& s, std::string_view sqlstate) {
  return !s.ok() && s.message().ends_with(fmt::format(" (SQLSTATE {})", sqlstate));
}

Result<Res> Conn::Check(pg_result* r, std::string_view what) {
  if (r == nullptr) return Error(what);
  const ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Res(r);
  Status s = ResultError(r, what);
  PQclear(r);
  return s;
}

Result<Res> Conn::Exec(std::string_view sql) {
  std::string q(sql);
  return Check(PQexec(c_, q.c_str()), sql.substr(0, std::min<size_t>(sql.size(), 60)));
}

Result<Res> Conn::Exec(std::string_view sql, const Params& params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<unsigned> types;
  params.Prepare(&values, &lengths, &formats, &types);
  std::string q(sql);
  return Check(PQexecParams(c_, q.c_str(), params.count(), types.data(), values.data(), lengths.data(),
                            formats.data(), 1),
               sql.substr(0, std::min<size_t>(sql.size(), 60)));
}

Result<Res> Conn::ExecText(std::string_view sql, const Params& params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<unsigned> types;
  params.Prepare(&values, &lengths, &formats, &types);
  std::string q(sql);
  return Check(PQexecParams(c_, q.c_str(), params.count(), types.data(), values.data(), lengths.data(),
                            formats.data(), 0),
               sql.substr(0, std::min<size_t>(sql.size(), 60)));
}

Result<CopyRows> Conn::CopyOut(std::string_view query) { return CopyOut(query, nullptr); }

Result<CopyRows> Conn::CopyOut(std::string_view query, const std::function<Status(std::string_view)>& on_row,
                               std::shared_ptr<BlockPool> pool) {
  const std::string sql = fmt::format("COPY ({}) TO STDOUT (FORMAT binary)", query);
  const std::string_view what = std::string_view(sql).substr(0, std::min<size_t>(sql.size(), 60));
  PGresult* start = PQexec(c_, sql.c_str());
  if (start == nullptr) return Error(what);
  if (PQresultStatus(start) != PGRES_COPY_OUT) {
    Result<Res> failed = Check(start, what);  // an error, or a statement that was not COPY TO
    if (!failed.ok()) return failed.status();
    return Status::Internal(fmt::format("PostgreSQL at {}: {}: not a COPY TO STDOUT", where_, what));
  }
  PQclear(start);
  CopyRows out;
  out.pool_ = std::move(pool);
  Status bad;  // the data is read to its end even when malformed, so that the connection stays usable
  bool header = true, trailer = false;
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(c_, &buf, 0);
    if (n == -1) break;  // done: the final result follows
    if (n < 0) return Error(what);
    std::unique_ptr<char, void (*)(void*)> owned(buf, PQfreemem);  // freed here, once copied
    std::string_view row(buf, static_cast<size_t>(n));
    if (header) {
      // Signature, flags (no OIDs: 0), the header extension's length and the extension.
      header = false;
      if (row.size() < 19 || row.substr(0, 11) != kCopySignature || GetU32(row.data() + 11) != 0 ||
          GetU32(row.data() + 15) > row.size() - 19) {
        if (bad.ok())
          bad = Status::Internal("binary COPY: the data does not start with the binary COPY header");
        continue;
      }
      row.remove_prefix(19 + GetU32(row.data() + 15));
      if (row.empty()) continue;  // the header came alone
    }
    if (row.size() == 2 && GetU16(row.data()) == 0xffff) {
      trailer = true;
      continue;
    }
    if (trailer && bad.ok()) bad = Status::Internal("binary COPY: data after the trailer");
    if (!bad.ok()) continue;  // nothing more is kept or looked at: the call fails
    const std::string_view kept = out.Keep(row);
    out.rows_.push_back(kept);
    if (on_row) bad = on_row(kept);
  }
  Result<Res> end = Check(PQgetResult(c_), what);
  for (PGresult* r = PQgetResult(c_); r != nullptr; r = PQgetResult(c_)) PQclear(r);
  CAIRN_RETURN_IF_ERROR(end.status());
  if (bad.ok() && !trailer) bad = Status::Internal("binary COPY: the data ended without its trailer");
  if (!bad.ok()) return bad;
  return out;
}

Status Conn::Prepare(const std::string& name, std::string_view sql) {
  std::string q(sql);
  auto r = Check(PQprepare(c_, name.c_str(), q.c_str(), 0, nullptr), "prepare " + name);
  return r.status();
}

Result<Res> Conn::ExecPrepared(const std::string& name, const Params& params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<unsigned> types;
  params.Prepare(&values, &lengths, &formats, &types);
  return Check(PQexecPrepared(c_, name.c_str(), params.count(), values.data(), lengths.data(), formats.data(), 1),
               name);
}

int Conn::socket() const { return PQsocket(c_); }

Status Conn::ConsumeInput() {
  if (PQconsumeInput(c_) == 0) return Error("reading notifications");
  return Status::Ok();
}

bool Conn::NextNotification(std::string* channel, std::string* payload) {
  PGnotify* n = PQnotifies(c_);
  if (n == nullptr) return false;
  *channel = n->relname;
  *payload = n->extra;
  PQfreemem(n);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Pipeline

Conn::Pipeline::Pipeline(Conn& c) : c_(c) {
  if (PQenterPipelineMode(c_.c_) == 0) {
    error_ = c_.Error("entering pipeline mode");
  } else {
    entered_ = true;
  }
}

Conn::Pipeline::~Pipeline() {
  if (entered_) {
    // Only after a Sync() that read everything can the mode be left; otherwise the connection is
    // in an unknown state and is dropped by its owner (Healthy() is false).
    if (PQexitPipelineMode(c_.c_) == 0) {
      // Leave it broken on purpose: the owner reconnects.
    }
  }
}

void Conn::Pipeline::Send(std::string_view sql, const Params& params) {
  if (!error_.ok()) return;
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<unsigned> types;
  params.Prepare(&values, &lengths, &formats, &types);
  std::string q(sql);
  if (PQsendQueryParams(c_.c_, q.c_str(), params.count(), types.data(), values.data(), lengths.data(),
                        formats.data(), 1) == 0) {
    error_ = c_.Error("sending a statement");
    return;
  }
  sent_++;
}

void Conn::Pipeline::SendPrepared(const std::string& name, const Params& params) {
  if (!error_.ok()) return;
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<unsigned> types;
  params.Prepare(&values, &lengths, &formats, &types);
  if (PQsendQueryPrepared(c_.c_, name.c_str(), params.count(), values.data(), lengths.data(), formats.data(), 1) == 0) {
    error_ = c_.Error("sending " + name);
    return;
  }
  sent_++;
}

Result<std::vector<Res>> Conn::Pipeline::Sync() {
  if (!error_.ok()) return error_;
  if (PQpipelineSync(c_.c_) == 0) return c_.Error("pipeline sync");
  std::vector<Res> out;
  Status first;
  for (int i = 0; i < sent_; ++i) {
    PGresult* r = PQgetResult(c_.c_);
    if (r == nullptr) return c_.Error("reading a pipeline result");
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      out.emplace_back(r);
    } else {
      if (first.ok()) {
        first = st == PGRES_PIPELINE_ABORTED ? Status::Internal("pipeline aborted") : c_.ResultError(r, "pipeline");
      }
      PQclear(r);
      out.emplace_back();
    }
    // The NULL that ends this statement's results.
    PGresult* end = PQgetResult(c_.c_);
    if (end != nullptr) {
      PQclear(end);
      // The connection is mid-pipeline now: its owner drops it on the error.
      return first.ok() ? Status::Internal("PostgreSQL: a pipelined statement returned more than one result") : first;
    }
  }
  PGresult* sync = PQgetResult(c_.c_);
  if (sync == nullptr || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
    if (sync != nullptr) PQclear(sync);
    return c_.Error("reading the pipeline's end");
  }
  PQclear(sync);
  if (PQexitPipelineMode(c_.c_) != 0) entered_ = false;
  if (!first.ok()) return first;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Txn

Result<Txn> Txn::Begin(Conn& c) {
  CAIRN_RETURN_IF_ERROR(c.Exec("BEGIN").status());
  return Txn(&c);
}

Txn::~Txn() {
  if (c_ != nullptr) (void)c_->Exec("ROLLBACK");
}

Status Txn::Commit() {
  Conn* c = c_;
  c_ = nullptr;
  return c->Exec("COMMIT").status();
}

std::string Literal(std::string_view s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') out += '\'';
    out += ch;
  }
  out += '\'';
  return out;
}

}  // namespace cairn::postgres

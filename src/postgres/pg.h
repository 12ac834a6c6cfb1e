// A thin RAII layer over libpq: a connection (Conn), a result (Res), parameters in binary format
// (Params, with one-dimensional arrays for unnest()), a transaction guard (Txn) and pipelines
// (Conn::Pipeline). It owns the PGconn / PGresult handles and turns libpq's errors into Status;
// nothing else in cairn includes libpq-fe.h.
//
// Error mapping (docs/errors.md, "PostgreSQL"): a connection that cannot be made or is lost is
// kUnavailable (retry; the message names host and port); SQLSTATE class 08 (connection), 53
// (insufficient resources), 57P (operator intervention: shutdown, crash) and 40 (serialization,
// deadlock) are kUnavailable too; anything else a statement fails with is kInternal, with the
// server's message and SQLSTATE (it means cairn sent something wrong, or the schema was changed
// by hand).
//
// Thread-safety: none. A Conn is used by one thread at a time; Res is an immutable value.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/status.h"
#include "cairn/types.h"

struct pg_conn;
struct pg_result;

namespace cairn::postgres {

// Type OIDs used in binary parameters (PostgreSQL's catalog; fixed since 8.x).
inline constexpr uint32_t kOidBool = 16;
inline constexpr uint32_t kOidBytea = 17;
inline constexpr uint32_t kOidInt8 = 20;
inline constexpr uint32_t kOidInt2 = 21;
inline constexpr uint32_t kOidText = 25;
inline constexpr uint32_t kOidUuid = 2950;

// One result of a statement. Columns are read in binary format (Params asks for it).
class Res {
 public:
  Res() = default;
  explicit Res(pg_result* r);
  ~Res();
  Res(Res&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Res& operator=(Res&& o) noexcept;
  Res(const Res&) = delete;
  Res& operator=(const Res&) = delete;

  int rows() const;
  bool IsNull(int row, int col) const;
  // Binary column values. Views stay valid as long as this Res.
  std::string_view Bytes(int row, int col) const;
  int64_t Int64(int row, int col) const;
  int16_t Int16(int row, int col) const;
  Uuid GetUuid(int row, int col) const;
  bool Bool(int row, int col) const;
  int columns() const;
  uint32_t ColumnType(int col) const;  // the column's type OID

 private:
  pg_result* r_ = nullptr;
};

// Fixed blocks of memory that binary COPY tuples are copied into, lent by CopyRows and given back
// when it is destroyed, so that a long read (a `$all` cursor's ranges) reuses the same memory
// instead of asking malloc for every tuple. Keeps at most `max_idle` blocks (kBytes each) between
// uses; the rest are freed. Thread-safe (ranges are fetched on several threads).
class BlockPool {
 public:
  static constexpr size_t kBytes = size_t{1} << 20;
  explicit BlockPool(size_t max_idle) : max_idle_(max_idle) {}
  std::unique_ptr<char[]> Take();
  void Give(std::unique_ptr<char[]> block);
  size_t idle() const;

 private:
  const size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<char[]>> idle_;
};

// The tuples of one `COPY ... TO STDOUT (FORMAT binary)`, each a view of one tuple's bytes (the
// file header and trailer removed; SplitCopyTuple reads the fields). libpq hands over every tuple
// in a buffer of its own (a malloc per tuple); CopyOut copies the tuple into this object's blocks
// and frees that buffer at once, in the thread that received it, so that malloc reuses one
// buffer instead of holding a whole page of them for the consumer's thread to free. A tuple
// larger than a quarter of a block gets an allocation of its own. Views stay valid as long as this
// object (moving it moves no bytes).
class CopyRows {
 public:
  CopyRows() = default;
  ~CopyRows();
  CopyRows(CopyRows&& o) noexcept;
  CopyRows& operator=(CopyRows&& o) noexcept;
  CopyRows(const CopyRows&) = delete;
  CopyRows& operator=(const CopyRows&) = delete;

  size_t size() const { return rows_.size(); }
  std::string_view row(size_t i) const { return rows_[i]; }

 private:
  friend class Conn;
  std::string_view Keep(std::string_view tuple);  // copies the tuple in; the view of the copy
  void Free();
  std::shared_ptr<BlockPool> pool_;  // where blocks come from and go back to; none: new and delete
  std::vector<std::unique_ptr<char[]>> blocks_;  // BlockPool::kBytes each; the last one is filling
  size_t used_ = BlockPool::kBytes;              // bytes used in blocks_.back()
  std::vector<std::unique_ptr<char[]>> large_;   // tuples too large for a block, one each
  std::vector<std::string_view> rows_;
};

// Splits one tuple of binary COPY into exactly out.size() field views (a NULL field is a view
// with data() == nullptr). kInternal naming what is wrong when the bytes are not such a tuple.
Status SplitCopyTuple(std::string_view tuple, std::span<std::string_view> out);

// Statement parameters, all sent in binary format. Strings are copied.
class Params {
 public:
  Params& Int64(int64_t v);
  Params& Text(std::string_view v);
  Params& Bytes(std::string_view v);
  Params& Null(uint32_t oid);
  // A one-dimensional array, built with ArrayBuilder.
  Params& Array(std::string encoded);
  // A value in text format with no declared type: the server infers it from the statement.
  Params& Untyped(std::string text);
  Params& UntypedNull();

  int count() const { return static_cast<int>(values_.size()); }
  // For libpq: pointers into this object, valid until it changes.
  void Prepare(std::vector<const char*>* values, std::vector<int>* lengths, std::vector<int>* formats,
               std::vector<unsigned>* types) const;

 private:
  void Add(uint32_t oid, std::string bytes, bool null = false, int format = 1);
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  std::vector<uint32_t> oids_;
  std::vector<int> formats_;
};

// The binary wire format of a one-dimensional array without NULLs (array_recv): for unnest().
class ArrayBuilder {
 public:
  explicit ArrayBuilder(uint32_t element_oid) : oid_(element_oid) {}
  void Int64(int64_t v);
  void Int16(int16_t v);
  void Uuid(const cairn::Uuid& v);
  void Bytes(std::string_view v);  // text and bytea alike
  size_t size() const { return count_; }
  uint32_t array_oid() const;
  std::string Finish() const;

 private:
  uint32_t oid_;
  size_t count_ = 0;
  std::string body_;
};

// Whether `s` is a statement's failure with this SQLSTATE (ResultError ends such messages with
// " (SQLSTATE XXXXX)").
bool HasSqlstate(const Status& s, std::string_view sqlstate);

// Connection settings parsed from a postgres:// URL, with the host and port for messages.
struct ConnInfo {
  std::string conninfo;  // what libpq gets (a URI without cairn's own parameters)
  std::string where;     // "host:port/db", for error messages
};
// Checks a libpq connection URI or string and fills `where` from it; kInvalidArgument when libpq
// cannot parse it.
Result<ConnInfo> ParseConnInfo(const std::string& conninfo);

class Conn {
 public:
  // Connects; kUnavailable naming info.where when the server cannot be reached.
  static Result<std::unique_ptr<Conn>> Connect(const ConnInfo& info);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Whether the connection is usable (not broken, not inside a failed transaction).
  bool Healthy() const;
  const std::string& where() const { return where_; }

  // Runs SQL without parameters (may hold several statements); text results.
  Result<Res> Exec(std::string_view sql);
  // Runs one statement with binary parameters and binary results.
  Result<Res> Exec(std::string_view sql, const Params& params);
  // The same with results in text format (for values of any type shown as text).
  Result<Res> ExecText(std::string_view sql, const Params& params);
  // Runs `COPY (query) TO STDOUT (FORMAT binary)` (COPY takes no parameters: the query's values
  // are literals) and collects its tuples.
  Result<CopyRows> CopyOut(std::string_view query);
  // The same, and calls on_row(tuple) for each tuple as it arrives, while its bytes are still in
  // the CPU's cache (decoding them after the last one arrived missed the cache on every tuple).
  // The first error on_row returns fails the call, after the data was read to its end.
  // The tuples are copied into blocks from `pool` when one is given (see CopyRows).
  Result<CopyRows> CopyOut(std::string_view query, const std::function<Status(std::string_view)>& on_row,
                           std::shared_ptr<BlockPool> pool = nullptr);
  // Prepares a named statement on this connection.
  Status Prepare(const std::string& name, std::string_view sql);
  Result<Res> ExecPrepared(const std::string& name, const Params& params);

  // Pipeline mode: send statements, then Sync() and read one Res per statement, in order. A
  // failed statement makes the rest fail too (its error is returned for every later one).
  class Pipeline {
   public:
    explicit Pipeline(Conn& c);
    ~Pipeline();
    void Send(std::string_view sql, const Params& params);
    void SendPrepared(const std::string& name, const Params& params);
    // Flushes and collects every result. The first error wins.
    Result<std::vector<Res>> Sync();

   private:
    Conn& c_;
    Status error_;
    int sent_ = 0;
    bool entered_ = false;
  };

  // The socket, for poll() (LISTEN); and notifications received so far (channel, payload).
  int socket() const;
  Status ConsumeInput();
  bool NextNotification(std::string* channel, std::string* payload);

  pg_conn* raw() { return c_; }
  Status Error(std::string_view what) const;  // the connection's last error as a Status

 private:
  Conn(pg_conn* c, std::string where) : c_(c), where_(std::move(where)) {}
  Status ResultError(pg_result* r, std::string_view what) const;
  Result<Res> Check(pg_result* r, std::string_view what);
  pg_conn* c_;
  std::string where_;
};

// BEGIN on construction; ROLLBACK on destruction unless Commit() succeeded.
class Txn {
 public:
  static Result<Txn> Begin(Conn& c);
  Txn(Txn&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  ~Txn();
  Status Commit();

 private:
  explicit Txn(Conn* c) : c_(c) {}
  Conn* c_;
};

// Quotes a string as a SQL literal ('...', doubling quotes). For identifiers cairn checked itself.
std::string Literal(std::string_view s);

}  // namespace cairn::postgres

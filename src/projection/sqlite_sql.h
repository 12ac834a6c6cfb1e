// The Sql a projection handler sees (include/cairn/projection.h), on one SQLite connection, with a
// cache of prepared statements keyed by their text.
#pragma once

#include <sqlite3.h>

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cairn/projection.h"
#include "projection/sink_sql.h"

namespace cairn::projection {

class SqliteSql final : public SinkSql {
 public:
  explicit SqliteSql(sqlite3* db) : db_(db) {}
  ~SqliteSql() override;
  SqliteSql(const SqliteSql&) = delete;
  SqliteSql& operator=(const SqliteSql&) = delete;

  Status Exec(std::string_view sql, std::initializer_list<SqlValue> params = {}) override;
  Status Exec(std::string_view sql, const std::vector<SqlValue>& params) override;
  Result<std::vector<std::vector<SqlValue>>> Query(std::string_view sql, const std::vector<SqlValue>& params = {}) override;
  sqlite3* handle() override { return db_; }

  // Runs SQL text without parameters (may hold several statements), not cached.
  Status Script(std::string_view sql) override;
  // Finalizes every cached statement (before the connection closes, or a schema change).
  void ClearCache() override;
  bool postgres() const override { return false; }

  Status Error(std::string_view what, std::string_view sql) const;

 private:
  template <typename Params>
  Status Run(std::string_view sql, const Params& params, std::vector<std::vector<SqlValue>>* rows);
  Result<sqlite3_stmt*> Prepare(std::string_view sql);

  // Looked up by string_view without building a std::string: a lookup per statement run.
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> cache_;
  // The statements run last, checked before the map: a projection runs the same few statements
  // over and over, and comparing the text is cheaper than hashing it (a few % of a declarative
  // projection's time). Each entry points at its key in cache_ (stable: node-based map).
  struct Recent {
    const std::string* text = nullptr;
    sqlite3_stmt* stmt = nullptr;
  };
  static constexpr size_t kRecent = 4;
  Recent recent_[kRecent];
  size_t recent_next_ = 0;
};

}  // namespace cairn::projection

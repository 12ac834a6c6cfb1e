#include "projection/sqlite_sql.h"

#include <fmt/format.h>

namespace cairn::projection {

SqliteSql::~SqliteSql() { ClearCache(); }

void SqliteSql::ClearCache() {
  for (auto& [text, stmt] : cache_) sqlite3_finalize(stmt);
  cache_.clear();
  for (Recent& r : recent_) r = Recent{};
}

Status SqliteSql::Error(std::string_view what, std::string_view sql) const {
  const int code = sqlite3_extended_errcode(db_);
  std::string message = fmt::format("{}: {} (SQLite {}) in: {}", what, sqlite3_errmsg(db_), code, sql);
  // Bad SQL and violated constraints are the projection's mistake; anything else is the file's.
  switch (code & 0xff) {
    case SQLITE_ERROR:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
      return Status::InvalidArgument(std::move(message));
    default:
      return Status::IOError(std::move(message));
  }
}

Result<sqlite3_stmt*> SqliteSql::Prepare(std::string_view sql) {
  for (const Recent& r : recent_) {
    if (r.text != nullptr && *r.text == sql) return r.stmt;
  }
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    recent_[recent_next_++ % kRecent] = Recent{&it->first, it->second};
    return it->second;
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, &tail) !=
      SQLITE_OK) {
    return Error("prepare", sql);
  }
  if (stmt == nullptr) return Status::InvalidArgument(fmt::format("prepare: no statement in: {}", sql));
  if (tail != nullptr && std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos) {
    sqlite3_finalize(stmt);
    return Status::InvalidArgument(fmt::format("prepare: more than one statement in: {}", sql));
  }
  auto [at, inserted] = cache_.emplace(std::string(sql), stmt);
  recent_[recent_next_++ % kRecent] = Recent{&at->first, stmt};
  return stmt;
}

template <typename Params>
Status SqliteSql::Run(std::string_view sql, const Params& params, std::vector<std::vector<SqlValue>>* rows) {
  CAIRN_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
  const int expected = sqlite3_bind_parameter_count(stmt);
  if (static_cast<size_t>(expected) != params.size()) {
    return Status::InvalidArgument(
        fmt::format("statement has {} parameters, given {}: {}", expected, params.size(), sql));
  }
  int i = 1;
  int rc = SQLITE_OK;
  for (const SqlValue& v : params) {
    if (std::holds_alternative<std::nullptr_t>(v)) {
      rc = sqlite3_bind_null(stmt, i);
    } else if (const int64_t* n = std::get_if<int64_t>(&v)) {
      rc = sqlite3_bind_int64(stmt, i, *n);
    } else if (const double* d = std::get_if<double>(&v)) {
      rc = sqlite3_bind_double(stmt, i, *d);
    } else {
      const std::string& s = std::get<std::string>(v);
      rc = sqlite3_bind_text64(stmt, i, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    if (rc != SQLITE_OK) break;
    ++i;
  }
  Status status;
  if (rc != SQLITE_OK) {
    status = Error(fmt::format("bind parameter {}", i), sql);
  } else {
    for (;;) {
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        status = Error("execute", sql);
        break;
      }
      if (rows == nullptr) continue;
      std::vector<SqlValue>& row = rows->emplace_back();
      const int n = sqlite3_column_count(stmt);
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            row.emplace_back(nullptr);
            break;
          case SQLITE_INTEGER:
            row.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_FLOAT:
            row.emplace_back(sqlite3_column_double(stmt, c));
            break;
          default: {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            row.emplace_back(std::string(text == nullptr ? "" : text, static_cast<size_t>(sqlite3_column_bytes(stmt, c))));
          }
        }
      }
    }
  }
  // Text was bound without a copy: clear the bindings before the caller's strings go away.
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return status;
}

Status SqliteSql::Exec(std::string_view sql, std::initializer_list<SqlValue> params) { return Run(sql, params, nullptr); }

Status SqliteSql::Exec(std::string_view sql, const std::vector<SqlValue>& params) { return Run(sql, params, nullptr); }

Result<std::vector<std::vector<SqlValue>>> SqliteSql::Query(std::string_view sql, const std::vector<SqlValue>& params) {
  std::vector<std::vector<SqlValue>> rows;
  CAIRN_RETURN_IF_ERROR(Run(sql, params, &rows));
  return rows;
}

Status SqliteSql::Script(std::string_view sql) {
  std::string text(sql);
  char* message = nullptr;
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    Status s = Error("run", sql);
    sqlite3_free(message);
    return s;
  }
  return Status::Ok();
}

}  // namespace cairn::projection

// The Sql a projection handler sees on a PostgreSQL read model (ProjectionRunner::Open with a
// postgres:// URL). Parameters are written ?1, ?2, ... as for SQLite (translated to $1, $2
// outside quoted text; a '?' not followed by a digit, such as jsonb's operator, is left alone) or
// $1, $2 directly. They are sent as text without a declared type, so PostgreSQL infers each from
// its place in the statement. Query returns integers (int2/4/8) as int64, float4/8 and numeric as
// double, NULL as nullptr and everything else as its text. handle() is nullptr (no SQLite here).
// Errors: kInvalidArgument for a statement PostgreSQL rejects (with its message and SQLSTATE),
// kUnavailable when the connection is lost.
#pragma once

#include <memory>
#include <string>

#include "postgres/pg.h"
#include "projection/sink_sql.h"

namespace cairn::projection {

class PgSql final : public SinkSql {
 public:
  // Connects to the read model's database (a postgres:// URL, libpq parameters allowed).
  static Result<std::unique_ptr<PgSql>> Connect(const std::string& url);

  Status Exec(std::string_view sql, std::initializer_list<SqlValue> params = {}) override;
  Status Exec(std::string_view sql, const std::vector<SqlValue>& params) override;
  Result<std::vector<std::vector<SqlValue>>> Query(std::string_view sql, const std::vector<SqlValue>& params = {}) override;
  sqlite3* handle() override { return nullptr; }
  Status Script(std::string_view sql) override;
  void ClearCache() override {}
  bool postgres() const override { return true; }

 private:
  explicit PgSql(std::unique_ptr<postgres::Conn> conn) : conn_(std::move(conn)) {}
  Result<postgres::Res> Run(std::string_view sql, const SqlValue* params, size_t n);
  std::unique_ptr<postgres::Conn> conn_;
};

// "?N" placeholders to "$N", outside quoted strings and identifiers.
std::string TranslatePlaceholders(std::string_view sql);

}  // namespace cairn::projection

#include "projection/pg_sql.h"

#include <fmt/format.h>

#include <cstdlib>

namespace cairn::projection {

namespace {

// Type OIDs of the columns Query converts to numbers.
constexpr uint32_t kInt2 = 21, kInt4 = 23, kInt8 = 20, kFloat4 = 700, kFloat8 = 701, kNumeric = 1700, kBool = 16;

// Statement errors are the handler's (bad SQL, a constraint): kInvalidArgument as on SQLite;
// lost connections stay kUnavailable.
Status Classify(const Status& s) {
  if (s.ok() || s.code() == StatusCode::kUnavailable) return s;
  return Status::InvalidArgument(s.message());
}

}  // namespace

std::string TranslatePlaceholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      out += c;
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c == '?' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
      out += '$';
      continue;
    }
    out += c;
  }
  return out;
}

Result<std::unique_ptr<PgSql>> PgSql::Connect(const std::string& url) {
  CAIRN_ASSIGN_OR_RETURN(postgres::ConnInfo info, postgres::ParseConnInfo(url));
  CAIRN_ASSIGN_OR_RETURN(auto conn, postgres::Conn::Connect(info));
  return std::unique_ptr<PgSql>(new PgSql(std::move(conn)));
}

Result<postgres::Res> PgSql::Run(std::string_view sql, const SqlValue* params, size_t n) {
  postgres::Params p;
  for (size_t i = 0; i < n; ++i) {
    const SqlValue& v = params[i];
    if (std::holds_alternative<std::nullptr_t>(v)) {
      p.UntypedNull();
    } else if (const int64_t* x = std::get_if<int64_t>(&v)) {
      p.Untyped(std::to_string(*x));
    } else if (const double* d = std::get_if<double>(&v)) {
      p.Untyped(fmt::format("{}", *d));
    } else {
      p.Untyped(std::get<std::string>(v));
    }
  }
  auto r = conn_->ExecText(TranslatePlaceholders(sql), p);
  if (!r.ok()) return Classify(r.status());
  return r;
}

Status PgSql::Exec(std::string_view sql, std::initializer_list<SqlValue> params) {
  return Run(sql, params.begin(), params.size()).status();
}

Status PgSql::Exec(std::string_view sql, const std::vector<SqlValue>& params) {
  return Run(sql, params.data(), params.size()).status();
}

Result<std::vector<std::vector<SqlValue>>> PgSql::Query(std::string_view sql, const std::vector<SqlValue>& params) {
  CAIRN_ASSIGN_OR_RETURN(postgres::Res r, Run(sql, params.data(), params.size()));
  std::vector<std::vector<SqlValue>> rows;
  rows.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    std::vector<SqlValue> row;
    for (int c = 0; c < r.columns(); ++c) {
      if (r.IsNull(i, c)) {
        row.emplace_back(nullptr);
        continue;
      }
      const std::string text(r.Bytes(i, c));
      switch (r.ColumnType(c)) {
        case kInt2:
        case kInt4:
        case kInt8: row.emplace_back(static_cast<int64_t>(std::strtoll(text.c_str(), nullptr, 10))); break;
        case kFloat4:
        case kFloat8:
        case kNumeric: row.emplace_back(std::strtod(text.c_str(), nullptr)); break;
        case kBool: row.emplace_back(static_cast<int64_t>(text == "t" ? 1 : 0)); break;
        default: row.emplace_back(text); break;
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Status PgSql::Script(std::string_view sql) { return Classify(conn_->Exec(sql).status()); }

}  // namespace cairn::projection

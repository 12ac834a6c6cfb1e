// What the projection runner needs of a read-model connection beyond the handlers' Sql: scripts
// (several statements, no parameters), dropping cached statements, and which SQL dialect it
// speaks. SQLite (sqlite_sql.h, the default) and PostgreSQL (pg_sql.h).
#pragma once

#include <string_view>

#include "cairn/projection.h"

namespace cairn::projection {

class SinkSql : public Sql {
 public:
  // Runs SQL text without parameters (may hold several statements), not cached.
  virtual Status Script(std::string_view sql) = 0;
  // Forgets every cached statement (before a schema change).
  virtual void ClearCache() = 0;
  virtual bool postgres() const = 0;
};

}  // namespace cairn::projection

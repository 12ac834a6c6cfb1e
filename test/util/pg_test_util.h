// PostgreSQL for tests: where the test cluster is (ctest starts a throwaway one with
// test/postgres/pg_cluster.sh and names its URL file in CAIRN_TEST_POSTGRES_URL_FILE; or set
// CAIRN_TEST_POSTGRES_URL to a database of your own), and a fresh schema per store so that
// tests never see each other's events.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "postgres/pg.h"

namespace cairn::testing {

// The test database's URL, or nullopt when none is configured (PostgreSQL tests then skip).
std::optional<std::string> TestPostgresUrl();

// A schema name no other test process uses: "<prefix>_<pid>_<n>_<random>".
std::string UniqueSchema(const std::string& prefix);

// `url` with ?schema=NAME (or &schema=NAME) appended, and any other "key=value" options.
std::string WithSchema(const std::string& url, const std::string& schema, const std::string& more = "");

// Drops a schema and everything in it (best effort: errors are ignored).
void DropSchema(const std::string& url, const std::string& schema);

// The path of test/postgres/pg_cluster.sh.
std::string PgClusterScript();

// A test with a fresh schema in the test database (its stores open Url()), a connection of its
// own for direct queries (conn_), and the schema dropped afterwards. Skipped when no test
// PostgreSQL is configured.
class PgSchemaTest : public ::testing::Test {
 protected:
  explicit PgSchemaTest(std::string schema_prefix) : prefix_(std::move(schema_prefix)) {}
  void SetUp() override;
  void TearDown() override;

  // The schema's URL, with more "key=value" options.
  std::string Url(const std::string& more = "") const { return WithSchema(base_, schema_, more); }
  // count(*) FROM `sql_from_where` on conn_; -1 (and a failure) when the query fails.
  int64_t Count(const std::string& sql_from_where);

  std::string base_, schema_;
  std::unique_ptr<postgres::Conn> conn_;

 private:
  std::string prefix_;
};

}  // namespace cairn::testing

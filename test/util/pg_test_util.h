// PostgreSQL for tests: where the test cluster is (ctest starts a throwaway one with
// test/postgres/pg_cluster.sh and names its URL file in CAIRN_TEST_POSTGRES_URL_FILE; or set
// CAIRN_TEST_POSTGRES_URL to a database of your own), and a fresh schema per store so that
// tests never see each other's events.
#pragma once

#include <optional>
#include <string>

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

}  // namespace cairn::testing

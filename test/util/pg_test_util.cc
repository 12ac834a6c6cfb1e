#include "util/pg_test_util.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>

#include "postgres/pg.h"

namespace cairn::testing {

std::optional<std::string> TestPostgresUrl() {
  if (const char* url = std::getenv("CAIRN_TEST_POSTGRES_URL"); url != nullptr && *url != '\0') return std::string(url);
  const char* file = std::getenv("CAIRN_TEST_POSTGRES_URL_FILE");
  if (file == nullptr || *file == '\0') return std::nullopt;
  std::ifstream in(file);
  std::string url;
  if (!std::getline(in, url) || url.empty()) return std::nullopt;
  return url;
}

std::string UniqueSchema(const std::string& prefix) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return fmt::format("{}_{}_{}_{:x}", prefix, getpid(), counter.fetch_add(1), rd() & 0xffffff);
}

std::string WithSchema(const std::string& url, const std::string& schema, const std::string& more) {
  std::string out = url + (url.find('?') == std::string::npos ? "?" : "&") + "schema=" + schema;
  if (!more.empty()) out += "&" + more;
  return out;
}

void DropSchema(const std::string& url, const std::string& schema) {
  std::string base = url.substr(0, url.find('?'));
  auto info = postgres::ParseConnInfo(base);
  if (!info.ok()) return;
  auto conn = postgres::Conn::Connect(*info);
  if (!conn.ok()) return;
  (void)(*conn)->Exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", schema));
}

std::string PgClusterScript() { return std::string(CAIRN_SOURCE_DIR) + "/test/postgres/pg_cluster.sh"; }

void PgSchemaTest::SetUp() {
  auto url = TestPostgresUrl();
  if (!url) GTEST_SKIP() << "no test PostgreSQL (set CAIRN_TEST_POSTGRES_URL, or run through ctest)";
  base_ = *url;
  schema_ = UniqueSchema(prefix_);
  auto info = postgres::ParseConnInfo(base_.substr(0, base_.find('?')));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto c = postgres::Conn::Connect(*info);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  conn_ = std::move(c).value();
}

void PgSchemaTest::TearDown() {
  conn_.reset();
  if (!base_.empty()) DropSchema(base_, schema_);
}

int64_t PgSchemaTest::Count(const std::string& sql_from_where) {
  auto r = conn_->Exec(fmt::format("SELECT count(*)::int8 FROM {}", sql_from_where), postgres::Params());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->Int64(0, 0) : -1;
}

}  // namespace cairn::testing

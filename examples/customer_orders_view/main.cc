// The seed's CustomerOrdersView / order_summary read model, twice: as a C++ projection (handlers
// by event type) and as the declarative spec customer_orders.json beside this file. Both are run
// over the same events into two SQLite files; "orders of customer X" is then one query, and both
// read models must give the same, right answer. Live events are followed too. Exits non-zero if
// anything differs.
//
//   example_customer_orders_view [SPEC_FILE] [DIR]   (defaults: the spec beside this source; /tmp)
#include <cairn/projection.h>
#include <cairn/store.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

using cairn::RecordedEventView;
using cairn::Sql;
using cairn::SqlValue;
using cairn::Status;
using nlohmann::json;

int Fail(const std::string& what) {
  std::fprintf(stderr, "customer_orders_view: %s\n", what.c_str());
  return 1;
}

// The C++ twin of customer_orders.json.
cairn::Projection CustomerOrdersView() {
  cairn::Projection p("customer_orders_view");
  p.Table("customers", "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT NOT NULL)");
  p.Table("order_summary",
          "CREATE TABLE order_summary (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, customer_name TEXT,"
          " total REAL NOT NULL, status TEXT NOT NULL);"
          "CREATE INDEX order_summary_by_customer ON order_summary (customer_id)");
  p.Filter({.categories = {"customer", "order"}});
  p.On("CustomerRegistered", [](const RecordedEventView& e, Sql& sql) {
    json d = json::parse(e.data);
    return sql.Exec("INSERT INTO customers (customer_id, name) VALUES (?1, ?2)",
                    {d["customer_id"].get<std::string>(), d["name"].get<std::string>()});
  });
  p.On("CustomerRenamed", [](const RecordedEventView& e, Sql& sql) {
    json d = json::parse(e.data);
    const std::string id = d["customer_id"], name = d["name"];
    CAIRN_RETURN_IF_ERROR(sql.Exec("UPDATE customers SET name = ?2 WHERE customer_id = ?1", {id, name}));
    return sql.Exec("UPDATE order_summary SET customer_name = ?2 WHERE customer_id = ?1", {id, name});
  });
  p.On("OrderCreated", [](const RecordedEventView& e, Sql& sql) {
    json d = json::parse(e.data);
    const std::string customer = d["customer_id"];
    // Denormalized: the name is copied in now, so that the query needs no join.
    auto name = sql.Query("SELECT name FROM customers WHERE customer_id = ?1", {customer});
    if (!name.ok()) return name.status();
    SqlValue customer_name = name->empty() ? SqlValue(nullptr) : (*name)[0][0];
    return sql.Exec("INSERT INTO order_summary VALUES (?1, ?2, ?3, ?4, 'pending')",
                    {d["order_id"].get<std::string>(), customer, customer_name, d["total"].get<double>()});
  });
  p.On("OrderShipped", [](const RecordedEventView& e, Sql& sql) {
    return sql.Exec("UPDATE order_summary SET status = 'shipped' WHERE order_id = ?1",
                    {json::parse(e.data)["order_id"].get<std::string>()});
  });
  return p;
}

// The query the read model exists for: the orders of one customer, one line each.
std::string OrdersOf(const std::string& db_path, const std::string& customer) {
  sqlite3* db = nullptr;
  std::string out;
  auto error = [&](const char* what) {
    out = std::string(what) + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory") + "\n";
  };
  // Read-write although it only reads: a read-only connection to a WAL database cannot create the
  // -shm file, so opening just as the projection's connection closes (which removes it) failed
  // now and then with "disk I/O error".
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    error("cannot open");
    sqlite3_close(db);
    return out;
  }
  // The projection's own connection may be between statements on its file: wait, do not fail.
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT order_id, customer_name, total, status FROM order_summary WHERE customer_id = ?1"
                         " ORDER BY order_id",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    error("cannot query");
    sqlite3_close(db);
    return out;
  }
  sqlite3_bind_text(stmt, 1, customer.c_str(), -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    for (int c = 0; c < 4; ++c) {
      out += (c ? " " : "") + std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, c)));
    }
    out += "\n";
  }
  if (rc != SQLITE_DONE) error("query failed");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cairn;
  const std::string spec_path = argc > 1 ? argv[1] : CAIRN_EXAMPLE_DIR "/customer_orders.json";
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  const std::string cpp_db = dir + "/customer_orders_cpp." + std::to_string(getpid()) + ".db";
  const std::string spec_db = dir + "/customer_orders_spec." + std::to_string(getpid()) + ".db";

  auto store = Store::Open("memory:");
  if (!store.ok()) return Fail(store.status().ToString());
  auto append = [&](const std::string& stream, const std::string& type, const json& data) {
    EventData e;
    e.type = type;
    e.data = data.dump();
    auto r = (*store)->Append(stream, ExpectedVersion::Any(), {&e, 1});
    if (!r.ok()) std::fprintf(stderr, "append: %s\n", r.status().ToString().c_str());
  };
  append("customer-123", "CustomerRegistered", {{"customer_id", "123"}, {"name", "Alice"}});
  append("customer-456", "CustomerRegistered", {{"customer_id", "456"}, {"name", "Bob"}});
  append("order-1", "OrderCreated", {{"order_id", "1"}, {"customer_id", "123"}, {"total", 100.0}});
  append("order-2", "OrderCreated", {{"order_id", "2"}, {"customer_id", "456"}, {"total", 25.5}});
  append("order-3", "OrderCreated", {{"order_id", "3"}, {"customer_id", "123"}, {"total", 42.0}});
  append("order-1", "OrderShipped", {{"order_id", "1"}});
  append("cart-9", "OrderCreated", {{"order_id", "not an order"}, {"customer_id", "123"}, {"total", 1.0}});

  std::ifstream in(spec_path);
  if (!in) return Fail("cannot read " + spec_path);
  auto from_spec = ProjectionFromSpec(std::string(std::istreambuf_iterator<char>(in), {}));
  if (!from_spec.ok()) return Fail(from_spec.status().ToString());

  auto cpp = ProjectionRunner::Open(**store, CustomerOrdersView(), cpp_db);
  auto spec = ProjectionRunner::Open(**store, std::move(*from_spec), spec_db);
  if (!cpp.ok()) return Fail(cpp.status().ToString());
  if (!spec.ok()) return Fail(spec.status().ToString());
  for (auto* runner : {cpp->get(), spec->get()}) {
    Status s = runner->Run();  // history, until caught up
    if (!s.ok()) return Fail(s.ToString());
  }

  // Live: the C++ projection follows new events on a thread while they are appended.
  Status follow_status;
  std::thread follower([&] { follow_status = (*cpp)->Run({.follow = true}); });
  append("customer-123", "CustomerRenamed", {{"customer_id", "123"}, {"name", "Alice Smith"}});
  append("order-4", "OrderCreated", {{"order_id", "4"}, {"customer_id", "456"}, {"total", 7.0}});
  for (int i = 0; i < 500; ++i) {
    auto status = (*cpp)->GetStatus();
    if (status.ok() && status->lag_events == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (*cpp)->Stop();
  follower.join();
  if (!follow_status.ok()) return Fail(follow_status.ToString());
  Status s = (*spec)->Run();
  if (!s.ok()) return Fail(s.ToString());

  // The query: orders of customer 123, from each read model.
  const std::string answers[2] = {OrdersOf(cpp_db, "123"), OrdersOf(spec_db, "123")};
  std::printf("orders of customer 123 (C++ projection):\n%s", answers[0].c_str());
  std::printf("orders of customer 123 (spec %s):\n%s", spec_path.c_str(), answers[1].c_str());
  const std::string expected =
      "1 Alice Smith 100.0 shipped\n"
      "3 Alice Smith 42.0 pending\n";
  cpp->reset();
  spec->reset();
  for (const std::string& path : {cpp_db, spec_db}) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  }
  if (answers[0] != expected) return Fail("C++ projection answered:\n" + answers[0]);
  if (answers[1] != expected) return Fail("spec projection answered:\n" + answers[1]);
  std::printf("both read models agree\n");
  return 0;
}

// Orders on cairn: an OrderCreated written by 2024 code (schema v1, no currency) loads as USD
// through an upcaster; products are added with their quantity and price at the time; and the order
// is shown as it was at a past time. Exits non-zero if any of that does not hold.
//
//   example_orders [STORE_URL]     (default memory:)
#include <cairn/es/repository.h>
#include <cairn/store.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "orders.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "orders: %s\n", what.c_str());
  return 1;
}

cairn::Timestamp Now() {
  using namespace std::chrono;
  return cairn::Timestamp{duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count()};
}

void Print(const char* label, const orders::OrderState& s) {
  std::printf("%-22s customer %s, %zu line(s), total %lld.%02lld %s%s\n", label, s.customer_id.c_str(), s.lines.size(),
              static_cast<long long>(s.total_cents / 100), static_cast<long long>(s.total_cents % 100),
              s.currency.c_str(), s.submitted ? ", submitted" : "");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cairn;
  using namespace orders;
  const std::string url = argc > 1 ? argv[1] : "memory:";
  auto store = Store::Open(url);
  if (!store.ok()) return Fail(store.status().ToString());
  const std::string id = "ord_123-" + Uuid::V7().ToString().substr(28);

  // 2024: the first version of the code stored OrderCreated without a currency (and without a
  // schema version in the metadata, which reads as version 1).
  EventData old_event{Uuid::V7(), "OrderCreated", R"({"order_id":"ord_123","customer_id":"cust_456"})", "",
                      ContentType::kJson};
  if (auto r = (*store)->Append("order-" + id, ExpectedVersion::NoStream(), std::span(&old_event, 1)); !r.ok()) {
    return Fail(r.status().ToString());
  }

  // 2025: the code is at version 2; the upcaster fills in the currency on read.
  es::RepositoryOptions options;
  options.upcasters = MakeUpcasters();
  es::Repository<Order> repo(**store, options);
  auto loaded = repo.Load(id);
  if (!loaded.ok()) return Fail(loaded.status().ToString());
  Print("old order, upcast:", loaded->state);
  if (loaded->state.currency != "USD") return Fail("expected the v1 order to load with currency USD");

  // Products with quantity and the price at the time of adding (prices change later).
  if (auto r = repo.Execute(id, AddProduct{"prod_789", 2, 2999}); !r.ok()) return Fail(r.status().ToString());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const Timestamp before_second = Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (auto r = repo.Execute(id, AddProduct{"prod_790", 1, 1000}); !r.ok()) return Fail(r.status().ToString());
  if (auto r = repo.Execute(id, Submit{}); !r.ok()) return Fail(r.status().ToString());

  auto now = repo.Load(id);
  auto then = repo.LoadAsOf(id, before_second);  // the state as it was at that time
  if (!now.ok() || !then.ok()) return Fail("load failed");
  Print("now:", now->state);
  Print("as of the past time:", then->state);
  if (now->state.total_cents != 6998 || !now->state.submitted) return Fail("expected 69.98 USD, submitted");
  if (then->state.total_cents != 5998 || then->state.submitted) return Fail("expected 59.98 USD as of the past time");

  // Rules come back as a Status: adding to a submitted order is refused and writes nothing.
  auto refused = repo.Execute(id, AddProduct{"prod_791", 1, 500});
  std::printf("add after submit: %s\n", refused.status().ToString().c_str());
  if (refused.status().code() != StatusCode::kFailedPrecondition) return Fail("expected FailedPrecondition");
  return 0;
}

// Orders, as a functional decider (Decide / Evolve / Initial), with the seed's schema evolution:
// OrderCreated v1 had no currency; v2 added it, and old events are upcast to "USD" when read.
// Used by main.cc (the demo) and orders_test.cc.
#pragma once

#include <cairn/es/aggregate.h>
#include <cairn/es/event.h>
#include <cairn/es/schema.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace orders {

// [guide:upcaster]
// Version 2 (2025): the currency field is new. Version 1 events (2024) have no currency.
struct OrderCreated {
  std::string order_id;
  std::string customer_id;
  std::string currency;
};
CAIRN_EVENT(OrderCreated, "OrderCreated", 2, order_id, customer_id, currency)

// Reads every stored OrderCreated v1 as v2: the seed's default currency.
inline std::shared_ptr<const cairn::es::Upcasters> MakeUpcasters() {
  auto upcasters = std::make_shared<cairn::es::Upcasters>();
  upcasters->Add("OrderCreated", 1, [](cairn::es::Json& data) { data["currency"] = "USD"; });
  return upcasters;
}
// [/guide:upcaster]

// Everything needed to rebuild the order later: quantity and the price at the time of adding.
struct ProductAdded {
  std::string product_id;
  int64_t quantity = 0;
  int64_t unit_price_cents = 0;
};
CAIRN_EVENT(ProductAdded, "ProductAdded", 1, product_id, quantity, unit_price_cents)

struct OrderSubmitted {};
CAIRN_EVENT(OrderSubmitted, "OrderSubmitted", 1)

// Commands.
struct CreateOrder {
  std::string order_id;
  std::string customer_id;
  std::string currency = "USD";
};
struct AddProduct {
  std::string product_id;
  int64_t quantity = 0;
  int64_t unit_price_cents = 0;
};
struct Submit {};

struct Line {
  std::string product_id;
  int64_t quantity = 0;
  int64_t unit_price_cents = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Line, product_id, quantity, unit_price_cents)
};

struct OrderState {
  bool created = false;
  bool submitted = false;
  std::string customer_id;
  std::string currency;
  std::vector<Line> lines;
  int64_t total_cents = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(OrderState, created, submitted, customer_id, currency, lines, total_cents)
};

struct Order {
  using State = OrderState;
  using Event = std::variant<OrderCreated, ProductAdded, OrderSubmitted>;
  static constexpr std::string_view kCategory = "order";
  static constexpr uint32_t kStateVersion = 1;

  State Initial() const { return {}; }

  State Evolve(State s, const Event& event) const {
    if (auto* e = std::get_if<OrderCreated>(&event)) {
      s.created = true;
      s.customer_id = e->customer_id;
      s.currency = e->currency;
    } else if (auto* p = std::get_if<ProductAdded>(&event)) {
      s.lines.push_back({p->product_id, p->quantity, p->unit_price_cents});
      s.total_cents += p->quantity * p->unit_price_cents;
    } else if (std::holds_alternative<OrderSubmitted>(event)) {
      s.submitted = true;
    }
    return s;
  }

  // Domain errors come back as a Status (FailedPrecondition: not now; InvalidArgument: never).
  cairn::Result<std::vector<Event>> Decide(const CreateOrder& c, const State& s) const {
    if (s.created) return cairn::Status::FailedPrecondition("order already created");
    if (c.currency.size() != 3) return cairn::Status::InvalidArgument("currency: must be a 3-letter code");
    return std::vector<Event>{OrderCreated{c.order_id, c.customer_id, c.currency}};
  }
  cairn::Result<std::vector<Event>> Decide(const AddProduct& c, const State& s) const {
    if (!s.created) return cairn::Status::FailedPrecondition("no such order");
    if (s.submitted) return cairn::Status::FailedPrecondition("order already submitted");
    if (c.quantity <= 0) return cairn::Status::InvalidArgument("quantity: must be at least 1");
    return std::vector<Event>{ProductAdded{c.product_id, c.quantity, c.unit_price_cents}};
  }
  cairn::Result<std::vector<Event>> Decide(const Submit&, const State& s) const {
    if (!s.created || s.lines.empty()) return cairn::Status::FailedPrecondition("nothing to submit");
    if (s.submitted) return std::vector<Event>{};  // idempotent: already done
    return std::vector<Event>{OrderSubmitted{}};
  }
};

}  // namespace orders

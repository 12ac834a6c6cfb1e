// Orders with the test kit: the seed's upcasting example (a v1 OrderCreated without currency loads
// as USD), prices at the time of adding, and the rules as Status errors.
#include <cairn/es/testing.h>
#include <gtest/gtest.h>

#include "orders.h"

namespace orders {
namespace {

using cairn::StatusCode;
using cairn::es::Json;
using cairn::es::RepositoryOptions;
using cairn::es::testing::Scenario;

RepositoryOptions WithUpcasters() {
  RepositoryOptions options;
  options.upcasters = MakeUpcasters();
  return options;
}

// [guide:upcaster-test]
TEST(OrderTest, OldOrderCreatedWithoutCurrencyLoadsAsUsd) {
  Scenario<Order>(Order{}, WithUpcasters())
      .GivenStored("OrderCreated", Json{{"order_id", "ord_123"}, {"customer_id", "cust_456"}}, /*schema_version=*/1)
      .When(AddProduct{"prod_789", 2, 2999})
      .Then(ProductAdded{"prod_789", 2, 2999})
      .AndState([](const OrderState& order) {
        EXPECT_EQ(order.currency, "USD");
        EXPECT_EQ(order.total_cents, 5998);
      });
}
// [/guide:upcaster-test]

TEST(OrderTest, NewOrdersKeepTheirCurrency) {
  Scenario<Order>(Order{}, WithUpcasters())
      .When(CreateOrder{"ord_1", "cust_1", "EUR"})
      .Then(OrderCreated{"ord_1", "cust_1", "EUR"})
      .AndState([](const OrderState& order) { EXPECT_EQ(order.currency, "EUR"); });
}

TEST(OrderTest, WithoutTheUpcasterTheOldEventIsReportedNotGuessed) {
  Scenario<Order>()
      .GivenStored("OrderCreated", Json{{"order_id", "ord_123"}, {"customer_id", "cust_456"}}, 1)
      .When(AddProduct{"prod_789", 2, 2999})
      .ThenError(StatusCode::kNotSupported, "no upcaster for OrderCreated from schema version 1 to 2");
}

TEST(OrderTest, PriceAtTheTimeIsKept) {
  Scenario<Order>()
      .Given(OrderCreated{"o", "c", "USD"}, ProductAdded{"p", 1, 1000})
      .When(AddProduct{"p", 1, 1200})  // the price went up
      .Then(ProductAdded{"p", 1, 1200})
      .AndState([](const OrderState& order) { EXPECT_EQ(order.total_cents, 2200); });
}

TEST(OrderTest, Rules) {
  Scenario<Order>().When(AddProduct{"p", 1, 1}).ThenError(StatusCode::kFailedPrecondition, "no such order");
  Scenario<Order>().Given(OrderCreated{"o", "c", "USD"}).When(AddProduct{"p", 0, 1}).ThenError(StatusCode::kInvalidArgument, "quantity");
  Scenario<Order>().Given(OrderCreated{"o", "c", "USD"}).When(Submit{}).ThenError(StatusCode::kFailedPrecondition, "nothing");
  Scenario<Order>()
      .Given(OrderCreated{"o", "c", "USD"}, ProductAdded{"p", 1, 1}, OrderSubmitted{})
      .When(Submit{})
      .ThenNothing();
}

}  // namespace
}  // namespace orders

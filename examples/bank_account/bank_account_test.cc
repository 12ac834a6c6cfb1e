// The seed guide's given / when / then tests of the bank account, with cairn's test kit: each
// scenario runs on a memory: store through a real Repository.
#include <cairn/es/testing.h>
#include <gtest/gtest.h>

#include "bank_account.h"

namespace bank {
namespace {

using cairn::es::testing::Scenario;

// [guide:test]
TEST(BankAccountTest, WithdrawWithSufficientFunds) {
  Scenario<BankAccount>()
      .Given(AccountCreated{"acc_123"}, Deposited{1000})
      .When([](BankAccount& account) { account.Withdraw(100); })
      .Then(Withdrew{100})
      .AndState([](const BankAccount& account) { EXPECT_EQ(account.balance(), 900); });
}

TEST(BankAccountTest, WithdrawWithInsufficientFunds) {
  Scenario<BankAccount>()
      .Given(AccountCreated{"acc_123"}, Deposited{50})
      .When([](BankAccount& account) { account.Withdraw(100); })
      .ThenThrows<InsufficientFundsError>();  // and no events were appended
}
// [/guide:test]

TEST(BankAccountTest, TheSeedsStreamYields850) {
  Scenario<BankAccount>()
      .Given(AccountCreated{"Alice"}, Deposited{1000}, Withdrew{100}, Deposited{50})
      .When([](BankAccount& account) { account.Withdraw(100); })
      .Then(Withdrew{100})
      .AndState([](const BankAccount& account) { EXPECT_EQ(account.balance(), 850); });
}

TEST(BankAccountTest, OpenANewAccount) {
  Scenario<BankAccount>()
      .When([](BankAccount& account) {
        account.Open("Alice");
        account.Deposit(10);
      })
      .Then({AccountCreated{"Alice"}, Deposited{10}});
}

TEST(BankAccountTest, OpeningTwiceIsRefused) {
  Scenario<BankAccount>().Given(AccountCreated{"Alice"}).When([](BankAccount& a) { a.Open("Eve"); }).ThenThrows<std::logic_error>();
}

TEST(BankAccountTest, SnapshotKeepsTheState) {
  Scenario<BankAccount> s;
  s.Given(AccountCreated{"Alice"}, Deposited{70}).When([](BankAccount& a) { a.Withdraw(20); }).Then(Withdrew{20});
  ASSERT_TRUE(s.repository().TakeSnapshot("test").ok());
  auto loaded = s.repository().LoadWithStats("test");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->stats.snapshot_version, 2u);
  EXPECT_EQ(loaded->stats.events_replayed, 0u);
  EXPECT_EQ(loaded->value.balance(), 50);
  EXPECT_EQ(loaded->value.owner(), "Alice");
}

}  // namespace
}  // namespace bank

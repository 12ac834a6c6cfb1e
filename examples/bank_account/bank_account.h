// The seed guide's bank account, in the seed's aggregate style: command methods check the rules
// and record events, Apply evolves the state. Used by main.cc (the demo) and bank_account_test.cc.
#pragma once

#include <cairn/es/aggregate.h>
#include <cairn/es/event.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace bank {

// [guide:events]
struct AccountCreated {
  std::string owner;
};
CAIRN_EVENT(AccountCreated, "AccountCreated", 1, owner)

struct Deposited {
  int64_t amount = 0;
};
CAIRN_EVENT(Deposited, "Deposited", 1, amount)

struct Withdrew {
  int64_t amount = 0;
};
CAIRN_EVENT(Withdrew, "Withdrew", 1, amount)
// [/guide:events]

// [guide:aggregate]
class InsufficientFundsError : public std::runtime_error {
 public:
  InsufficientFundsError() : std::runtime_error("insufficient funds") {}
};

class BankAccount : public cairn::es::Aggregate<BankAccount, AccountCreated, Deposited, Withdrew> {
 public:
  static constexpr std::string_view kCategory = "account";  // streams "account-<id>"
  static constexpr uint32_t kStateVersion = 1;              // bump when the fields below change

  // Commands: check the rules first, then record what happened.
  void Open(std::string owner) {
    if (open_) throw std::logic_error("account already open");
    Record(AccountCreated{std::move(owner)});
  }
  void Deposit(int64_t amount) {
    if (amount <= 0) throw std::invalid_argument("deposit must be positive");
    Record(Deposited{amount});
  }
  void Withdraw(int64_t amount) {
    if (amount > balance_) throw InsufficientFundsError();
    Record(Withdrew{amount});
  }

  // Events: evolve the state. No rules here: events are facts.
  void Apply(const AccountCreated& e) {
    open_ = true;
    owner_ = e.owner;
  }
  void Apply(const Deposited& e) { balance_ += e.amount; }
  void Apply(const Withdrew& e) { balance_ -= e.amount; }

  int64_t balance() const { return balance_; }
  const std::string& owner() const { return owner_; }

  // The state a snapshot keeps.
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(BankAccount, open_, owner_, balance_)

 private:
  bool open_ = false;
  std::string owner_;
  int64_t balance_ = 0;
};
// [/guide:aggregate]

}  // namespace bank

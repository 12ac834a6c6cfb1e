// A small domain for the toolkit's unit tests: the seed's bank account in both aggregate styles.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "cairn/es/aggregate.h"
#include "cairn/es/event.h"

namespace cairn::es::test {

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

struct AccountClosed {};
CAIRN_EVENT(AccountClosed, "AccountClosed", 1)

class InsufficientFundsError : public std::runtime_error {
 public:
  InsufficientFundsError() : std::runtime_error("insufficient funds") {}
};

// The seed's style.
class Account : public Aggregate<Account, AccountCreated, Deposited, Withdrew, AccountClosed> {
 public:
  static constexpr std::string_view kCategory = "account";
  static constexpr uint32_t kStateVersion = 1;

  void Open(std::string owner) {
    if (opened_) throw std::logic_error("already open");
    Record(AccountCreated{std::move(owner)});
  }
  void Deposit(int64_t amount) { Record(Deposited{amount}); }
  void Withdraw(int64_t amount) {
    if (amount > balance_) throw InsufficientFundsError();
    Record(Withdrew{amount});
  }
  Status Close() {
    if (balance_ != 0) return Status::FailedPrecondition("balance is not zero");
    Record(AccountClosed{});
    return Status::Ok();
  }

  void Apply(const AccountCreated& e) {
    opened_ = true;
    owner_ = e.owner;
    balance_ = 0;
  }
  void Apply(const Deposited& e) { balance_ += e.amount; }
  void Apply(const Withdrew& e) { balance_ -= e.amount; }
  void Apply(const AccountClosed&) { closed_ = true; }

  int64_t balance() const { return balance_; }
  const std::string& owner() const { return owner_; }
  bool closed() const { return closed_; }

  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Account, opened_, owner_, balance_, closed_)

 private:
  bool opened_ = false;
  std::string owner_;
  int64_t balance_ = 0;
  bool closed_ = false;
};

// The same account as a decider.
struct Open {
  std::string owner;
};
struct Deposit {
  int64_t amount = 0;
};
struct Withdraw {
  int64_t amount = 0;
};

struct AccountState {
  bool opened = false;
  int64_t balance = 0;
  uint64_t events = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(AccountState, opened, balance, events)
};

struct AccountDecider {
  using State = AccountState;
  using Event = std::variant<AccountCreated, Deposited, Withdrew, AccountClosed>;
  static constexpr std::string_view kCategory = "acct";
  static constexpr uint32_t kStateVersion = 1;

  State Initial() const { return {}; }
  State Evolve(State s, const Event& e) const {
    ++s.events;
    if (std::holds_alternative<AccountCreated>(e)) s.opened = true;
    if (auto* d = std::get_if<Deposited>(&e)) s.balance += d->amount;
    if (auto* w = std::get_if<Withdrew>(&e)) s.balance -= w->amount;
    return s;
  }
  Result<std::vector<Event>> Decide(const Open& c, const State& s) const {
    if (s.opened) return Status::FailedPrecondition("account already open");
    return std::vector<Event>{AccountCreated{c.owner}};
  }
  Result<std::vector<Event>> Decide(const Deposit& c, const State& s) const {
    if (!s.opened) return Status::FailedPrecondition("account not open");
    if (c.amount <= 0) return Status::InvalidArgument("amount must be positive");
    return std::vector<Event>{Deposited{c.amount}};
  }
  // The throwing form, as the seed's style would do it.
  std::vector<Event> Decide(const Withdraw& c, const State& s) const {
    if (c.amount > s.balance) throw InsufficientFundsError();
    return {Withdrew{c.amount}};
  }
};

}  // namespace cairn::es::test

// The seed's bank account on cairn, end to end: the seed's five events give a balance of 850, and
// two concurrent withdrawals of 600 from 1000 end with one success and one conflict followed by a
// rejection, never a negative balance. Exits non-zero if any of that does not hold.
//
//   example_bank_account [STORE_URL]     (default memory:; e.g. file:/tmp/bank)
#include <cairn/es/repository.h>
#include <cairn/store.h>

#include <barrier>
#include <cstdio>
#include <string>
#include <thread>

#include "bank_account.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "bank_account: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cairn;
  using bank::BankAccount;
  const std::string url = argc > 1 ? argv[1] : "memory:";
  const std::string id = "acc_456-" + Uuid::V7().ToString().substr(28);  // a new account per run

  // [guide:repository]
  auto store = Store::Open(url);
  if (!store.ok()) return Fail(store.status().ToString());
  es::RepositoryOptions options;
  options.snapshots = es::SnapshotPolicy::Every(100);  // a snapshot each 100 events
  es::Repository<BankAccount> accounts(**store, options);

  // Each Execute loads the account (or starts a new one), runs the command, and appends the new
  // events expecting the version it loaded; the context goes into every event's metadata.
  auto context = es::CommandContext::New("teller-7");
  auto opened = accounts.Execute(id, [](BankAccount& a) { a.Open("Alice"); }, context);
  if (!opened.ok()) return Fail(opened.status().ToString());
  for (int64_t amount : {1000, -100, 50, -100}) {
    auto done = accounts.Execute(id, [amount](BankAccount& a) {
      if (amount > 0) a.Deposit(amount); else a.Withdraw(-amount);
    }, context);
    if (!done.ok()) return Fail(done.status().ToString());
  }
  auto account = accounts.Load(id);
  if (!account.ok()) return Fail(account.status().ToString());
  std::printf("%s: balance %lld after %llu events\n", accounts.StreamOf(id).c_str(),
              static_cast<long long>(account->balance()), static_cast<unsigned long long>(*account->version() + 1));
  // [/guide:repository]
  if (account->balance() != 850) return Fail("expected the seed's balance of 850");

  // The seed's race: two withdrawals of 600 from 1000 at once. Both load the account at the same
  // version before either saves (the barrier); the store accepts one append and rejects the other
  // with a conflict; Execute reloads (balance 400) and runs the command again, which refuses.
  const std::string race = id + "-race";
  if (!accounts.Execute(race, [](BankAccount& a) { a.Open("Bob"); a.Deposit(1000); }).ok()) return Fail("setup");
  std::barrier both_loaded(2);
  std::string outcome[2];
  auto withdraw = [&](int who) {
    int attempt = 0;
    try {
      auto r = accounts.Execute(race, [&](BankAccount& a) {
        if (attempt++ == 0) both_loaded.arrive_and_wait();
        a.Withdraw(600);
      });
      outcome[who] = r.ok() ? "withdrew 600 (attempt " + std::to_string(r->attempts) + ")" : r.status().ToString();
    } catch (const bank::InsufficientFundsError& e) {
      outcome[who] = "conflict, reloaded, then rejected: " + std::string(e.what()) + " (attempt " +
                     std::to_string(attempt) + ")";
    }
  };
  std::thread t1(withdraw, 0), t2(withdraw, 1);
  t1.join();
  t2.join();
  std::printf("withdrawal 1: %s\nwithdrawal 2: %s\n", outcome[0].c_str(), outcome[1].c_str());
  auto after = accounts.Load(race);
  if (!after.ok()) return Fail(after.status().ToString());
  std::printf("%s: balance %lld\n", accounts.StreamOf(race).c_str(), static_cast<long long>(after->balance()));
  const bool one_each = (outcome[0].starts_with("withdrew") != outcome[1].starts_with("withdrew")) &&
                        (outcome[0].starts_with("conflict") != outcome[1].starts_with("conflict"));
  if (!one_each || after->balance() != 400) return Fail("expected one success and one conflict-then-rejection");
  return 0;
}

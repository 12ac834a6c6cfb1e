// Appends to and reads back a memory: store through the installed headers and library, and runs
// a command through the installed event-sourcing toolkit (cairn/es).
#include <cairn/es/repository.h>
#include <cairn/store.h>

#include <cstdio>

namespace {

struct Deposited {
  int64_t amount = 0;
};
CAIRN_EVENT(Deposited, "Deposited", 1, amount)

class Account : public cairn::es::Aggregate<Account, Deposited> {
 public:
  static constexpr std::string_view kCategory = "acct";
  void Deposit(int64_t amount) { Record(Deposited{amount}); }
  void Apply(const Deposited& e) { balance += e.amount; }
  int64_t balance = 0;
};

}  // namespace

int main() {
  auto store = cairn::Store::Open("memory:");
  if (!store.ok()) return 1;
  std::vector<cairn::EventData> events{{cairn::Uuid{}, "Deposited", R"({"amount":100})", "", cairn::ContentType::kJson}};
  auto r = (*store)->Append("account-1", cairn::ExpectedVersion::NoStream(), events);
  if (!r.ok()) return 2;
  auto read = (*store)->ReadStream("account-1", {});
  if (!read.ok() || !read->Next() || read->event().data != R"({"amount":100})") return 3;
  cairn::es::Repository<Account> accounts(**store);
  if (!accounts.Execute("1", [](Account& a) { a.Deposit(5); }).ok()) return 4;
  auto account = accounts.Load("1");
  if (!account.ok() || account->balance != 5) return 5;
  std::printf("consumer ok: %s, toolkit balance %lld\n", std::string(read->event().type).c_str(),
              static_cast<long long>(account->balance));
  return 0;
}

// Appends to and reads back a memory: store through the installed headers and library.
#include <cairn/store.h>

#include <cstdio>

int main() {
  auto store = cairn::Store::Open("memory:");
  if (!store.ok()) return 1;
  std::vector<cairn::EventData> events{{cairn::Uuid{}, "Deposited", R"({"amount":100})", "", cairn::ContentType::kJson}};
  auto r = (*store)->Append("account-1", cairn::ExpectedVersion::NoStream(), events);
  if (!r.ok()) return 2;
  auto read = (*store)->ReadStream("account-1", {});
  if (!read.ok() || !read->Next() || read->event().data != R"({"amount":100})") return 3;
  std::printf("consumer ok: %s\n", std::string(read->event().type).c_str());
  return 0;
}

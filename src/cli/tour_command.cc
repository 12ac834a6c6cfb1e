// `cairn tour`: the seed guide's bank account, end to end on the store: append its five events to
// a fresh stream, read them back, rebuild the balance by replaying them, and show an optimistic
// concurrency conflict. What `make run` starts until `cairn serve` exists. Every run uses a new
// stream, so it can run again and again on the same data directory.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

using json = Json;

std::string ShortRandomId() {
  std::random_device random;
  return fmt::format("{:08x}", static_cast<uint32_t>(random()));
}

EventData MakeEvent(std::string type, const json& data) {
  EventData event;
  event.id = Uuid::V7();
  event.type = std::move(type);
  event.data = JsonText(data);
  event.metadata = JsonText(json{{"$user", "tour"}});
  event.content_type = ContentType::kJson;
  return event;
}

// The aggregate's evolve step: the balance after one more event.
int64_t Apply(int64_t balance, std::string_view type, const json& data) {
  int64_t amount = data.is_object() && data.contains("amount") && data["amount"].is_number_integer()
                       ? data["amount"].get<int64_t>()
                       : 0;
  if (type == "AccountCreated") return 0;
  if (type == "Deposited") return balance + amount;
  if (type == "Withdrew") return balance - amount;
  return balance;
}

int RunTour(const std::string& db) {
  const std::string url = NormalizeDbUrl(db);
  auto opened = OpenStore(db);
  if (!opened.ok()) return ReportError(opened.status());
  Store& store = **opened;
  const std::string stream = "account-" + ShortRandomId();

  std::printf("cairn tour: the seed's bank account, event-sourced on %s\n\n", url.c_str());

  // 1. The account's history, as events (past tense: what happened).
  std::vector<EventData> events = {
      MakeEvent("AccountCreated", {{"owner", "Alice"}, {"currency", "USD"}}),
      MakeEvent("Deposited", {{"amount", 1000}}),
      MakeEvent("Withdrew", {{"amount", 100}}),
      MakeEvent("Deposited", {{"amount", 50}}),
      MakeEvent("Withdrew", {{"amount", 100}}),
  };
  std::printf("1. Append %zu events to the new stream %s (expected version: no-stream)\n", events.size(),
              stream.c_str());
  auto appended = store.Append(stream, ExpectedVersion::NoStream(), events);
  if (!appended.ok()) return ReportError(appended.status());
  std::printf("   durable at versions %llu..%llu, position %llu\n\n",
              static_cast<unsigned long long>(appended->first_version),
              static_cast<unsigned long long>(appended->next_version - 1),
              static_cast<unsigned long long>(appended->position.value()));

  // 2. Read back, and 3. rebuild the state by replaying: the balance is never stored.
  auto cursor = store.ReadStream(stream);
  if (!cursor.ok()) return ReportError(cursor.status());
  std::printf("2. Read the stream back and 3. replay it to rebuild the balance\n");
  std::printf("   %-3s %-15s %-36s %-8s %s\n", "v", "type", "data", "balance", "recorded at");
  int64_t balance = 0;
  StreamVersion last_version = 0;
  uint64_t count = 0;
  while (cursor->Next()) {
    const RecordedEventView& event = cursor->event();
    json data = json::parse(event.data, nullptr, /*allow_exceptions=*/false);
    balance = Apply(balance, event.type, data);
    last_version = event.version;
    ++count;
    std::printf("   %-3llu %-15.*s %-36s %-8lld %s\n", static_cast<unsigned long long>(event.version),
                static_cast<int>(event.type.size()), event.type.data(), std::string(event.data).c_str(),
                static_cast<long long>(balance), event.recorded_at.ToRfc3339().c_str());
  }
  if (!cursor->status().ok()) return ReportError(cursor->status());
  std::printf("   balance after replaying %llu events: %lld\n\n", static_cast<unsigned long long>(count),
              static_cast<long long>(balance));

  // 4. Two writers that loaded the account at version 3 both withdraw: the second must lose.
  const StreamVersion stale = last_version - 1;
  std::printf("4. Optimistic concurrency: withdraw 600 by a writer that loaded the account at version %llu\n",
              static_cast<unsigned long long>(stale));
  std::vector<EventData> late = {MakeEvent("Withdrew", {{"amount", 600}})};
  auto conflict = store.Append(stream, ExpectedVersion::Exact(stale), late);
  if (conflict.ok()) {
    return ReportError(Status::Internal("an append with a stale expected version was accepted"));
  }
  if (!conflict.status().IsConflict()) return ReportError(conflict.status());
  std::string actual = conflict.status().actual_version()
                           ? std::to_string(*conflict.status().actual_version())
                           : std::string("none");
  std::printf("   rejected, nothing written: %s\n", conflict.status().ToString().c_str());
  std::printf("   the stream's actual version is %s: re-read, re-decide, retry\n\n", actual.c_str());

  Status closed = store.Close();
  if (!closed.ok()) return ReportError(closed);
  std::printf("Try next:\n");
  std::printf("  ./build/release/cairn read --db %s %s\n", url.c_str(), stream.c_str());
  std::printf("  ./build/release/cairn read --db %s '$all' --backward --max 5\n", url.c_str());
  std::printf("  ./build/release/cairn verify --db %s\n", url.c_str());
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

Command AddTourCommand(CLI::App& parent, std::string* db) {
  CLI::App* app =
      parent.add_subcommand("tour", "The seed's bank account, end to end (what `make run` starts)");
  app->footer(
      "A guided tour on the store: the seed's bank account appended to a new stream, read back,\n"
      "its balance rebuilt by replaying the events, and an optimistic-concurrency conflict.");
  AddDbOption(app, db);
  return Command{app, [db] { return RunTour(*db); }};
}

}  // namespace cairn::cli

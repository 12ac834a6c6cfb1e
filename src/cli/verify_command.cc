// `cairn verify`: checks every record of a store's log (VerifyStore) and reports the first
// corruption with its segment file and offset.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

struct VerifyFlags {
  bool json = false;
};

int RunVerify(const VerifyFlags& flags, const std::string& db) {
  // Progress goes to stderr, and only to a terminal: pipes and logs get the result alone.
  const bool show_progress = isatty(STDERR_FILENO) == 1 && !flags.json;
  uint64_t checked_bytes = 0;
  int last_percent = -1;
  Status status = VerifyStore(NormalizeDbUrl(db), [&](uint64_t done, uint64_t total) {
    checked_bytes = std::max(checked_bytes, done);
    if (!show_progress || total == 0) return;
    int percent = static_cast<int>(std::min<uint64_t>(100, done * 100 / total));
    if (percent == last_percent) return;
    last_percent = percent;
    std::fprintf(stderr, "\rverifying: %3d%% of %llu bytes", percent, static_cast<unsigned long long>(total));
    std::fflush(stderr);
  });
  if (last_percent >= 0) std::fprintf(stderr, "\n");

  if (flags.json) {
    Json out = {{"ok", status.ok()}};
    if (status.ok()) {
      out["bytes_checked"] = checked_bytes;
    } else {
      out.update(StatusToJson(status));
    }
    std::printf("%s\n", JsonText(out).c_str());
  } else if (status.ok()) {
    std::printf("ok: %llu bytes checked\n", static_cast<unsigned long long>(checked_bytes));
  }
  std::fflush(stdout);
  if (!status.ok()) return ReportError(status);
  return kExitOk;
}

}  // namespace

Command AddVerifyCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("verify", "Check every record of the log; exit 5 on corruption");
  app->footer(
      "Check the checksum and structure of every record in the store's log. Prints \"ok: N bytes checked\"\n"
      "and exits 0, or prints the first corruption (segment file and offset) and exits 5.\n"
      "Takes the data directory's lock, so it cannot run beside a process that has the store open.");
  auto flags = std::make_shared<VerifyFlags>();
  AddDbOption(app, db);
  app->add_flag(
      "--json", flags->json,
      "Print {\"ok\":true,\"bytes_checked\":N} or {\"ok\":false,\"error\":CODE,\"message\":...} on stdout");
  return Command{app, [flags, db] { return RunVerify(*flags, *db); }};
}

}  // namespace cairn::cli

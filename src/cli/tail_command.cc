// `cairn tail`: prints the events of a stream, or of $all, as JSON lines (json_format.h) as they
// commit, until SIGINT or SIGTERM. A catch-up subscription (include/cairn/subscription.h).
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "cairn/store.h"
#include "cairn/subscription.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "server/remote.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

constexpr std::string_view kAll = "$all";

std::atomic<bool> g_interrupted{false};

void OnSignal(int) { g_interrupted.store(true); }

struct TailFlags {
  std::string stream;
  std::optional<uint64_t> from;
  uint64_t max_count = std::numeric_limits<uint64_t>::max();
  std::vector<std::string> types;
  std::vector<std::string> categories;
  std::vector<std::string> prefixes;
};

int RunTail(const TailFlags& flags, const std::string& db) {
  // Without SA_RESTART, so that the signal ends a wait promptly; the loop below checks the flag
  // at least every 100 ms anyway.
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  const bool remote = server::IsRemoteUrl(db);
  std::unique_ptr<Store> local;
  if (!remote) {
    Options options;
    options.create_if_missing = false;
    auto store = OpenStore(db, options);
    if (!store.ok()) return ReportError(store.status());
    local = std::move(store).value();
  }
  auto* store = &local;

  Result<std::unique_ptr<Subscription>> sub = Status::Internal("no subscription");
  if (remote) {
    // The server runs the subscription (its own catch-up and live delivery).
    if (flags.stream != kAll && (!flags.types.empty() || !flags.categories.empty() || !flags.prefixes.empty())) {
      return ReportError(Status::InvalidArgument("--type, --category and --prefix: only for '$all'"));
    }
    EventFilter filter;
    filter.event_types = flags.types;
    filter.categories = flags.categories;
    filter.stream_prefixes = flags.prefixes;
    sub = server::SubscribeRemote(db, flags.stream, flags.from, filter);
  } else if (flags.stream == kAll) {
    SubscribeToAllOptions o;
    o.from = flags.from ? AllFrom::Checkpoint(Position(*flags.from)) : AllFrom::Now();
    o.filter.event_types = flags.types;
    o.filter.categories = flags.categories;
    o.filter.stream_prefixes = flags.prefixes;
    sub = SubscribeToAll(**store, o);
  } else {
    if (!flags.types.empty() || !flags.categories.empty() || !flags.prefixes.empty()) {
      return ReportError(Status::InvalidArgument("--type, --category and --prefix: only for '$all'"));
    }
    SubscribeToStreamOptions o;
    o.from = flags.from ? StreamFrom::Version(*flags.from) : StreamFrom::Now();
    sub = SubscribeToStream(**store, flags.stream, o);
  }
  if (!sub.ok()) return ReportError(sub.status());

  std::string line;
  uint64_t printed = 0;
  bool write_failed = false;
  while (!write_failed && printed < flags.max_count && !g_interrupted.load()) {
    if (!(*sub)->Next(std::chrono::milliseconds(100))) {
      if ((*sub)->done()) break;
      continue;
    }
    const SubscriptionMessage& m = (*sub)->message();
    if (m.kind != SubscriptionMessage::Kind::kEvent) {
      if (m.kind == SubscriptionMessage::Kind::kCaughtUp) write_failed = std::fflush(stdout) != 0;
      continue;
    }
    line = JsonText(RecordedEventToJson(m.event));
    line += '\n';
    write_failed = std::fwrite(line.data(), 1, line.size(), stdout) != line.size();
    ++printed;
    // History goes out in large writes; live events as each one commits.
    if (!write_failed && (*sub)->live()) write_failed = std::fflush(stdout) != 0;
  }
  if (!write_failed) write_failed = std::fflush(stdout) != 0;
  if (write_failed) {
    if (errno == EPIPE) return kExitError;
    return ReportError(Status::IOError(fmt::format("write stdout: {}", std::strerror(errno))));
  }
  if (!(*sub)->status().ok()) return ReportError((*sub)->status());
  sub->reset();
  if (local) {
    Status closed = local->Close();
    if (!closed.ok()) return ReportError(closed);
  }
  return kExitOk;
}

}  // namespace

Command AddTailCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("tail", "Print the events of a stream or of $all as they commit, as JSON lines");
  app->footer(
      "Print the events of STREAM (or of '$all') as JSON lines, the same lines as `cairn read`, as they\n"
      "are committed, until interrupted (SIGINT or SIGTERM; exit 0). Without --from only new events;\n"
      "with --from the history from there first. A data directory is open in one process at a time:\n"
      "to watch appends made by another process, tail through the server (`cairn serve`).");
  auto flags = std::make_shared<TailFlags>();
  AddDbOption(app, db);
  AddServerOption(app, db);
  app->add_option("STREAM", flags->stream, "The stream, or '$all'")->required();
  app->add_option("--from", flags->from,
                  "Start with history. Stream: the first version to print. $all: the position to start at "
                  "(events at or after it; 0 for everything)")
      ->type_name("N");
  app->add_option("--max", flags->max_count, "Exit after printing N events")->type_name("N");
  app->add_option("--type", flags->types, "$all: only events of this type (repeatable)")->type_name("TYPE");
  app->add_option("--category", flags->categories, "$all: only streams of this category (repeatable)")
      ->type_name("CATEGORY");
  app->add_option("--prefix", flags->prefixes, "$all: only streams starting with this (repeatable)")
      ->type_name("PREFIX");
  return Command{app, [flags, db] { return RunTail(*flags, *db); }};
}

}  // namespace cairn::cli

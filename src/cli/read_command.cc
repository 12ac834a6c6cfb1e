// `cairn read`: prints the events of one stream, or of $all, as JSON lines (json_format.h).
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

constexpr std::string_view kAll = "$all";

struct ReadFlags {
  std::string stream;
  std::optional<uint64_t> from;
  bool backward = false;
  uint64_t max_count = std::numeric_limits<uint64_t>::max();
};

int RunRead(const ReadFlags& flags, const std::string& db) {
  // A read never creates a store: a mistyped --db should say so (NotFound), not leave an empty
  // data directory behind.
  Options options;
  options.create_if_missing = false;
  auto store = OpenStore(db, options);
  if (!store.ok()) return ReportError(store.status());
  const ReadDirection direction = flags.backward ? ReadDirection::kBackward : ReadDirection::kForward;

  Result<EventCursor> cursor = Status::Internal("no read");
  if (flags.stream == kAll) {
    ReadAllOptions options;
    options.direction = direction;
    options.max_count = flags.max_count;
    if (flags.from) {
      options.from = Position(*flags.from);
    } else {
      options.from = flags.backward ? Position::End() : Position::Start();
    }
    cursor = (*store)->ReadAll(options);
  } else {
    ReadStreamOptions options;
    options.direction = direction;
    options.max_count = flags.max_count;
    options.from = flags.from;
    cursor = (*store)->ReadStream(flags.stream, options);
  }
  if (!cursor.ok()) return ReportError(cursor.status());

  // Lines go out as they are read: a read of a large stream needs no memory for the whole.
  std::string line;
  bool write_failed = false;
  while (!write_failed && cursor->Next()) {
    line = JsonText(RecordedEventToJson(cursor->event()));
    line += '\n';
    write_failed = std::fwrite(line.data(), 1, line.size(), stdout) != line.size();
  }
  if (!write_failed) write_failed = std::fflush(stdout) != 0;
  if (write_failed) {
    // The reader went away (`cairn read ... | head`): that is how such pipelines end, not news.
    if (errno == EPIPE) return kExitError;
    return ReportError(Status::IOError(fmt::format("write stdout: {}", std::strerror(errno))));
  }
  if (!cursor->status().ok()) return ReportError(cursor->status());
  Status closed = (*store)->Close();
  if (!closed.ok()) return ReportError(closed);
  return kExitOk;
}

}  // namespace

Command AddReadCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("read", "Print the events of a stream or of $all as JSON lines");
  app->footer(
      "Print the events of STREAM (or of '$all', the whole store in commit order) as JSON lines:\n"
      "  {\"stream\",\"version\",\"position\",\"id\",\"type\",\"recorded_at\",\"data\",\"metadata\"}\n"
      "data and metadata are JSON values; data that is not JSON is base64 with \"content_type\":\"bytes\".");
  auto flags = std::make_shared<ReadFlags>();
  AddDbOption(app, db);
  AddServerOption(app, db);
  app->add_option("STREAM", flags->stream, "The stream, or '$all'")->required();
  app->add_option("--from", flags->from,
                  "Stream: the first version to print (backward: the last). $all: the position to start at "
                  "(forward: at or after it; backward: strictly before it)")
      ->type_name("N");
  app->add_flag("--backward", flags->backward, "Newest first");
  app->add_option("--max", flags->max_count, "Print at most N events")->type_name("N");
  return Command{app, [flags, db] { return RunRead(*flags, *db); }};
}

}  // namespace cairn::cli

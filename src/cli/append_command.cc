// `cairn append`: one event from the command line, or a stream of append requests as JSON lines
// on stdin ("-"), pipelined through Store::AppendAsync so that the store's group commit batches
// them. Results are printed in request order, each only once its append is acknowledged.
#include <fmt/format.h>
#include <sys/types.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

// How many requests may be read but not yet printed. Bounds memory (each holds its events until
// acknowledged) while keeping enough in flight for group commit to fill its batches.
constexpr uint64_t kMaxInFlightRequests = 4096;

// The stdin mode. One reader (the calling thread) parses lines and submits appends; the store's
// callbacks park each outcome under its request's sequence number; one printer thread writes the
// outcomes strictly in sequence order. The printer, not the callback, does the writing because a
// slow stdout must never stall the store's thread.
class AppendPipeline {
 public:
  explicit AppendPipeline(Store* store) : store_(store) {}

  // Reads `in` to its end. Returns kExitOk, or kExitError after an I/O error on `in` or stdout.
  int Run(FILE* in) {
    std::thread printer([this] { PrintLoop(); });
    Status input_error = ReadLoop(in);
    {
      std::lock_guard lock(mu_);
      input_done_ = true;
    }
    ready_cv_.notify_one();
    // Every submitted request completes (the store calls back once for each), so this returns
    // once all outcomes are printed or dropped; no callback can touch `this` afterwards.
    printer.join();
    if (!input_error.ok()) return ReportError(input_error);
    if (!output_error_.ok()) return ReportError(output_error_);
    return kExitOk;
  }

 private:
  // A finished request: either a line that is ready (a parse error) or the store's outcome.
  struct Outcome {
    std::string stream;
    std::optional<Result<AppendResult>> result;
    std::string ready_line;
  };

  Status ReadLoop(FILE* in) {
    char* buffer = nullptr;
    size_t capacity = 0;
    uint64_t line_number = 0;
    Status status;
    while (true) {
      errno = 0;
      ssize_t length = getline(&buffer, &capacity, in);
      if (length < 0) {
        if (ferror(in)) status = Status::IOError(fmt::format("read stdin: {}", std::strerror(errno)));
        break;
      }
      ++line_number;
      std::string_view line(buffer, static_cast<size_t>(length));
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank: no request

      uint64_t seq;
      {
        std::unique_lock lock(mu_);
        space_cv_.wait(lock,
                       [&] { return submitted_ - printed_ < kMaxInFlightRequests || !output_error_.ok(); });
        if (!output_error_.ok()) break;  // nobody will see more results; stop reading
        seq = submitted_++;
      }

      auto request = ParseAppendRequestLine(line);
      if (!request.ok()) {
        Status error = request.status().WithContext(fmt::format("line {}", line_number));
        Finish(seq, Outcome{"", std::nullopt, JsonText(StatusToJson(error))});
        continue;
      }
      // No lock is held here: a rejected append may call back at once, on this thread.
      std::string stream = request->stream;
      store_->AppendAsync(
          request->stream, request->expected, request->events,
          [this, seq, line_number, stream = std::move(stream)](Result<AppendResult> result) mutable {
            // Every error line says which input line it answers.
            if (!result.ok()) result = result.status().WithContext(fmt::format("line {}", line_number));
            Finish(seq, Outcome{std::move(stream), std::move(result), ""});
          });
    }
    free(buffer);
    return status;
  }

  void Finish(uint64_t seq, Outcome outcome) {
    bool wake;
    {
      std::lock_guard lock(mu_);
      wake = seq == printed_;
      done_.emplace(seq, std::move(outcome));
    }
    if (wake) ready_cv_.notify_one();
  }

  void PrintLoop() {
    std::unique_lock lock(mu_);
    while (true) {
      ready_cv_.wait(lock,
                     [&] { return done_.count(printed_) > 0 || (input_done_ && printed_ == submitted_); });
      if (done_.count(printed_) == 0) return;  // input ended and everything is printed

      // Take every outcome that is next in order, then write them without holding the lock.
      std::vector<Outcome> batch;
      for (auto it = done_.begin(); it != done_.end() && it->first == printed_ + batch.size();) {
        batch.push_back(std::move(it->second));
        it = done_.erase(it);
      }
      bool write = output_error_.ok();
      lock.unlock();

      Status status;
      if (write) {
        std::string text;
        for (const Outcome& outcome : batch) {
          if (!outcome.result) {
            text += outcome.ready_line;
          } else if (outcome.result->ok()) {
            text += JsonText(AppendResultToJson(outcome.stream, outcome.result->value()));
          } else {
            text += JsonText(StatusToJson(outcome.result->status()));
          }
          text += '\n';
        }
        if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
          status = Status::IOError(fmt::format("write stdout: {}", std::strerror(errno)));
        }
      }

      lock.lock();
      if (!status.ok() && output_error_.ok()) output_error_ = status;
      printed_ += batch.size();
      space_cv_.notify_one();
    }
  }

  Store* store_;
  std::mutex mu_;
  std::condition_variable ready_cv_;  // the printer waits for the next outcome or the end
  std::condition_variable space_cv_;  // the reader waits for room below kMaxInFlightRequests
  std::map<uint64_t, Outcome> done_;  // finished, not yet printed, by sequence number
  uint64_t submitted_ = 0;            // sequence numbers handed out
  uint64_t printed_ = 0;              // outcomes printed (or dropped after an output error)
  bool input_done_ = false;
  Status output_error_;
};

struct AppendFlags {
  std::string stream;
  std::string data_json;
  std::string expected = "any";
  std::string type = "event";
  std::string id;
  std::string metadata_json;
  CLI::Option* data_option = nullptr;
  CLI::Option* expected_option = nullptr;
  CLI::Option* type_option = nullptr;
  CLI::Option* id_option = nullptr;
  CLI::Option* metadata_option = nullptr;
};

int UsageError(CLI::App* app, std::string_view message) {
  // The parent's help descends into the chosen subcommand and names the program ("cairn append").
  const CLI::App* root = app->get_parent() != nullptr ? app->get_parent() : app;
  std::fprintf(stderr, "cairn: %.*s\n\n%s", static_cast<int>(message.size()), message.data(),
               root->help().c_str());
  return kExitUsage;
}

int RunStdinMode(const std::string& db) {
  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());
  int code = AppendPipeline(store->get()).Run(stdin);
  Status closed = (*store)->Close();
  if (!closed.ok() && code == kExitOk) return ReportError(closed);
  return code;
}

int RunAppend(CLI::App* app, const AppendFlags& flags, const std::string& db) {
  if (flags.stream == "-") {
    for (const CLI::Option* option : {flags.data_option, flags.expected_option, flags.type_option,
                                      flags.id_option, flags.metadata_option}) {
      if (option->count() > 0) {
        return UsageError(
            app, fmt::format("{} does not apply with '-' (requests come from stdin)", option->get_name()));
      }
    }
    return RunStdinMode(db);
  }
  if (flags.data_option->count() == 0)
    return UsageError(app, "DATA_JSON is required (or STREAM '-' for stdin)");

  auto expected = ExpectedVersion::Parse(flags.expected);
  if (!expected) {
    return UsageError(
        app, fmt::format("--expected: '{}' is not valid; want any, no-stream, exists or a version number",
                         flags.expected));
  }
  EventData event;
  event.type = flags.type;
  event.content_type = ContentType::kJson;
  if (flags.id_option->count() > 0) {
    auto id = Uuid::Parse(flags.id);
    if (!id) return UsageError(app, fmt::format("--id: '{}' is not a UUID", flags.id));
    event.id = *id;
  }
  auto data = Json::parse(flags.data_json, nullptr, /*allow_exceptions=*/false);
  if (data.is_discarded()) return UsageError(app, "DATA_JSON: not valid JSON");
  event.data = JsonText(data);
  if (flags.metadata_option->count() > 0) {
    auto metadata = Json::parse(flags.metadata_json, nullptr, /*allow_exceptions=*/false);
    if (metadata.is_discarded()) return UsageError(app, "--metadata: not valid JSON");
    if (!metadata.is_null()) event.metadata = JsonText(metadata);
  }

  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());
  auto result = (*store)->Append(flags.stream, *expected, std::span<const EventData>(&event, 1));
  if (!result.ok()) return ReportError(result.status());
  std::string line = JsonText(AppendResultToJson(flags.stream, *result)) + "\n";
  Status closed = (*store)->Close();
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
    return ReportError(Status::IOError(fmt::format("write stdout: {}", std::strerror(errno))));
  }
  if (!closed.ok()) return ReportError(closed);
  return kExitOk;
}

}  // namespace

Command AddAppendCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("append", "Append an event, or JSON-lines requests from stdin ('-')");
  app->footer(
      "Append one event to STREAM and print {\"stream\",\"first_version\",\"next_version\",\"position\"} "
      "as JSON.\nWith STREAM '-', read append requests as JSON lines from stdin, one line per request:\n"
      "  {\"stream\": S, \"expected\": \"any\"|\"no-stream\"|\"exists\"|N,\n"
      "   \"events\": [{\"id\"?: UUID, \"type\": T, \"data\": JSON, \"metadata\"?: JSON}]}\n"
      "and print one result line per request, in request order, once it is durable; a request that fails\n"
      "gets {\"error\": CODE, \"message\": ...} (and \"actual_version\" for a conflict) and the rest go on.");
  auto flags = std::make_shared<AppendFlags>();
  AddDbOption(app, db);
  AddServerOption(app, db);
  app->add_option("STREAM", flags->stream, "The stream to append to, or '-' to read requests from stdin")
      ->required();
  flags->data_option = app->add_option("DATA_JSON", flags->data_json, "The event's data: any JSON value");
  flags->expected_option =
      app->add_option("--expected", flags->expected,
                      "What the stream must look like: any, no-stream, exists, or N (its last version). "
                      "Default: any")
          ->type_name("E");
  flags->type_option =
      app->add_option("--type", flags->type, "The event type. Default: event")->type_name("TYPE");
  flags->id_option =
      app->add_option("--id", flags->id, "The event id (makes retries idempotent). Default: a new UUIDv7")
          ->type_name("UUID");
  flags->metadata_option =
      app->add_option("--metadata", flags->metadata_json, "The event's metadata: any JSON value")
          ->type_name("JSON");
  return Command{app, [app, flags, db] { return RunAppend(app, *flags, *db); }};
}

}  // namespace cairn::cli

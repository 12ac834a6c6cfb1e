// `cairn project`: runs a declarative SQL projection (docs/projections.md) into a SQLite file.
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <string>

#include "cairn/projection.h"
#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

std::atomic<ProjectionRunner*> g_runner{nullptr};

void OnSignal(int) {
  // Stop() is one atomic store: safe in a signal handler.
  if (ProjectionRunner* r = g_runner.load()) r->Stop();
}

struct ProjectFlags {
  std::string spec;
  std::string sink;
  bool follow = false;
  bool rebuild = false;
  bool status_only = false;
  uint32_t batch = ProjectionOptions{}.batch_max_events;
  std::string on_error = "stop";
};

int PrintStatus(ProjectionRunner& runner) {
  auto status = runner.GetStatus();
  if (!status.ok()) return ReportError(status.status());
  Json line = {{"projection", status->name},
               {"checkpoint", status->checkpoint.value()},
               {"events_handled", status->events_handled},
               {"events_parked", status->events_parked},
               {"lag_events", status->lag_events},
               {"lag_ms", status->lag_ms}};
  line["last_recorded_at"] = status->last_recorded_at ? Json(status->last_recorded_at->ToRfc3339()) : Json(nullptr);
  std::printf("%s\n", JsonText(line).c_str());
  std::fflush(stdout);
  return kExitOk;
}

int RunProject(const ProjectFlags& flags, const std::string& db) {
  std::ifstream in(flags.spec, std::ios::binary);
  if (!in) return ReportError(Status::NotFound(fmt::format("--spec: cannot read {}", flags.spec)));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto projection = ProjectionFromSpec(text);
  if (!projection.ok()) return ReportError(projection.status().WithContext(flags.spec));
  auto path = ProjectionSinkTarget(flags.sink);
  if (!path.ok()) return ReportError(path.status().WithContext("--sink"));
  ProjectionOptions options;
  options.batch_max_events = flags.batch;
  if (flags.on_error == "park") {
    options.on_error = OnHandlerError::kPark;
  } else if (flags.on_error != "stop") {
    return ReportError(Status::InvalidArgument(fmt::format("--on-error: \"{}\" (expected stop or park)", flags.on_error)));
  }

  Options store_options;
  store_options.create_if_missing = false;
  auto store = OpenStore(db, store_options);
  if (!store.ok()) return ReportError(store.status());
  auto runner = ProjectionRunner::Open(**store, std::move(*projection), *path, options);
  if (!runner.ok()) return ReportError(runner.status());
  if (flags.status_only) return PrintStatus(**runner);
  if (flags.rebuild) {
    Status s = (*runner)->Rebuild();
    if (!s.ok()) return ReportError(s);
  }

  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  g_runner.store(runner->get());
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  Status s = (*runner)->Run({.follow = flags.follow});
  g_runner.store(nullptr);
  if (!s.ok()) return ReportError(s);
  return PrintStatus(**runner);
}

}  // namespace

Command AddProjectCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("project", "Run a declarative SQL projection into a SQLite or PostgreSQL read model");
  app->footer(
      "Applies the events the spec maps to SQL (docs/projections.md) to the SQLite file, from its\n"
      "checkpoint on, each batch and its checkpoint in one transaction. Without --follow it exits once\n"
      "caught up; with --follow it applies new events until SIGINT or SIGTERM. Prints the projection's\n"
      "status as one JSON line at the end: checkpoint, events_handled, events_parked, lag_events, lag_ms.");
  auto flags = std::make_shared<ProjectFlags>();
  AddDbOption(app, db);
  app->add_option("--spec", flags->spec, "The projection spec (JSON)")->required()->type_name("FILE");
  app->add_option("--sink", flags->sink, "The read model: sqlite:PATH (or a plain path), or postgres://USER:PASS@HOST:PORT/DB")->required()->type_name("URL");
  app->add_flag("--follow", flags->follow, "Keep applying new events until interrupted");
  app->add_flag("--rebuild", flags->rebuild, "Drop the read model and its checkpoint first, then replay from the start");
  app->add_flag("--status", flags->status_only, "Print the status line and exit without applying anything");
  app->add_option("--batch", flags->batch, "Events per transaction (default 1000)")
      ->type_name("N")
      ->check(CLI::Range(1u, 1'000'000u));
  app->add_option("--on-error", flags->on_error,
                  "A failing handler: stop (default; exit with the event, handler and reason) or park (record it "
                  "in cairn_parked and go on)")
      ->type_name("stop|park");
  return Command{app, [flags, db] { return RunProject(*flags, *db); }};
}

}  // namespace cairn::cli

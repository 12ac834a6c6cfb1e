// The `cairn` command: parses the command line and runs one subcommand (see commands.h).
// Exit codes are documented in docs/errors.md and defined in cli_common.h.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"

namespace cairn::cli {

void AddDbOption(CLI::App* app, std::string* db) {
  app->add_option("--db", *db,
                  "The store: file:DIR (a data directory, created if missing), memory:, or a plain "
                  "directory path. Default: $CAIRN_DB, else file:./cairn-data")
      ->type_name("URL");
}

void AddServerOption(CLI::App* app, std::string* db) {
  app->add_option("--server", *db,
                  "Go through a running server instead of opening a store: "
                  "esdb://[USER:PASSWORD@]HOST:PORT?tls=false|true[&tlsCAFile=PEM]")
      ->type_name("URL");
}

}  // namespace cairn::cli

int main(int argc, char** argv) {
  // A closed stdout (`cairn read ... | head`) should be a write error we report, not a signal.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"cairn: an event store. Appends events to streams, reads them back, checks the log.\n"
               "Exit codes: 0 ok, 1 error, 2 usage, 3 wrong expected version, 4 stream not found,\n"
               "5 corruption (docs/errors.md).",
               "cairn"};
  app.require_subcommand(1);
  std::string db = cairn::cli::DefaultDbUrl();
  cairn::cli::AddDbOption(&app, &db);

  std::vector<cairn::cli::Command> commands;
  commands.push_back(cairn::cli::AddAppendCommand(app, &db));
  commands.push_back(cairn::cli::AddReadCommand(app, &db));
  commands.push_back(cairn::cli::AddTailCommand(app, &db));
  commands.push_back(cairn::cli::AddProjectCommand(app, &db));
  commands.push_back(cairn::cli::AddVerifyCommand(app, &db));
  commands.push_back(cairn::cli::AddTourCommand(app, &db));
  commands.push_back(cairn::cli::AddBenchCommand(app, &db));
  commands.push_back(cairn::cli::AddServeCommand(app, &db));
  commands.push_back(cairn::cli::AddStreamsCommand(app, &db));
  commands.push_back(cairn::cli::AddStatsCommand(app, &db));
  commands.push_back(cairn::cli::AddUserCommand(app, &db));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // the help of the chosen subcommand, on stdout, exit 0
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors: what is wrong, then the usage of the subcommand the user meant, on stderr.
    std::fprintf(stderr, "cairn: %s\n\n%s", e.what(), app.help().c_str());
    return cairn::cli::kExitUsage;
  }

  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  std::fprintf(stderr, "%s", app.help().c_str());
  return cairn::cli::kExitUsage;
}

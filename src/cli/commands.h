// The subcommands of `cairn`. Each Add*Command registers its subcommand, flags and help on the
// main CLI11 app and returns how to run it; main.cc parses the command line and runs the one the
// user chose. `db` is the --db value, shared by every subcommand (and the top level).
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace cairn::cli {

struct Command {
  CLI::App* app = nullptr;
  // Runs the command after a successful parse; returns the process exit code.
  std::function<int()> run;
};

// Adds "--db URL" to `app`, bound to `db`.
void AddDbOption(CLI::App* app, std::string* db);
// Adds "--server URL" (esdb://...), bound to `db` too: the command then goes through a running
// server over the gRPC protocol (server/remote.h).
void AddServerOption(CLI::App* app, std::string* db);

Command AddAppendCommand(CLI::App& parent, std::string* db);
Command AddReadCommand(CLI::App& parent, std::string* db);
Command AddTailCommand(CLI::App& parent, std::string* db);
Command AddProjectCommand(CLI::App& parent, std::string* db);
Command AddVerifyCommand(CLI::App& parent, std::string* db);
Command AddTourCommand(CLI::App& parent, std::string* db);
Command AddBenchCommand(CLI::App& parent, std::string* db);
Command AddServeCommand(CLI::App& parent, std::string* db);
Command AddStreamsCommand(CLI::App& parent, std::string* db);
Command AddStatsCommand(CLI::App& parent, std::string* db);
Command AddUserCommand(CLI::App& parent, std::string* db);

}  // namespace cairn::cli

// `cairn serve`: opens the store and serves it in the EventStoreDB / KurrentDB v1 gRPC client
// protocol until SIGTERM or SIGINT, then shuts down gracefully (stop accepting, let calls in
// flight finish, close the store).
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "server/config.h"
#include "server/server.h"

namespace cairn::cli {
namespace {

struct ServeFlags {
  std::string grpc = "127.0.0.1:2113";
  std::string http = "127.0.0.1:2114";
  bool insecure = false;
  std::string config;
  // Whether a flag or the environment gave each setting (the file then does not apply).
  CLI::Option* grpc_option = nullptr;
  CLI::Option* http_option = nullptr;
  CLI::Option* insecure_option = nullptr;
  CLI::Option* db_option = nullptr;
  CLI::App* parent = nullptr;
};

// Fills in, from --config FILE, the settings that neither a flag nor the environment gave.
Status ApplyConfigFile(ServeFlags* flags, std::string* db) {
  if (flags->config.empty()) return Status::Ok();
  CAIRN_ASSIGN_OR_RETURN(server::ConfigFile file, server::LoadConfigFile(flags->config));
  const char* db_env = std::getenv("CAIRN_DB");
  const bool db_given = flags->db_option->count() > 0 || flags->parent->get_option("--db")->count() > 0 ||
                        (db_env != nullptr && *db_env != '\0');
  if (file.db && !db_given) *db = *file.db;
  if (file.grpc && flags->grpc_option->count() == 0) flags->grpc = *file.grpc;
  if (file.http && flags->http_option->count() == 0) flags->http = *file.http;
  if (file.insecure && flags->insecure_option->count() == 0) flags->insecure = *file.insecure;
  return Status::Ok();
}

int RunServe(ServeFlags& flags, std::string& db) {
  if (Status s = ApplyConfigFile(&flags, &db); !s.ok()) return ReportError(s);
  // Check every address before opening anything, so a refused one changes nothing.
  if (Status s = server::CheckListenAddress(flags.grpc, "--grpc", flags.insecure); !s.ok()) return ReportError(s);
  if (Status s = server::CheckListenAddress(flags.http, "--http", flags.insecure); !s.ok()) return ReportError(s);

  // Block the stop signals in every thread (the server's threads inherit this mask); this thread
  // takes them with sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());

  server::ServerOptions options;
  options.grpc_address = flags.grpc;
  options.insecure = flags.insecure;
  auto server = server::Server::Start(store->get(), options);
  if (!server.ok()) {
    (void)(*store)->Close();
    return ReportError(server.status());
  }
  auto hp = server::ParseHostPort(flags.grpc, "--grpc");
  std::printf("cairn serve: store %s\n", NormalizeDbUrl(db).c_str());
  std::printf("cairn serve: gRPC (EventStoreDB/KurrentDB client protocol) on %s:%d%s\n", hp->host.c_str(),
              (*server)->grpc_port(), flags.insecure ? " (--insecure: no TLS, no authentication)" : "");
  std::printf("cairn serve: connection string esdb://%s:%d?tls=false\n",
              hp->host.find(':') == std::string::npos ? hp->host.c_str() : ("[" + hp->host + "]").c_str(),
              (*server)->grpc_port());
  std::printf("cairn serve: the HTTP API (--http %s) is not built yet; nothing listens there\n", flags.http.c_str());
  std::printf("cairn serve: ready; stop with Ctrl-C or SIGTERM\n");
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::printf("cairn serve: %s received, shutting down\n", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  (*server)->Shutdown();
  Status closed = (*store)->Close();
  if (!closed.ok()) return ReportError(closed);
  std::printf("cairn serve: stopped\n");
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

Command AddServeCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("serve", "Serve the store to EventStoreDB/KurrentDB clients over gRPC");
  app->footer(
      "Serve the store over the network in the EventStoreDB / KurrentDB gRPC client protocol (v1), so\n"
      "the official clients work unchanged: esdb://127.0.0.1:2113?tls=false. Stops gracefully on\n"
      "SIGTERM or SIGINT. Without TLS and authentication (not built yet) it listens on loopback only;\n"
      "--insecure allows other addresses. Settings come from defaults, then --config FILE (TOML:\n"
      "grpc = \"127.0.0.1:2113\"), then CAIRN_* environment variables, then flags.\n"
      "Port 0 picks a free port; the chosen one is printed.");
  auto flags = std::make_shared<ServeFlags>();
  AddDbOption(app, db);
  flags->db_option = app->get_option("--db");
  flags->parent = &parent;
  flags->grpc_option = app->add_option("--grpc", flags->grpc, "gRPC address HOST:PORT (default 127.0.0.1:2113)")
      ->envname("CAIRN_GRPC")
      ->type_name("HOST:PORT");
  flags->http_option = app->add_option("--http", flags->http, "HTTP address HOST:PORT (default 127.0.0.1:2114; the HTTP API is not built yet)")
      ->envname("CAIRN_HTTP")
      ->type_name("HOST:PORT");
  flags->insecure_option = app->add_flag("--insecure", flags->insecure,
                "Allow non-loopback addresses without TLS and authentication")
      ->envname("CAIRN_INSECURE");
  app->add_option("--config", flags->config, "A TOML file with any of the keys db, grpc, http, insecure")
      ->type_name("FILE");
  return Command{app, [flags, db] { return RunServe(*flags, *db); }};
}

}  // namespace cairn::cli

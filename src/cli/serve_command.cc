// `cairn serve`: opens the store and serves it in the EventStoreDB / KurrentDB v1 gRPC client
// protocol and over HTTP (the JSON API, live tails, metrics and the web UI, docs/http-api.md)
// until SIGTERM or SIGINT, then shuts down gracefully (stop accepting, let calls in flight
// finish, close the store).
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "auth/security.h"
#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "server/config.h"
#include "server/http/http_server.h"
#include "server/projection_host.h"
#include "server/server.h"

namespace cairn::cli {
namespace {

struct ServeFlags {
  std::string grpc = "127.0.0.1:2113";
  std::string http = "127.0.0.1:2114";
  std::string transport = "h2";
  bool insecure = false;
  bool auth = false;
  bool auth_from_file = false;
  std::string tls_cert;
  std::string tls_key;
  std::string admin_password;
  std::string config;
  auth::SecurityPolicy policy;  // from the config file's [security] table
  // Whether a flag or the environment gave each setting (the file then does not apply).
  CLI::Option* grpc_option = nullptr;
  CLI::Option* http_option = nullptr;
  CLI::Option* insecure_option = nullptr;
  CLI::Option* auth_option = nullptr;
  CLI::Option* tls_cert_option = nullptr;
  CLI::Option* tls_key_option = nullptr;
  CLI::Option* db_option = nullptr;
  CLI::App* parent = nullptr;
  // From the config file: the declarative projections to run.
  std::vector<server::ProjectionConfig> projections;
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
  if (file.tls_cert && flags->tls_cert_option->count() == 0) flags->tls_cert = *file.tls_cert;
  if (file.tls_key && flags->tls_key_option->count() == 0) flags->tls_key = *file.tls_key;
  if (file.auth && flags->auth_option->count() == 0) {
    flags->auth = *file.auth;
    flags->auth_from_file = true;
  }
  if (file.security) flags->policy = *file.security;
  flags->projections = std::move(file.projections);
  return Status::Ok();
}

int RunServe(ServeFlags& flags, std::string& db) {
  if (Status s = ApplyConfigFile(&flags, &db); !s.ok()) return ReportError(s);
  // TLS turns authentication on unless it was turned off explicitly (--no-auth, auth = false).
  const bool tls = !flags.tls_cert.empty() || !flags.tls_key.empty();
  if (tls && flags.auth_option->count() == 0 && !flags.auth_from_file) flags.auth = true;
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return ReportError(Status::InvalidArgument(
        "--tls-cert and --tls-key: give both (the certificate and its private key) or neither"));
  }
  // Check every address before opening anything, so a refused one changes nothing.
  const bool secure = tls && flags.auth;
  if (Status s = server::CheckListenAddress(flags.grpc, "--grpc", flags.insecure, secure); !s.ok()) return ReportError(s);
  if (Status s = server::CheckListenAddress(flags.http, "--http", flags.insecure, secure); !s.ok()) return ReportError(s);

  // Block the stop signals in every thread (the server's threads inherit this mask); this thread
  // takes them with sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());

  auth::SecurityOptions security_options;
  security_options.enabled = flags.auth;
  security_options.policy = flags.policy;
  security_options.initial_admin_password = flags.admin_password;
  std::string generated;
  auto security = auth::Security::Open(store->get(), security_options, &generated);
  if (!security.ok()) {
    (void)(*store)->Close();
    return ReportError(security.status());
  }

  server::ServerOptions options;
  options.grpc_address = flags.grpc;
  options.insecure = flags.insecure;
  options.transport = flags.transport;
  options.security = security->get();
  options.tls_cert_file = flags.tls_cert;
  options.tls_key_file = flags.tls_key;
  auto server = server::Server::Start(store->get(), options);
  if (!server.ok()) {
    (void)(*store)->Close();
    return ReportError(server.status());
  }
  // The configured projections follow the store while the server runs.
  auto projections = server::ProjectionHost::Start(**store, flags.projections);
  if (!projections.ok()) {
    (*server)->Shutdown();
    (void)(*store)->Close();
    return ReportError(projections.status());
  }
  server::http::HttpOptions http_options;
  http_options.address = flags.http;
  http_options.insecure = flags.insecure;
  http_options.tls_cert_file = flags.tls_cert;
  http_options.tls_key_file = flags.tls_key;
  if ((*security)->enabled()) http_options.authorizer = server::http::SecurityAuthorizer(security->get());
  // GET /subscriptions and /metrics show the consumer groups and the projections.
  http_options.persistent = (*server)->persistent_subscriptions();
  server::ProjectionHost* host = projections->get();
  http_options.projections = [host] { return host->Statuses(); };
  server::Server* grpc_server = server->get();
  http_options.grpc_subscriptions = [grpc_server] { return grpc_server->live_subscriptions(); };
  auto http = server::http::HttpServer::Start(store->get(), http_options);
  if (!http.ok()) {
    (*projections)->Stop();
    (*server)->Shutdown();
    (void)(*store)->Close();
    return ReportError(http.status());
  }
  auto hp = server::ParseHostPort(flags.grpc, "--grpc");
  auto http_hp = server::ParseHostPort(flags.http, "--http");
  std::printf("cairn serve: store %s\n", NormalizeDbUrl(db).c_str());
  std::printf("cairn serve: gRPC (EventStoreDB/KurrentDB client protocol) on %s:%d%s%s\n", hp->host.c_str(),
              (*server)->grpc_port(), tls ? " with TLS" : "",
              flags.insecure ? " (--insecure)" : "");
  std::printf("cairn serve: authentication %s\n",
              flags.auth ? "on (Basic; users in the store, see cairn user)" : "off (every caller may do everything)");
  if (!generated.empty()) {
    std::printf("cairn serve: created user \"admin\" with password %s (shown this once; change it with "
                "`cairn user passwd admin`)\n",
                generated.c_str());
  }
  std::printf("cairn serve: connection string esdb://%s%s:%d?tls=%s\n", flags.auth ? "admin:PASSWORD@" : "",
              hp->host.find(':') == std::string::npos ? hp->host.c_str() : ("[" + hp->host + "]").c_str(),
              (*server)->grpc_port(), tls ? "true" : "false");
  std::printf("cairn serve: HTTP API and web UI on %s://%s:%d/\n", tls ? "https" : "http",
              http_hp->host.find(':') == std::string::npos ? http_hp->host.c_str() : ("[" + http_hp->host + "]").c_str(),
              (*http)->port());
  for (const auto& p : flags.projections) {
    std::printf("cairn serve: projection %s into %s\n", p.spec.c_str(), p.sink.c_str());
  }
  std::printf("cairn serve: ready; stop with Ctrl-C or SIGTERM\n");
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::printf("cairn serve: %s received, shutting down\n", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  (*http)->Shutdown();
  (*server)->Shutdown();
  (*projections)->Stop();
  for (const auto& p : (*projections)->Statuses()) {
    if (p.state == "failed") std::printf("cairn serve: projection %s failed: %s\n", p.spec.c_str(), p.error.c_str());
  }
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
      "SIGTERM or SIGINT. Without TLS and authentication it listens on loopback only; --insecure\n"
      "allows other addresses anyway. TLS (--tls-cert, --tls-key) turns authentication on; at the first\n"
      "start with authentication a user \"admin\" is created (--admin-password, or a generated one that\n"
      "is printed once). Settings come from defaults, then --config FILE (TOML: grpc = \"127.0.0.1:2113\",\n"
      "[security] ...; docs/security.md), then CAIRN_* environment variables, then flags.\n"
      "Port 0 picks a free port; the chosen one is printed.");
  auto flags = std::make_shared<ServeFlags>();
  AddDbOption(app, db);
  flags->db_option = app->get_option("--db");
  flags->parent = &parent;
  flags->grpc_option = app->add_option("--grpc", flags->grpc, "gRPC address HOST:PORT (default 127.0.0.1:2113)")
      ->envname("CAIRN_GRPC")
      ->type_name("HOST:PORT");
  flags->http_option = app->add_option("--http", flags->http, "HTTP address HOST:PORT (default 127.0.0.1:2114): JSON API, live tails, /metrics, web UI")
      ->envname("CAIRN_HTTP")
      ->type_name("HOST:PORT");
  app->add_option("--transport", flags->transport,
                  "Who serves the gRPC address: h2 (cairn's own HTTP/2 front on nghttp2; the default) or grpc "
                  "(gRPC's C++ library)")
      ->envname("CAIRN_TRANSPORT")
      ->type_name("grpc|h2");
  flags->insecure_option = app->add_flag("--insecure", flags->insecure,
                "Allow non-loopback addresses without TLS and authentication")
      ->envname("CAIRN_INSECURE");
  flags->auth_option = app->add_flag("--auth,!--no-auth", flags->auth,
                                     "Require users and check permissions (on by default with TLS)")
      ->envname("CAIRN_AUTH");
  flags->tls_cert_option = app->add_option("--tls-cert", flags->tls_cert, "TLS certificate (chain), PEM")
      ->envname("CAIRN_TLS_CERT")
      ->type_name("FILE");
  flags->tls_key_option = app->add_option("--tls-key", flags->tls_key, "TLS private key, PEM")
      ->envname("CAIRN_TLS_KEY")
      ->type_name("FILE");
  app->add_option("--admin-password", flags->admin_password,
                  "Password of the user \"admin\" created at the first start with authentication")
      ->envname("CAIRN_ADMIN_PASSWORD");
  app->add_option("--config", flags->config,
                  "A TOML file with any of the keys db, grpc, http, insecure, auth, tls_cert, tls_key, [security], "
                  "[[projections]]")
      ->type_name("FILE");
  return Command{app, [flags, db] { return RunServe(*flags, *db); }};
}

}  // namespace cairn::cli

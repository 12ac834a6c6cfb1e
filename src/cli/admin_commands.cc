// Operator commands on a store opened directly (--db): `cairn streams` (list stream names),
// `cairn stats` (the store's counters) and `cairn user` (the server's users, kept in the store's
// "$users" stream; see docs/security.md).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "auth/security.h"
#include "cairn/store.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/json_format.h"

namespace cairn::cli {
namespace {

// ---- cairn streams

struct StreamsFlags {
  std::string prefix;
  std::string after;
  size_t max = 1000;
  bool system = false;
  bool json = false;
};

Json SummaryToJson(const StreamSummary& s) {
  return Json{{"stream", s.name},
              {"last_version", s.last_version},
              {"last_position", s.last_position.value()},
              {"deleted", s.deleted},
              {"tombstoned", s.tombstoned}};
}

int RunStreams(const StreamsFlags& flags, const std::string& db) {
  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());
  ListStreamsOptions o;
  o.prefix = flags.prefix;
  o.after = flags.after;
  o.max_count = flags.max;
  o.include_system = flags.system;
  auto list = (*store)->ListStreams(o);
  if (!list.ok()) return ReportError(list.status());
  for (const auto& s : *list) {
    if (flags.json) {
      std::printf("%s\n", JsonText(SummaryToJson(s)).c_str());
    } else {
      std::printf("%s\t%llu%s\n", s.name.c_str(), static_cast<unsigned long long>(s.last_version),
                  s.tombstoned ? "\ttombstoned" : s.deleted ? "\tdeleted" : "");
    }
  }
  std::fflush(stdout);
  return kExitOk;
}

// ---- cairn stats

template <size_t N>
Json HistogramToJson(const Histogram<N>& h) {
  Json buckets = Json::array();
  for (size_t i = 0; i <= N; ++i) {
    buckets.push_back(Json{{"le", i < N ? Json(h.bounds[i]) : Json("+Inf")}, {"count", h.counts[i]}});
  }
  return Json{{"count", h.count}, {"sum", h.sum}, {"buckets", buckets}};
}

Json StatsToJson(const StoreStats& s) {
  return Json{{"total_events", s.total_events},
              {"streams", s.streams},
              {"disk_bytes", s.disk_bytes},
              {"head_position", s.head.value()},
              {"since_open",
               Json{{"appends", s.appends},
                    {"append_errors", s.append_errors},
                    {"conflicts", s.conflicts},
                    {"events_written", s.events_written},
                    {"bytes_written", s.bytes_written},
                    {"commits", s.commits},
                    {"fsyncs", s.fsyncs},
                    {"reads", s.reads},
                    {"fsync_seconds", HistogramToJson(s.fsync_seconds)},
                    {"batch_events", HistogramToJson(s.batch_events)}}}};
}

int RunStats(bool json, const std::string& db) {
  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());
  const StoreStats s = (*store)->Stats();
  if (json) {
    std::printf("%s\n", JsonText(StatsToJson(s)).c_str());
  } else {
    std::printf("events        %llu\n", static_cast<unsigned long long>(s.total_events));
    std::printf("streams       %llu (metastreams included)\n", static_cast<unsigned long long>(s.streams));
    std::printf("disk bytes    %llu\n", static_cast<unsigned long long>(s.disk_bytes));
    std::printf("head position %llu\n", static_cast<unsigned long long>(s.head.value()));
  }
  std::fflush(stdout);
  return kExitOk;
}

// ---- cairn user

struct UserFlags {
  std::string name;
  std::string password;
  std::vector<std::string> groups;
  bool json = false;
};

// The password from --password, or else the first line of stdin (so that it stays out of the
// process list and the shell history).
Result<std::string> PasswordOf(const UserFlags& flags) {
  if (!flags.password.empty()) return flags.password;
  if (isatty(STDIN_FILENO) == 1) std::fprintf(stderr, "password for %s: ", flags.name.c_str());
  std::string line;
  if (!std::getline(std::cin, line)) {
    return Status::InvalidArgument("password: give --password or one line on stdin");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// Users are managed with security off: nothing is created, everything is allowed (the caller
// has the data directory, which is all the power there is).
int WithSecurity(const std::string& db, const std::function<Status(auth::Security&)>& fn) {
  auto store = OpenStore(db);
  if (!store.ok()) return ReportError(store.status());
  auto security = auth::Security::Open(store->get(), auth::SecurityOptions{});
  if (!security.ok()) return ReportError(security.status());
  Status s = fn(**security);
  Status closed = (*store)->Close();
  if (!s.ok()) return ReportError(s);
  if (!closed.ok()) return ReportError(closed);
  return kExitOk;
}

void AddUserSubcommands(CLI::App* app, std::string* db, std::vector<std::function<int()>>* runs,
                        std::shared_ptr<UserFlags> flags) {
  auto add = app->add_subcommand("add", "Create a user (password from --password or stdin)");
  add->add_option("name", flags->name, "User name")->required();
  add->add_option("--password", flags->password, "Password (else one line from stdin)");
  add->add_option("--group", flags->groups, "A group of the user ($admins: may do everything); repeatable");
  AddDbOption(add, db);
  add->callback([=] {
    runs->push_back([=] {
      return WithSecurity(*db, [&](auth::Security& s) -> Status {
        CAIRN_ASSIGN_OR_RETURN(std::string password, PasswordOf(*flags));
        return s.CreateUser(flags->name, password, flags->groups);
      });
    });
  });

  auto passwd = app->add_subcommand("passwd", "Change a user's password (from --password or stdin)");
  passwd->add_option("name", flags->name, "User name")->required();
  passwd->add_option("--password", flags->password, "New password (else one line from stdin)");
  AddDbOption(passwd, db);
  passwd->callback([=] {
    runs->push_back([=] {
      return WithSecurity(*db, [&](auth::Security& s) -> Status {
        CAIRN_ASSIGN_OR_RETURN(std::string password, PasswordOf(*flags));
        return s.ChangePassword(flags->name, password);
      });
    });
  });

  auto groups = app->add_subcommand("groups", "Set a user's groups (none given: no group)");
  groups->add_option("name", flags->name, "User name")->required();
  groups->add_option("group", flags->groups, "Groups");
  AddDbOption(groups, db);
  groups->callback([=] {
    runs->push_back([=] {
      return WithSecurity(*db, [&](auth::Security& s) { return s.SetGroups(flags->name, flags->groups); });
    });
  });

  auto remove = app->add_subcommand("remove", "Delete a user");
  remove->add_option("name", flags->name, "User name")->required();
  AddDbOption(remove, db);
  remove->callback([=] {
    runs->push_back([=] { return WithSecurity(*db, [&](auth::Security& s) { return s.DeleteUser(flags->name); }); });
  });

  auto list = app->add_subcommand("list", "List users and their groups");
  list->add_flag("--json", flags->json, "One JSON object per user: {\"name\",\"groups\"}");
  AddDbOption(list, db);
  list->callback([=] {
    runs->push_back([=] {
      return WithSecurity(*db, [&](auth::Security& s) -> Status {
        CAIRN_ASSIGN_OR_RETURN(auto users, s.ListUsers());
        for (const auto& u : users) {
          if (flags->json) {
            std::printf("%s\n", JsonText(Json{{"name", u.name}, {"groups", u.groups}}).c_str());
          } else {
            std::string g;
            for (const auto& x : u.groups) g += (g.empty() ? "" : ",") + x;
            std::printf("%s\t%s\n", u.name.c_str(), g.c_str());
          }
        }
        std::fflush(stdout);
        return Status::Ok();
      });
    });
  });
}

}  // namespace

Command AddStreamsCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("streams", "List streams by name prefix");
  app->footer(
      "List the store's streams in name order: NAME<TAB>LAST_VERSION (and \"deleted\" or \"tombstoned\"),\n"
      "or one JSON object per stream with --json. A category \"order\" is --prefix order-. Page with\n"
      "--after LAST_NAME_OF_THE_PREVIOUS_PAGE.");
  auto flags = std::make_shared<StreamsFlags>();
  AddDbOption(app, db);
  app->add_option("--prefix", flags->prefix, "Only names starting with this");
  app->add_option("--after", flags->after, "Only names after this one (paging)");
  app->add_option("--max", flags->max, "At most this many (1 to 10000; default 1000)");
  app->add_flag("--system", flags->system, "Include system streams (names starting with $)");
  app->add_flag("--json", flags->json,
                "One JSON object per stream: {\"stream\",\"last_version\",\"last_position\",\"deleted\",\"tombstoned\"}");
  return Command{app, [flags, db] { return RunStreams(*flags, *db); }};
}

Command AddStatsCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("stats", "Show the store's size and counters");
  auto json = std::make_shared<bool>(false);
  AddDbOption(app, db);
  app->add_flag("--json", *json, "Everything Store::Stats() has, as one JSON object");
  return Command{app, [json, db] { return RunStats(*json, *db); }};
}

Command AddUserCommand(CLI::App& parent, std::string* db) {
  CLI::App* app = parent.add_subcommand("user", "Manage the users of `cairn serve --auth`");
  app->footer(
      "Users live in the store (the system stream $users), with scrypt password hashes. These commands\n"
      "open the store directly (--db), so run them while the server is stopped, or on a PostgreSQL\n"
      "store at any time. The group $admins may do everything; other permissions come from the\n"
      "server's [security] configuration and streams' $acl metadata (docs/security.md).");
  app->require_subcommand(1);
  auto flags = std::make_shared<UserFlags>();
  auto runs = std::make_shared<std::vector<std::function<int()>>>();
  AddUserSubcommands(app, db, runs.get(), flags);
  return Command{app, [runs] { return runs->empty() ? kExitError : runs->front()(); }};
}

}  // namespace cairn::cli

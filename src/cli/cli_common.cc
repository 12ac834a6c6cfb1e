// Exit codes, error reporting and store opening shared by the subcommands.
#include "cli/cli_common.h"

#include "server/remote.h"

#include <cstdio>
#include <cstdlib>

namespace cairn::cli {

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kConflict:
      return kExitConflict;
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kCorruption:
      return kExitCorruption;
    // Input the store rejects (a bad stream name, an oversized event) is the caller's mistake,
    // like a bad flag: retrying cannot help.
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitError;
  }
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "cairn: %s\n", status.ToString().c_str());
  std::fflush(stderr);
  return ExitCodeFor(status);
}

std::string DefaultDbUrl() {
  const char* env = std::getenv("CAIRN_DB");
  if (env != nullptr && *env != '\0') return env;
  return "file:./cairn-data";
}

std::string NormalizeDbUrl(std::string_view db) {
  // A scheme is letters before the first ':' ("file:", "memory:", later "postgres:"). Anything
  // else, a path like "./data" or "/var/lib/cairn", is a data directory.
  size_t colon = db.find(':');
  bool has_scheme = colon != std::string_view::npos && colon > 0;
  for (size_t i = 0; has_scheme && i < colon; ++i) {
    char c = db[i];
    has_scheme = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }
  if (has_scheme) return std::string(db);
  return "file:" + std::string(db);
}

Result<std::unique_ptr<Store>> OpenStore(std::string_view db, const Options& options) {
  if (server::IsRemoteUrl(db)) {
    auto remote = server::OpenRemoteStore(db);
    if (!remote.ok()) return remote.status().WithContext("connect");
    return remote;
  }
  std::string url = NormalizeDbUrl(db);
  auto store = Store::Open(url, options);
  if (!store.ok()) return store.status().WithContext("open " + url);
  return store;
}

}  // namespace cairn::cli

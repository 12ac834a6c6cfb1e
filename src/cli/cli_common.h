// What every `cairn` subcommand shares: the exit codes, error printing, the --db default and
// opening the store. Uses only the public API (include/cairn).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::cli {

// The documented exit codes (docs/errors.md). Scripts rely on them: never change a number.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;       // anything not listed below (I/O error, locked store, ...)
inline constexpr int kExitUsage = 2;       // bad flags or arguments, or input the store calls invalid
inline constexpr int kExitConflict = 3;    // wrong expected version
inline constexpr int kExitNotFound = 4;    // stream not found or deleted
inline constexpr int kExitCorruption = 5;  // stored bytes fail their checksum or structure

// The exit code for a failed status.
int ExitCodeFor(const Status& status);

// Prints "cairn: <status>" to stderr and returns ExitCodeFor(status).
int ReportError(const Status& status);

// The --db default: $CAIRN_DB when set and not empty, else "file:./cairn-data".
std::string DefaultDbUrl();

// A --db value as a store URL: a value without a scheme ("./data") is a directory, "file:./data".
std::string NormalizeDbUrl(std::string_view db);

// Store::Open on NormalizeDbUrl(db).
Result<std::unique_ptr<Store>> OpenStore(std::string_view db, const Options& options = {});

}  // namespace cairn::cli

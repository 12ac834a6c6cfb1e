// The settings of `cairn serve` and the TOML file that may hold them (--config FILE).
//
// Precedence, lowest first: defaults, the file, the environment (CAIRN_*), flags. The CLI applies
// the file's values only to settings that neither a flag nor the environment gave.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/security.h"
#include "cairn/status.h"
#include "server/projection_host.h"

namespace cairn::server {

// What a config file may set; unset keys are nullopt.
struct ConfigFile {
  std::optional<std::string> db;
  std::optional<std::string> grpc;
  std::optional<std::string> http;
  std::optional<bool> insecure;
  std::optional<bool> auth;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  // The [security] table: read_all = [roles], and [[security.acl]] rules with prefix, read,
  // write, delete, metadata_read, metadata_write (auth/security.h).
  std::optional<auth::SecurityPolicy> security;
  // [[projections]] tables: spec, sink (required), on_error, batch. Run by `cairn serve`.
  std::vector<ProjectionConfig> projections;
};

// Reads a TOML file with the top-level keys db, grpc, http, tls_cert, tls_key (strings), insecure
// and auth (booleans), a [security] table (docs/security.md), and [[projections]] tables with
// spec and sink (strings), on_error ("stop" or "park") and batch (1..1000000).
// kNotFound when the file cannot be read; kInvalidArgument naming the file, line and key for a
// syntax error, an unknown key or a value of the wrong type.
Result<ConfigFile> LoadConfigFile(std::string_view path);

}  // namespace cairn::server

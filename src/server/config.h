// The settings of `cairn serve` and the TOML file that may hold them (--config FILE).
//
// Precedence, lowest first: defaults, the file, the environment (CAIRN_*), flags. The CLI applies
// the file's values only to settings that neither a flag nor the environment gave.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "cairn/status.h"

namespace cairn::server {

// What a config file may set; unset keys are nullopt.
struct ConfigFile {
  std::optional<std::string> db;
  std::optional<std::string> grpc;
  std::optional<std::string> http;
  std::optional<bool> insecure;
};

// Reads a TOML file with the top-level keys db, grpc, http (strings) and insecure (a boolean).
// kNotFound when the file cannot be read; kInvalidArgument naming the file, line and key for a
// syntax error, an unknown key or a value of the wrong type.
Result<ConfigFile> LoadConfigFile(std::string_view path);

}  // namespace cairn::server

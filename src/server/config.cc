// LoadConfigFile: the TOML settings file of `cairn serve`, read with toml++.
#include "server/config.h"

#include <fmt/format.h>

#include <fstream>
#include <toml++/toml.h>

namespace cairn::server {

Result<ConfigFile> LoadConfigFile(std::string_view path) {
  std::ifstream in{std::string(path)};
  if (!in) return Status::NotFound(fmt::format("config file {}: cannot be read", path));
  toml::table table;
  try {
    // toml++ reports syntax errors by exception; this is the one place they are caught.
    table = toml::parse(in, std::string(path));
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("config file {} line {}: {}", path, e.source().begin.line,
                                               e.description()));
  }
  ConfigFile out;
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    const int line = static_cast<int>(value.source().begin.line);
    auto wrong_type = [&](std::string_view want) {
      return Status::InvalidArgument(fmt::format("config file {} line {}: {} must be {}", path, line, name, want));
    };
    if (name == "db" || name == "grpc" || name == "http") {
      auto text = value.value<std::string>();
      if (!text) return wrong_type("a string");
      (name == "db" ? out.db : name == "grpc" ? out.grpc : out.http) = *text;
    } else if (name == "insecure") {
      auto flag = value.value<bool>();
      if (!flag || !value.is_boolean()) return wrong_type("true or false");
      out.insecure = *flag;
    } else {
      return Status::InvalidArgument(
          fmt::format("config file {} line {}: unknown key {} (known: db, grpc, http, insecure)", path, line, name));
    }
  }
  return out;
}

}  // namespace cairn::server

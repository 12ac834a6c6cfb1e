// LoadConfigFile: the TOML settings file of `cairn serve`, read with toml++.
#include "server/config.h"

#include <fmt/format.h>

#include <fstream>
#include <toml++/toml.h>

namespace cairn::server {
namespace {

// [[projections]]: each table names a spec file and a sink; on_error and batch are optional.
Status LoadProjections(std::string_view path, const toml::node& value, std::vector<ProjectionConfig>* out) {
  const toml::array* array = value.as_array();
  if (array == nullptr) {
    return Status::InvalidArgument(fmt::format("config file {} line {}: projections must be an array of tables "
                                               "([[projections]])", path, value.source().begin.line));
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = (*array)[i];
    const toml::table* table = item.as_table();
    const int line = static_cast<int>(item.source().begin.line);
    auto bad = [&](std::string_view key, std::string_view want) {
      return Status::InvalidArgument(
          fmt::format("config file {} line {}: projections[{}].{} must be {}", path, line, i, key, want));
    };
    if (table == nullptr) return bad("", "a table");
    ProjectionConfig c;
    for (const auto& [k, v] : *table) {
      const std::string_view key = k.str();
      if (key == "spec" || key == "sink" || key == "on_error") {
        auto text = v.value<std::string>();
        if (!text || !v.is_string()) return bad(key, "a string");
        (key == "spec" ? c.spec : key == "sink" ? c.sink : c.on_error) = *text;
      } else if (key == "batch") {
        auto n = v.value<int64_t>();
        if (!n || !v.is_integer() || *n < 1 || *n > 1'000'000) return bad(key, "an integer in 1..1000000");
        c.batch = static_cast<uint32_t>(*n);
      } else {
        return Status::InvalidArgument(fmt::format(
            "config file {} line {}: projections[{}]: unknown key {} (known: spec, sink, on_error, batch)", path,
            line, i, key));
      }
    }
    if (c.spec.empty()) return bad("spec", "given (the spec file)");
    if (c.sink.empty()) return bad("sink", "given (sqlite:PATH)");
    if (c.on_error != "stop" && c.on_error != "park") return bad("on_error", "\"stop\" or \"park\"");
    out->push_back(std::move(c));
  }
  return Status::Ok();
}

// A list of roles: an array of strings.
Result<std::vector<std::string>> Roles(const toml::node& node, std::string_view path, std::string_view what) {
  const int line = static_cast<int>(node.source().begin.line);
  const toml::array* array = node.as_array();
  std::vector<std::string> out;
  if (array != nullptr) {
    for (const auto& item : *array) {
      auto text = item.value<std::string>();
      if (!text || text->empty()) {
        array = nullptr;
        break;
      }
      out.push_back(*text);
    }
  }
  if (array == nullptr) {
    return Status::InvalidArgument(
        fmt::format("config file {} line {}: {} must be an array of role names (strings)", path, line, what));
  }
  return out;
}

Result<auth::SecurityPolicy> ParseSecurity(const toml::table& table, std::string_view path) {
  auth::SecurityPolicy policy;
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    const int line = static_cast<int>(value.source().begin.line);
    if (name == "read_all") {
      CAIRN_ASSIGN_OR_RETURN(policy.read_all, Roles(value, path, "security.read_all"));
    } else if (name == "metrics") {
      CAIRN_ASSIGN_OR_RETURN(policy.metrics, Roles(value, path, "security.metrics"));
    } else if (name == "acl") {
      const toml::array* rules = value.as_array();
      if (rules == nullptr) {
        return Status::InvalidArgument(
            fmt::format("config file {} line {}: security.acl must be an array of tables ([[security.acl]])", path, line));
      }
      for (const auto& item : *rules) {
        const toml::table* t = item.as_table();
        const int rule_line = static_cast<int>(item.source().begin.line);
        if (t == nullptr) {
          return Status::InvalidArgument(
              fmt::format("config file {} line {}: each security.acl entry must be a table", path, rule_line));
        }
        auth::AclRule rule;
        bool has_prefix = false;
        for (const auto& [rkey, rvalue] : *t) {
          const std::string_view field = rkey.str();
          const std::string what = fmt::format("security.acl.{}", field);
          if (field == "prefix") {
            auto text = rvalue.value<std::string>();
            if (!text) {
              return Status::InvalidArgument(fmt::format("config file {} line {}: {} must be a string", path,
                                                         static_cast<int>(rvalue.source().begin.line), what));
            }
            rule.prefix = *text;
            has_prefix = true;
          } else if (field == "read") {
            CAIRN_ASSIGN_OR_RETURN(rule.read, Roles(rvalue, path, what));
          } else if (field == "write") {
            CAIRN_ASSIGN_OR_RETURN(rule.write, Roles(rvalue, path, what));
          } else if (field == "delete") {
            CAIRN_ASSIGN_OR_RETURN(rule.del, Roles(rvalue, path, what));
          } else if (field == "metadata_read") {
            CAIRN_ASSIGN_OR_RETURN(rule.metadata_read, Roles(rvalue, path, what));
          } else if (field == "metadata_write") {
            CAIRN_ASSIGN_OR_RETURN(rule.metadata_write, Roles(rvalue, path, what));
          } else {
            return Status::InvalidArgument(fmt::format(
                "config file {} line {}: unknown key {} (known: prefix, read, write, delete, metadata_read, "
                "metadata_write)",
                path, static_cast<int>(rvalue.source().begin.line), what));
          }
        }
        if (!has_prefix) {
          return Status::InvalidArgument(fmt::format(
              "config file {} line {}: security.acl entry without prefix (use prefix = \"\" for every stream)", path,
              rule_line));
        }
        policy.rules.push_back(std::move(rule));
      }
    } else {
      return Status::InvalidArgument(fmt::format(
          "config file {} line {}: unknown key security.{} (known: read_all, metrics, acl)", path, line, name));
    }
  }
  return policy;
}

}  // namespace

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
    if (name == "db" || name == "grpc" || name == "http" || name == "tls_cert" || name == "tls_key") {
      auto text = value.value<std::string>();
      if (!text) return wrong_type("a string");
      (name == "db"         ? out.db
       : name == "grpc"     ? out.grpc
       : name == "http"     ? out.http
       : name == "tls_cert" ? out.tls_cert
                            : out.tls_key) = *text;
    } else if (name == "insecure" || name == "auth") {
      auto flag = value.value<bool>();
      if (!flag || !value.is_boolean()) return wrong_type("true or false");
      (name == "insecure" ? out.insecure : out.auth) = *flag;
    } else if (name == "security") {
      if (!value.is_table()) return wrong_type("a table");
      CAIRN_ASSIGN_OR_RETURN(out.security, ParseSecurity(*value.as_table(), path));
    } else if (name == "projections") {
      CAIRN_RETURN_IF_ERROR(LoadProjections(path, value, &out.projections));
    } else {
      return Status::InvalidArgument(fmt::format(
          "config file {} line {}: unknown key {} (known: db, grpc, http, insecure, auth, tls_cert, tls_key, security, "
          "projections)",
          path, line, name));
    }
  }
  return out;
}

}  // namespace cairn::server

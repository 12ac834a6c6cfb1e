// Declarative SQL projections: a JSON spec turned into a Projection (docs/projections.md).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cairn/projection.h"

namespace cairn {
namespace {

using nlohmann::json;

// Where a parameter's value comes from.
struct ParamPath {
  enum class Root : uint8_t { kData, kMetadata, kStream, kCategory, kVersion, kPosition, kType, kId, kRecordedAt };
  Root root;
  std::vector<std::string> keys;  // below data / metadata
};

Result<ParamPath> ParsePath(const std::string& text, const std::string& field) {
  ParamPath p;
  std::string_view rest;
  auto starts = [&](std::string_view prefix) {
    if (text == prefix.substr(0, prefix.size() - 1)) {
      rest = {};
      return true;
    }
    if (text.starts_with(prefix)) {
      rest = std::string_view(text).substr(prefix.size());
      return true;
    }
    return false;
  };
  if (starts("data.")) {
    p.root = ParamPath::Root::kData;
  } else if (starts("metadata.")) {
    p.root = ParamPath::Root::kMetadata;
  } else {
    static const std::pair<const char*, ParamPath::Root> kFields[] = {
        {"stream", ParamPath::Root::kStream},     {"category", ParamPath::Root::kCategory},
        {"version", ParamPath::Root::kVersion},   {"position", ParamPath::Root::kPosition},
        {"type", ParamPath::Root::kType},         {"id", ParamPath::Root::kId},
        {"recorded_at", ParamPath::Root::kRecordedAt}};
    for (const auto& [name, root] : kFields) {
      if (text == name) {
        p.root = root;
        return p;
      }
    }
    return Status::InvalidArgument(fmt::format(
        "{}: unknown path \"{}\" (expected data, data.KEY..., metadata, metadata.KEY..., stream, category, version, "
        "position, type, id or recorded_at)",
        field, text));
  }
  while (!rest.empty()) {
    size_t dot = rest.find('.');
    std::string key(rest.substr(0, dot));
    if (key.empty()) return Status::InvalidArgument(fmt::format("{}: empty key in path \"{}\"", field, text));
    p.keys.push_back(std::move(key));
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  return p;
}

SqlValue FromJson(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      return nullptr;
    case json::value_t::boolean:
      return static_cast<int64_t>(v.get<bool>() ? 1 : 0);
    case json::value_t::number_integer:
      return v.get<int64_t>();
    case json::value_t::number_unsigned: {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<double>(u);
      return static_cast<int64_t>(u);
    }
    case json::value_t::number_float:
      return v.get<double>();
    case json::value_t::string:
      return v.get<std::string>();
    default:
      return v.dump();
  }
}

// The event's data and metadata parsed once, shared by the statements of one spec.
struct ParsedEvent {
  Position position = Position::End();
  bool data_parsed = false, metadata_parsed = false;
  json data, metadata;
};

Result<const json*> Parsed(const RecordedEventView& e, bool metadata, ParsedEvent* cache) {
  if (cache->position != e.position) {
    cache->position = e.position;
    cache->data_parsed = cache->metadata_parsed = false;
  }
  bool& done = metadata ? cache->metadata_parsed : cache->data_parsed;
  json& value = metadata ? cache->metadata : cache->data;
  if (!done) {
    const std::string_view bytes = metadata ? e.metadata : e.data;
    value = bytes.empty() ? json(nullptr) : json::parse(bytes, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) {
      cache->position = Position::End();
      return Status::InvalidArgument(fmt::format("event {}: not JSON", metadata ? "metadata" : "data"));
    }
    done = true;
  }
  return &value;
}

Result<SqlValue> Resolve(const ParamPath& p, const RecordedEventView& e, ParsedEvent* cache) {
  switch (p.root) {
    case ParamPath::Root::kStream:
      return SqlValue(std::string(e.stream));
    case ParamPath::Root::kCategory:
      return SqlValue(std::string(StreamCategory(e.stream)));
    case ParamPath::Root::kVersion:
      return SqlValue(static_cast<int64_t>(e.version));
    case ParamPath::Root::kPosition:
      return SqlValue(static_cast<int64_t>(e.position.value()));
    case ParamPath::Root::kType:
      return SqlValue(std::string(e.type));
    case ParamPath::Root::kId:
      return SqlValue(e.id.ToString());
    case ParamPath::Root::kRecordedAt:
      return SqlValue(e.recorded_at.ToRfc3339());
    case ParamPath::Root::kData:
    case ParamPath::Root::kMetadata:
      break;
  }
  CAIRN_ASSIGN_OR_RETURN(const json* node, Parsed(e, p.root == ParamPath::Root::kMetadata, cache));
  for (const std::string& key : p.keys) {
    if (node->is_object()) {
      auto it = node->find(key);
      if (it == node->end()) return SqlValue(nullptr);  // weak schema: a missing field is NULL
      node = &*it;
    } else if (node->is_array() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
      const size_t index = std::stoull(key);
      if (index >= node->size()) return SqlValue(nullptr);
      node = &(*node)[index];
    } else {
      return SqlValue(nullptr);
    }
  }
  return FromJson(*node);
}

const json* Member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Result<std::vector<std::string>> StringList(const json& object, const char* key, const std::string& field) {
  std::vector<std::string> out;
  const json* v = Member(object, key);
  if (v == nullptr) return out;
  if (!v->is_array()) return Status::InvalidArgument(fmt::format("{}.{}: must be an array of strings", field, key));
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) {
      return Status::InvalidArgument(fmt::format("{}.{}[{}]: must be a string", field, key, i));
    }
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

}  // namespace

Result<Projection> ProjectionFromSpec(std::string_view spec_json) {
  json spec = json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) return Status::InvalidArgument("spec: not valid JSON");
  if (!spec.is_object()) return Status::InvalidArgument("spec: must be a JSON object");
  for (const auto& [key, value] : spec.items()) {
    if (key != "name" && key != "tables" && key != "on" && key != "filter" && key != "description") {
      return Status::InvalidArgument(
          fmt::format("spec: unknown key \"{}\" (known: name, description, tables, filter, on)", key));
    }
  }
  const json* name = Member(spec, "name");
  if (name == nullptr || !name->is_string() || name->get<std::string>().empty()) {
    return Status::InvalidArgument("spec: name: missing (a non-empty string)");
  }
  Projection projection(name->get<std::string>());

  if (const json* tables = Member(spec, "tables")) {
    if (!tables->is_array()) return Status::InvalidArgument("spec: tables: must be an array");
    for (size_t i = 0; i < tables->size(); ++i) {
      const json& t = (*tables)[i];
      const std::string field = fmt::format("spec: tables[{}]", i);
      const json* table_name = t.is_object() ? Member(t, "name") : nullptr;
      const json* create = t.is_object() ? Member(t, "create") : nullptr;
      if (table_name == nullptr || !table_name->is_string() || table_name->get<std::string>().empty()) {
        return Status::InvalidArgument(field + ".name: missing (a non-empty string)");
      }
      if (create == nullptr || !create->is_string()) {
        return Status::InvalidArgument(field + ".create: missing (the CREATE TABLE statement)");
      }
      projection.Table(table_name->get<std::string>(), create->get<std::string>());
    }
  }

  if (const json* filter = Member(spec, "filter")) {
    if (!filter->is_object()) return Status::InvalidArgument("spec: filter: must be an object");
    EventFilter f;
    CAIRN_ASSIGN_OR_RETURN(f.stream_prefixes, StringList(*filter, "stream_prefixes", "spec: filter"));
    CAIRN_ASSIGN_OR_RETURN(f.categories, StringList(*filter, "categories", "spec: filter"));
    projection.Filter(std::move(f));
  }

  const json* on = Member(spec, "on");
  if (on == nullptr || !on->is_object() || on->empty()) {
    return Status::InvalidArgument("spec: on: missing (an object mapping event types to statements)");
  }
  auto cache = std::make_shared<ParsedEvent>();
  for (const auto& [type, statements_json] : on->items()) {
    const json statements = statements_json.is_array() ? statements_json : json::array({statements_json});
    if (statements.empty()) return Status::InvalidArgument(fmt::format("spec: on.{}: no statements", type));
    for (size_t i = 0; i < statements.size(); ++i) {
      const json& st = statements[i];
      const std::string field = fmt::format("spec: on.{}[{}]", type, i);
      if (!st.is_object()) return Status::InvalidArgument(field + ": must be an object with sql and params");
      const json* sql = Member(st, "sql");
      if (sql == nullptr || !sql->is_string() || sql->get<std::string>().empty()) {
        return Status::InvalidArgument(field + ".sql: missing (a non-empty string)");
      }
      std::vector<ParamPath> params;
      if (const json* ps = Member(st, "params")) {
        if (!ps->is_array()) return Status::InvalidArgument(field + ".params: must be an array of paths");
        for (size_t k = 0; k < ps->size(); ++k) {
          const std::string pfield = fmt::format("{}.params[{}]", field, k);
          if (!(*ps)[k].is_string()) return Status::InvalidArgument(pfield + ": must be a path string");
          CAIRN_ASSIGN_OR_RETURN(ParamPath p, ParsePath((*ps)[k].get<std::string>(), pfield));
          params.push_back(std::move(p));
        }
      }
      projection.On(
          type,
          [sql = sql->get<std::string>(), params = std::move(params), cache,
           values = std::vector<SqlValue>()](const RecordedEventView& e, Sql& db) mutable -> Status {
            values.clear();
            for (const ParamPath& p : params) {
              CAIRN_ASSIGN_OR_RETURN(SqlValue v, Resolve(p, e, cache.get()));
              values.push_back(std::move(v));
            }
            return db.Exec(sql, values);
          },
          fmt::format("on.{}[{}]", type, i));
    }
  }
  return projection;
}

}  // namespace cairn

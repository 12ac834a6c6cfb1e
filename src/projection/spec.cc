// Declarative SQL projections: a JSON spec turned into a Projection (docs/projections.md).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cairn/projection.h"
#include "projection/json_paths.h"

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

// The data and metadata paths of one event type's statements, extracted once per event and
// shared by its statements (json_paths.h: one pass over the text, no document tree).
struct TypeParams {
  projection::JsonPaths data, metadata;
  // The event the outputs hold (by position and id), and which of them are filled.
  Position position = Position::End();
  Uuid id;
  bool data_done = false, metadata_done = false;
  projection::JsonPaths::Output data_out, metadata_out;

  // The value of slot `slot` of the event's data (or metadata).
  Result<const SqlValue*> Get(const RecordedEventView& e, bool meta, size_t slot) {
    if (position != e.position || id != e.id) {
      position = e.position;
      id = e.id;
      data_done = metadata_done = false;
    }
    bool& done = meta ? metadata_done : data_done;
    projection::JsonPaths::Output& out = meta ? metadata_out : data_out;
    if (!done) {
      Status s = (meta ? metadata : data).Extract(meta ? e.metadata : e.data, &out);
      if (!s.ok()) {
        position = Position::End();
        return Status::InvalidArgument(fmt::format("event {}: not JSON", meta ? "metadata" : "data"));
      }
      done = true;
    }
    return &out.values[slot];
  }
};

// One statement parameter: where its value comes from (data/metadata: a slot of TypeParams).
struct Param {
  ParamPath::Root root;
  size_t slot = 0;
};

// Sets *out to the parameter's value, reusing the string *out holds.
Status Resolve(const Param& p, const RecordedEventView& e, TypeParams& cache, SqlValue* out) {
  auto text = [&](std::string_view s) {
    if (auto* str = std::get_if<std::string>(out)) {
      str->assign(s.data(), s.size());
    } else {
      out->emplace<std::string>(s);
    }
  };
  switch (p.root) {
    case ParamPath::Root::kStream:
      text(e.stream);
      return Status::Ok();
    case ParamPath::Root::kCategory:
      text(StreamCategory(e.stream));
      return Status::Ok();
    case ParamPath::Root::kVersion:
      *out = static_cast<int64_t>(e.version);
      return Status::Ok();
    case ParamPath::Root::kPosition:
      *out = static_cast<int64_t>(e.position.value());
      return Status::Ok();
    case ParamPath::Root::kType:
      text(e.type);
      return Status::Ok();
    case ParamPath::Root::kId:
      text(e.id.ToString());
      return Status::Ok();
    case ParamPath::Root::kRecordedAt:
      text(e.recorded_at.ToRfc3339());
      return Status::Ok();
    case ParamPath::Root::kData:
    case ParamPath::Root::kMetadata:
      break;
  }
  CAIRN_ASSIGN_OR_RETURN(const SqlValue* v, cache.Get(e, p.root == ParamPath::Root::kMetadata, p.slot));
  *out = *v;
  return Status::Ok();
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
  for (const auto& [type, statements_json] : on->items()) {
    const json statements = statements_json.is_array() ? statements_json : json::array({statements_json});
    if (statements.empty()) return Status::InvalidArgument(fmt::format("spec: on.{}: no statements", type));
    auto cache = std::make_shared<TypeParams>();
    for (size_t i = 0; i < statements.size(); ++i) {
      const json& st = statements[i];
      const std::string field = fmt::format("spec: on.{}[{}]", type, i);
      if (!st.is_object()) return Status::InvalidArgument(field + ": must be an object with sql and params");
      const json* sql = Member(st, "sql");
      if (sql == nullptr || !sql->is_string() || sql->get<std::string>().empty()) {
        return Status::InvalidArgument(field + ".sql: missing (a non-empty string)");
      }
      std::vector<Param> params;
      if (const json* ps = Member(st, "params")) {
        if (!ps->is_array()) return Status::InvalidArgument(field + ".params: must be an array of paths");
        for (size_t k = 0; k < ps->size(); ++k) {
          const std::string pfield = fmt::format("{}.params[{}]", field, k);
          if (!(*ps)[k].is_string()) return Status::InvalidArgument(pfield + ": must be a path string");
          CAIRN_ASSIGN_OR_RETURN(ParamPath p, ParsePath((*ps)[k].get<std::string>(), pfield));
          Param param{p.root, 0};
          if (p.root == ParamPath::Root::kData) param.slot = cache->data.Add(p.keys);
          if (p.root == ParamPath::Root::kMetadata) param.slot = cache->metadata.Add(p.keys);
          params.push_back(param);
        }
      }
      projection.On(
          type,
          [sql = sql->get<std::string>(), params = std::move(params), cache,
           values = std::vector<SqlValue>()](const RecordedEventView& e, Sql& db) mutable -> Status {
            // Sized once; each value keeps its string buffer from one event to the next.
            values.resize(params.size());
            for (size_t k = 0; k < params.size(); ++k) {
              CAIRN_RETURN_IF_ERROR(Resolve(params[k], e, *cache, &values[k]));
            }
            return db.Exec(sql, values);
          },
          fmt::format("on.{}[{}]", type, i));
    }
  }
  return projection;
}

Result<std::string> ProjectionSinkTarget(std::string_view sink) {
  std::string target(sink);
  if (sink.starts_with("sqlite:")) {
    target = std::string(sink.substr(7));
  } else if (sink.starts_with("postgres://") || sink.starts_with("postgresql://")) {
    return target;
  } else if (sink.find(':') != std::string_view::npos) {
    return Status::InvalidArgument(
        fmt::format("unknown sink \"{}\" (supported: sqlite:PATH, postgres://USER:PASS@HOST:PORT/DB)", sink));
  }
  if (target.empty()) return Status::InvalidArgument("empty: a file path is needed (sqlite:PATH)");
  return target;
}

}  // namespace cairn

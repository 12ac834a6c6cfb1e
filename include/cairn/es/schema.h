// Schema evolution of stored events: upcaster chains per event type (v1 -> v2 -> v3), applied on
// read, and type renames.
//
//   es::Upcasters upcasters;
//   upcasters.Rename("OrderPlaced", "OrderCreated")                 // an old name, read as the new
//       .Add("OrderCreated", 1, [](es::Json& d) { d["currency"] = "USD"; })     // v1 -> v2
//       .Add("OrderCreated", 2, [](es::Json& d) { ... });                        // v2 -> v3
//
// An event stored at schema version n is read by code at version m > n by running the steps
// n, n+1, ..., m-1 on its JSON data, then decoding the result. Events are never rewritten: the
// store keeps what was appended, and every read upcasts again. Weak-schema defaults (a field
// missing from old events takes the struct's default, see event.h) need no upcaster at all.
//
// Build the set once at startup and share it (const) between repositories and threads. A step
// that throws is reported as a Status naming the type and version.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "cairn/es/event.h"
#include "cairn/status.h"

namespace cairn::es {

class Upcasters {
 public:
  using Step = std::function<void(Json& data)>;

  // The step that turns data of `type` at schema `from_version` into `from_version + 1`. Adding a
  // second step for the same type and version replaces the first.
  Upcasters& Add(std::string type, uint32_t from_version, Step step);

  // Events stored under `old_name` are read as `new_name`, keeping their schema version. Renames
  // chain (A -> B, B -> C reads A as C); a cycle is a programmer error (CAIRN_CHECK).
  Upcasters& Rename(std::string old_name, std::string new_name);

  // The current name for a stored type name (itself when not renamed).
  std::string_view Resolve(std::string_view stored_name) const;

  // Runs the steps from `from_version` up to `to_version` on `data`. kNotSupported when a step is
  // missing or when from_version > to_version (written by newer code); kInvalidArgument when a step
  // throws. Messages name the type and versions.
  Status Upcast(std::string_view type, uint32_t from_version, uint32_t to_version, Json& data) const;

  bool empty() const { return steps_.empty() && renames_.empty(); }

 private:
  std::map<std::pair<std::string, uint32_t>, Step, std::less<>> steps_;
  std::map<std::string, std::string, std::less<>> renames_;
};

}  // namespace cairn::es

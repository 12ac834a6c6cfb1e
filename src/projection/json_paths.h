// Values at fixed paths of a JSON document, in one pass over its text and without building a
// document tree: what a declarative SQL projection needs of each event (spec.cc). Parsing every
// event's data into nlohmann::json was the largest cost of a projection after SQLite itself
// (docs/performance.md); this scanner allocates nothing per document except for the text values
// it returns, and skips the parts of the document no path asks for.
//
//   JsonPaths paths;
//   size_t customer = paths.Add({"customer"});        // slot 0
//   size_t city = paths.Add({"address", "city"});     // slot 1
//   JsonPaths::Output out;
//   Status s = paths.Extract(R"({"customer":"c1","address":{"city":"Lyon"}})", &out);
//   // out.values[customer] == "c1", out.values[city] == "Lyon"
//
// The values are those nlohmann::json gives (the meaning the projection format documents): a
// missing path, or one that goes through a scalar, is NULL; true/false are 1/0; a number without
// fraction or exponent that fits int64 is an integer, any other number a real; a string is its
// decoded text; an object or array is its compact JSON text. A key of digits also indexes an
// array. When a key occurs twice in an object, the last one counts. The whole document is
// checked: text that is not one JSON value is kInvalidArgument, and so is a string with invalid
// UTF-8. Empty text is null (every path NULL).
//
// Thread-safety: Extract() is const and may run on several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/projection.h"
#include "cairn/status.h"

namespace cairn::projection {

class JsonPaths {
 public:
  JsonPaths();

  // Registers a path (the keys from the root; none: the whole document) and returns its slot.
  // The same path twice gets the same slot.
  size_t Add(const std::vector<std::string>& keys);
  size_t size() const { return slots_; }

  // What Extract fills; kept between calls so that its strings' buffers are reused.
  struct Output {
    std::vector<SqlValue> values;  // by slot
    std::vector<uint8_t> filled;   // scratch
  };
  // Sets out->values[0 .. size()) from `text`.
  Status Extract(std::string_view text, Output* out) const;

 private:
  struct Node {
    std::string key;
    size_t index = SIZE_MAX;       // the key as an array index (all digits), or SIZE_MAX
    int slot = -1;                 // the value here goes to this slot
    std::vector<size_t> children;  // indexes into nodes_
  };
  class Scanner;

  // A document nested deeper than the scanner recurses: nlohmann::json's parser instead.
  Status ExtractWithDom(std::string_view text, Output* out) const;

  std::vector<Node> nodes_;                  // nodes_[0] is the root
  std::vector<std::vector<std::string>> paths_;  // by slot
  size_t slots_ = 0;
};

}  // namespace cairn::projection

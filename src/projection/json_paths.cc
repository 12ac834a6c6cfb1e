#include "projection/json_paths.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/utf8.h"

namespace cairn::projection {
namespace {

using nlohmann::json;

// Recursion bound of the scanner; a deeper document goes to nlohmann::json (iterative).
constexpr int kMaxDepth = 200;

void SetText(SqlValue* v, std::string_view text) {
  if (auto* s = std::get_if<std::string>(v)) {
    s->assign(text.data(), text.size());
  } else {
    v->emplace<std::string>(text);
  }
}

// The value of a JSON node as the projection format defines it (json_paths.h).
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

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Appends the UTF-8 form of a code point.
void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

class JsonPaths::Scanner {
 public:
  Scanner(const JsonPaths& paths, std::string_view text, Output* out)
      : paths_(paths), p_(text.data()), end_(text.data() + text.size()), out_(out) {}

  // kTooDeep: nested deeper than kMaxDepth (the caller falls back to nlohmann::json).
  enum class Result : uint8_t { kOk, kInvalid, kTooDeep };

  Result Run() {
    SkipWs();
    if (!Value(&paths_.nodes_[0], 0)) return too_deep_ ? Result::kTooDeep : Result::kInvalid;
    SkipWs();
    return p_ == end_ ? Result::kOk : Result::kInvalid;
  }

 private:
  void SkipWs() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // Clears the slots under `node` (a repeated key: the last value counts, also for its parts).
  void Unfill(const Node& node) {
    if (node.slot >= 0) out_->filled[static_cast<size_t>(node.slot)] = 0;
    for (size_t c : node.children) Unfill(paths_.nodes_[c]);
  }

  SqlValue* Slot(const Node* node) {
    if (node == nullptr || node->slot < 0) return nullptr;
    out_->filled[static_cast<size_t>(node->slot)] = 1;
    return &out_->values[static_cast<size_t>(node->slot)];
  }

  // One value; `node` is what is wanted of it (nullptr: nothing, only checked).
  bool Value(const Node* node, int depth) {
    if (p_ == end_) return false;
    if (node != nullptr) Unfill(*node);
    switch (*p_) {
      case '{':
      case '[': {
        if (depth >= kMaxDepth) {
          too_deep_ = true;
          return false;
        }
        const char* start = p_;
        const bool ok = *p_ == '{' ? Object(node, depth) : Array(node, depth);
        if (!ok) return false;
        if (SqlValue* v = Slot(node)) {
          // Its compact text, as nlohmann::json writes it (rare: a path to an object or array).
          *v = json::parse(start, p_).dump();
        }
        return true;
      }
      case '"': {
        std::string_view text;
        if (!String(&text)) return false;
        if (SqlValue* v = Slot(node)) SetText(v, text);
        return true;
      }
      case 't':
        return Literal("true", node, SqlValue(int64_t{1}));
      case 'f':
        return Literal("false", node, SqlValue(int64_t{0}));
      case 'n':
        return Literal("null", node, SqlValue(nullptr));
      default:
        return Number(node);
    }
  }

  bool Literal(std::string_view word, const Node* node, SqlValue value) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    if (SqlValue* v = Slot(node)) *v = std::move(value);
    return true;
  }

  const Node* Child(const Node* node, std::string_view key) const {
    if (node == nullptr) return nullptr;
    for (size_t c : node->children) {
      const Node& child = paths_.nodes_[c];
      if (child.key == key) return &child;
    }
    return nullptr;
  }

  const Node* Element(const Node* node, size_t index) const {
    if (node == nullptr) return nullptr;
    for (size_t c : node->children) {
      const Node& child = paths_.nodes_[c];
      if (child.index == index) return &child;
    }
    return nullptr;
  }

  bool Object(const Node* node, int depth) {
    ++p_;  // {
    const Node* wanted = node != nullptr && !node->children.empty() ? node : nullptr;
    SkipWs();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      SkipWs();
      if (p_ == end_ || *p_ != '"') return false;
      std::string_view key;
      if (!String(&key)) return false;
      const Node* child = Child(wanted, key);
      SkipWs();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      SkipWs();
      if (!Value(child, depth + 1)) return false;
      SkipWs();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ != '}') return false;
      ++p_;
      return true;
    }
  }

  bool Array(const Node* node, int depth) {
    ++p_;  // [
    const Node* wanted = node != nullptr && !node->children.empty() ? node : nullptr;
    SkipWs();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (size_t index = 0;; ++index) {
      SkipWs();
      if (!Value(Element(wanted, index), depth + 1)) return false;
      SkipWs();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ != ']') return false;
      ++p_;
      return true;
    }
  }

  // A string at p_ (its opening quote). *text views the input when it has no escape, else
  // scratch_; valid until the next String().
  bool String(std::string_view* text) {
    ++p_;
    const char* start = p_;
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"' || c == '\\' || c < 0x20) break;
      ++p_;
    }
    if (p_ == end_ || static_cast<unsigned char>(*p_) < 0x20) return false;
    if (*p_ == '"') {
      *text = std::string_view(start, static_cast<size_t>(p_ - start));
      ++p_;
      if (!util::IsValidUtf8(*text)) return false;
      return true;
    }
    // Escapes: decode into scratch_.
    scratch_.assign(start, p_);
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        *text = scratch_;
        return util::IsValidUtf8(*text);
      }
      if (c < 0x20) return false;
      if (c != '\\') {
        scratch_.push_back(static_cast<char>(c));
        ++p_;
        continue;
      }
      ++p_;
      if (p_ == end_) return false;
      switch (*p_++) {
        case '"': scratch_.push_back('"'); break;
        case '\\': scratch_.push_back('\\'); break;
        case '/': scratch_.push_back('/'); break;
        case 'b': scratch_.push_back('\b'); break;
        case 'f': scratch_.push_back('\f'); break;
        case 'n': scratch_.push_back('\n'); break;
        case 'r': scratch_.push_back('\r'); break;
        case 't': scratch_.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by an escaped low one.
            uint32_t low = 0;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          }
          AppendUtf8(cp, &scratch_);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  bool Hex4(uint32_t* out) {
    if (end_ - p_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  // JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  bool Number(const Node* node) {
    const char* start = p_;
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_ || !IsDigit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    bool real = false;
    if (p_ < end_ && *p_ == '.') {
      real = true;
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      real = true;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    SqlValue* v = Slot(node);
    if (v == nullptr) return true;
    if (!real) {
      if (negative) {
        int64_t n = 0;
        if (std::from_chars(start, p_, n).ec == std::errc()) {
          *v = n;
          return true;
        }
      } else {
        uint64_t u = 0;
        if (std::from_chars(start, p_, u).ec == std::errc()) {
          if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            *v = static_cast<double>(u);
          } else {
            *v = static_cast<int64_t>(u);
          }
          return true;
        }
      }
      // Too large for a 64-bit integer: a real, as nlohmann::json makes it.
    }
    double d = 0;
    const auto r = std::from_chars(start, p_, d);
    if (r.ec == std::errc::result_out_of_range) {
      // nlohmann::json (strtod) gives +-HUGE_VAL or a denormal/zero; from_chars leaves d alone.
      d = std::strtod(std::string(start, p_).c_str(), nullptr);
    } else if (r.ec != std::errc()) {
      return false;
    }
    *v = d;
    return true;
  }

  const JsonPaths& paths_;
  const char* p_;
  const char* const end_;
  Output* out_;
  std::string scratch_;
  bool too_deep_ = false;
};

JsonPaths::JsonPaths() { nodes_.emplace_back(); }

size_t JsonPaths::Add(const std::vector<std::string>& keys) {
  size_t at = 0;
  for (const std::string& key : keys) {
    size_t next = SIZE_MAX;
    for (size_t c : nodes_[at].children) {
      if (nodes_[c].key == key) next = c;
    }
    if (next == SIZE_MAX) {
      Node n;
      n.key = key;
      if (!key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
        size_t index = 0;
        const auto r = std::from_chars(key.data(), key.data() + key.size(), index);
        if (r.ec == std::errc()) n.index = index;
      }
      next = nodes_.size();
      nodes_.push_back(std::move(n));
      nodes_[at].children.push_back(next);
    }
    at = next;
  }
  if (nodes_[at].slot < 0) {
    nodes_[at].slot = static_cast<int>(slots_++);
    paths_.push_back(keys);
  }
  return static_cast<size_t>(nodes_[at].slot);
}

Status JsonPaths::Extract(std::string_view text, Output* out) const {
  out->values.resize(slots_);
  out->filled.assign(slots_, 0);
  if (text.empty()) {
    for (SqlValue& v : out->values) v = nullptr;
    return Status::Ok();
  }
  // Only white space is not JSON: the scanner finds no value.
  Scanner scanner(*this, text, out);
  switch (scanner.Run()) {
    case Scanner::Result::kOk:
      break;
    case Scanner::Result::kInvalid:
      return Status::InvalidArgument("not JSON");
    case Scanner::Result::kTooDeep:
      return ExtractWithDom(text, out);
  }
  for (size_t i = 0; i < slots_; ++i) {
    if (out->filled[i] == 0) out->values[i] = nullptr;
  }
  return Status::Ok();
}

Status JsonPaths::ExtractWithDom(std::string_view text, Output* out) const {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("not JSON");
  for (size_t slot = 0; slot < slots_; ++slot) {
    const json* node = &doc;
    for (const std::string& key : paths_[slot]) {
      if (node->is_object()) {
        auto it = node->find(key);
        node = it == node->end() ? nullptr : &*it;
      } else if (node->is_array() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
        size_t index = 0;
        const auto r = std::from_chars(key.data(), key.data() + key.size(), index);
        node = r.ec == std::errc() && index < node->size() ? &(*node)[index] : nullptr;
      } else {
        node = nullptr;
      }
      if (node == nullptr) break;
    }
    out->values[slot] = node == nullptr ? SqlValue(nullptr) : FromJson(*node);
  }
  return Status::Ok();
}

}  // namespace cairn::projection

#include "projection/json_paths.h"

#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cairn::projection {
namespace {

using nlohmann::json;

// What the spec format defines, computed the slow way: a document tree, then the path.
SqlValue Reference(const json& doc, const std::vector<std::string>& keys) {
  const json* node = &doc;
  for (const std::string& key : keys) {
    if (node->is_object()) {
      auto it = node->find(key);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
      const size_t index = std::stoull(key);
      if (index >= node->size()) return nullptr;
      node = &(*node)[index];
    } else {
      return nullptr;
    }
  }
  switch (node->type()) {
    case json::value_t::null: return nullptr;
    case json::value_t::boolean: return static_cast<int64_t>(node->get<bool>() ? 1 : 0);
    case json::value_t::number_integer: return node->get<int64_t>();
    case json::value_t::number_unsigned: {
      const uint64_t u = node->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<double>(u);
      return static_cast<int64_t>(u);
    }
    case json::value_t::number_float: return node->get<double>();
    case json::value_t::string: return node->get<std::string>();
    default: return node->dump();
  }
}

std::string Show(const SqlValue& v) {
  if (std::holds_alternative<std::nullptr_t>(v)) return "NULL";
  if (const auto* n = std::get_if<int64_t>(&v)) return "int " + std::to_string(*n);
  if (const auto* d = std::get_if<double>(&v)) return "real " + std::to_string(*d);
  return "text " + std::get<std::string>(v);
}

const std::vector<std::vector<std::string>> kPaths = {
    {},          {"a"},           {"b"},       {"a", "b"},       {"items", "0", "sku"}, {"items", "1"},
    {"items"},   {"n"},           {"neg"},     {"big"},          {"huge"},              {"real"},
    {"exp"},     {"t"},           {"f"},       {"z"},            {"esc"},               {"uni"},
    {"é"},       {"dup"},         {"dup", "x"}, {"arr", "01"},   {"s p a c e"},         {"missing", "deep"},
};

const char* const kDocuments[] = {
    R"({"a":"x","b":2})",
    R"({"a":{"b":"inner"},"items":[{"sku":"A1"},{"sku":"B2","q":[1,2]}]})",
    R"( { "n" : 0 , "neg" : -42, "big": 9223372036854775807, "huge": 18446744073709551615 } )",
    R"({"huge": 123456789012345678901234567890, "real": 12.5, "exp": -1.5e-3, "t": true, "f": false, "z": null})",
    R"({"esc":"line\nnext \"q\" \\ \/ \t \u00e9 \ud83d\ude00", "uni":"caf\u00e9", "\u00e9":"key escaped"})",
    R"({"dup":{"x":1},"dup":2})",
    R"({"dup":1,"dup":{"x":"second"}})",
    R"({"arr":[10,20,30]})",
    R"({"s p a c e":[],"a":[],"b":{}})",
    R"([1,2,3])",
    R"("just a string")",
    R"(17)",
    R"({"a":[{"b":[[[]]]}], "items": "not an array"})",
    R"({"a":"é ü 中文", "b": "\u0000"})",
};

TEST(JsonPathsTest, AgreesWithADocumentTree) {
  JsonPaths paths;
  std::vector<size_t> slots;
  for (const auto& p : kPaths) slots.push_back(paths.Add(p));
  JsonPaths::Output out;
  for (const char* text : kDocuments) {
    const json doc = json::parse(text);
    ASSERT_TRUE(paths.Extract(text, &out).ok()) << text;
    for (size_t i = 0; i < kPaths.size(); ++i) {
      EXPECT_EQ(Show(out.values[slots[i]]), Show(Reference(doc, kPaths[i])))
          << text << " path #" << i;
    }
  }
}

TEST(JsonPathsTest, SamePathSameSlot) {
  JsonPaths paths;
  EXPECT_EQ(paths.Add({"a", "b"}), 0u);
  EXPECT_EQ(paths.Add({"c"}), 1u);
  EXPECT_EQ(paths.Add({"a", "b"}), 0u);
  EXPECT_EQ(paths.Add({"a"}), 2u);
  EXPECT_EQ(paths.size(), 3u);
}

TEST(JsonPathsTest, EmptyTextIsNull) {
  JsonPaths paths;
  paths.Add({"a"});
  JsonPaths::Output out;
  out.values.assign(1, SqlValue(std::string("stale")));
  ASSERT_TRUE(paths.Extract("", &out).ok());
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(out.values[0]));
}

TEST(JsonPathsTest, ValuesOfAnEarlierDocumentDoNotLeak) {
  JsonPaths paths;
  paths.Add({"a"});
  JsonPaths::Output out;
  ASSERT_TRUE(paths.Extract(R"({"a":"first"})", &out).ok());
  ASSERT_TRUE(paths.Extract(R"({"b":"second"})", &out).ok());
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(out.values[0]));
}

TEST(JsonPathsTest, RejectsWhatIsNotJson) {
  JsonPaths paths;
  paths.Add({"a"});
  JsonPaths::Output out;
  for (const char* bad : {"{", "{\"a\":}", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "nul", "01", "1.", "-", "1e", "\"x",
                          "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\xff\"}", "{} {}",
                          "   ", "{\"a\":1}x", "[\"\\u12\"]"}) {
    Status s = paths.Extract(bad, &out);
    EXPECT_TRUE(s.IsInvalidArgument()) << bad;
    EXPECT_TRUE(json::parse(bad, nullptr, false).is_discarded()) << "the reference accepts " << bad;
  }
}

TEST(JsonPathsTest, DeepDocumentsFallBackToTheTree) {
  JsonPaths paths;
  const size_t deep = paths.Add({"a"});
  std::string text = R"({"a":"top","b":)";
  for (int i = 0; i < 1000; ++i) text += "[";
  for (int i = 0; i < 1000; ++i) text += "]";
  text += "}";
  JsonPaths::Output out;
  ASSERT_TRUE(paths.Extract(text, &out).ok());
  EXPECT_EQ(Show(out.values[deep]), "text top");
}

}  // namespace
}  // namespace cairn::projection

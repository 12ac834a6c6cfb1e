// docs/guide.md quotes the examples: every code block preceded by
// `<!-- snippet: PATH#NAME -->` must equal the lines between `// [guide:NAME]` and
// `// [/guide:NAME]` in PATH. So the guide shows code that builds and whose tests pass.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The text between the markers of `name` in `source`, without the marker lines.
std::string Between(const std::string& source, const std::string& name) {
  const std::string open = "// [guide:" + name + "]\n", close = "// [/guide:" + name + "]";
  size_t a = source.find(open);
  if (a == std::string::npos) return "<no marker " + open + ">";
  a += open.size();
  size_t b = source.find(close, a);
  if (b == std::string::npos) return "<no marker " + close + ">";
  size_t line_start = source.rfind('\n', b);  // drop the closing marker's indentation
  return source.substr(a, line_start + 1 - a);
}

TEST(GuideTest, SnippetsMatchTheExamples) {
  const std::string root = CAIRN_SOURCE_DIR;
  const std::string guide = ReadFile(root + "/docs/guide.md");
  ASSERT_FALSE(guide.empty()) << "docs/guide.md is missing";
  // std::regex is avoided: g++ 12 warns inside it (maybe-uninitialized) under -Werror.
  const std::string tag = "<!-- snippet: ";
  int count = 0;
  for (size_t at = guide.find(tag); at != std::string::npos; at = guide.find(tag, at + 1)) {
    const size_t tag_end = guide.find(" -->\n", at);
    ASSERT_NE(tag_end, std::string::npos);
    const std::string ref = guide.substr(at + tag.size(), tag_end - at - tag.size());
    const size_t hash = ref.find('#');
    ASSERT_NE(hash, std::string::npos) << ref;
    const std::string path = ref.substr(0, hash), name = ref.substr(hash + 1);
    const size_t fence = tag_end + 5;
    ASSERT_EQ(guide.compare(fence, 3, "```"), 0) << "a code block must follow the snippet tag of " << ref;
    const size_t body = guide.find('\n', fence) + 1;
    const size_t end = guide.find("```", body);
    ASSERT_NE(end, std::string::npos);
    const std::string quoted = guide.substr(body, end - body);
    const std::string source = ReadFile(root + "/" + path);
    ASSERT_FALSE(source.empty()) << path << " is missing";
    EXPECT_EQ(quoted, Between(source, name)) << "docs/guide.md quotes " << ref << ", which has changed: update the guide";
    ++count;
  }
  EXPECT_GE(count, 5) << "the guide should quote the examples";
}

}  // namespace

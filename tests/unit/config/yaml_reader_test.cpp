#include "config/yaml_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gsched::config {
namespace {

using ::testing::HasSubstr;

// A tiny config shape for exercising the reader: `{count, name, timeout, size, mode, tags, nested:
// {flag}}`.
struct Sample {
  int64_t count = 1;
  std::string name = "x";
  Duration timeout = Seconds(5);
  int64_t size_mib = 0;
  size_t mode = 0;
  std::vector<std::string> tags;
  bool flag = false;
};

constexpr std::array<std::string_view, 3> kModes = {"fast", "slow", "off"};

Result<Sample> ParseSample(std::string_view text) {
  return DecodeYaml<Sample>(text, "sample.yaml", [](YamlMap& root) {
    Sample s;
    s.count = root.Int("count", s.count, 0, 100);
    s.name = root.String("name", s.name, 8);
    s.timeout = root.Dur("timeout", s.timeout, Seconds(1), Seconds(3600));
    s.size_mib = root.Get("size").SizeMiB(1, 1 << 20).value_or(0);
    s.mode = root.Get("mode").EnumIndex(kModes).value_or(0);
    s.tags = root.Get("tags").StringList(4, 16).value_or(std::vector<std::string>{});
    YamlMap nested = root.Get("nested").Map();
    s.flag = nested.Bool("flag", s.flag);
    return s;
  });
}

TEST(YamlReaderTest, DefaultsApplyToAnEmptyDocument) {
  for (std::string_view text : {"", "{}", "# only a comment\n", "---\n"}) {
    Result<Sample> s = ParseSample(text);
    ASSERT_TRUE(s.ok()) << text << ": " << s.status().ToString();
    EXPECT_EQ(s->count, 1);
    EXPECT_EQ(s->name, "x");
    EXPECT_EQ(s->timeout, Seconds(5));
  }
}

TEST(YamlReaderTest, ReadsTypedValues) {
  Result<Sample> s = ParseSample(
      "count: 1_0\nname: abc\ntimeout: 30m\nsize: 16G\nmode: slow\ntags: [a, b]\n"
      "nested: {flag: yes}\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->count, 10);
  EXPECT_EQ(s->name, "abc");
  EXPECT_EQ(s->timeout, Seconds(1800));
  EXPECT_EQ(s->size_mib, 16 * 1024);
  EXPECT_EQ(s->mode, 1u);
  EXPECT_EQ(s->tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(s->flag);
}

TEST(YamlReaderTest, DurationsAndSizesMayBeQuoted) {
  Result<Sample> s = ParseSample("timeout: \"90s\"\nsize: '2G'\nname: \"12\"\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->timeout, Seconds(90));
  EXPECT_EQ(s->size_mib, 2048);
  EXPECT_EQ(s->name, "12");
}

TEST(YamlReaderTest, NullMeansNotSet) {
  Result<Sample> s = ParseSample("count:\nname: ~\nnested:\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->count, 1);
  EXPECT_EQ(s->name, "x");
}

struct Rejection {
  std::string yaml;
  std::string field;     // The first error's path.
  std::string fragment;  // Part of the message.
};

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.yaml;
}

class YamlReaderRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(YamlReaderRejectionTest, NamesPathAndReason) {
  const Rejection& r = GetParam();
  Result<Sample> s = ParseSample(r.yaml);
  ASSERT_FALSE(s.ok()) << r.yaml;
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().field(), r.field) << s.status().message();
  EXPECT_THAT(s.status().message(), HasSubstr(r.fragment));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, YamlReaderRejectionTest,
    ::testing::Values(
        Rejection{"count: -1\n", "count", "count: must be >= 0 (got -1)"},
        Rejection{"count: 101\n", "count", "count: must be <= 100"},
        Rejection{"count: 99999999999999999999999\n", "count", "must be an integer"},
        Rejection{"count: abc\n", "count", "must be an integer (got 'abc')"},
        Rejection{"count: 1.5\n", "count", "must be an integer"},
        Rejection{"count: \"10\"\n", "count", "got the quoted string '10'"},
        Rejection{"count: [1]\n", "count", "must be an integer (got a list)"},
        Rejection{"count: {a: 1}\n", "count", "must be an integer (got a mapping)"},
        Rejection{"name: abcdefghi\n", "name", "must be at most 8 characters (got 9)"},
        Rejection{"name: [a]\n", "name", "must be a string (got a list)"},
        Rejection{"timeout: 4x\n", "timeout", "invalid duration '4x'"},
        Rejection{"timeout: 0s\n", "timeout", "must be >= 1s"},
        Rejection{"timeout: 2h\n", "timeout", "must be <= 1h"},
        Rejection{"size: 16Q\n", "size", "invalid size '16Q'"},
        Rejection{"size: 0\n", "size", "must be >= 1 MiB"},
        Rejection{"mode: slwo\n", "mode", "unknown value 'slwo'; did you mean 'slow'?"},
        Rejection{"mode: zzzzzz\n", "mode", "(one of: fast, slow, off)"},
        Rejection{"tags: a\n", "tags", "must be a list of strings (got a scalar)"},
        Rejection{"tags: [a, b, c, d, e]\n", "tags", "must have at most 4 items (got 5)"},
        Rejection{"tags: [a, [b]]\n", "tags[1]", "must be a string (got a list)"},
        Rejection{"nested: 3\n", "nested", "must be a mapping (got a scalar)"},
        Rejection{"nested: {flag: maybe}\n", "nested.flag", "must be a boolean"},
        Rejection{"cuont: 3\n", "cuont", "cuont: unknown key; did you mean 'count'?"},
        Rejection{"nested: {flga: true}\n", "nested.flga", "unknown key; did you mean 'flag'?"},
        Rejection{"zzzzzzzz: 1\n", "zzzzzzzz", "unknown key; known keys: count, name"},
        Rejection{"count: 1\nname: a\ncount: 2\n", "count",
                  "count: duplicate key (line 3; first at line 1)"},
        Rejection{"nested:\n  flag: true\n  flag: false\n", "nested.flag", "duplicate key"}));

TEST(YamlReaderTest, CollectsEveryErrorOnePerLine) {
  Result<Sample> s = ParseSample("count: -5\nname: waytoolongname\nmode: nope\nextra: 1\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().field(), "count");
  EXPECT_EQ(s.status().message(),
            "count: must be >= 0 (got -5)\n"
            "name: must be at most 8 characters (got 14)\n"
            "mode: unknown value 'nope'; (one of: fast, slow, off)\n"
            "extra: unknown key; known keys: count, name, timeout, size, mode, tags, nested");
}

TEST(YamlReaderTest, SyntaxErrorsCarryFileLineAndColumn) {
  Result<Sample> s = ParseSample("count: 1\ntags: [a, b\nname: x\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("sample.yaml:3:"));
  EXPECT_THAT(s.status().message(), HasSubstr("YAML syntax error"));
}

TEST(YamlReaderTest, TopLevelMustBeAMapping) {
  Result<Sample> s = ParseSample("- a\n- b\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("top level must be a mapping"));
}

TEST(YamlReaderTest, RejectsOversizedInput) {
  std::string text(kMaxConfigFileBytes + 1, ' ');
  Result<Sample> s = ParseSample(text);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("over the limit of 64 MiB"));
}

TEST(YamlReaderTest, RejectsAliasBombs) {
  // Each level multiplies the nodes by 10: 10^9 when expanded.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j)
      text += (j ? ", " : "") + prev;
    text += "]\n";
  }
  Result<Sample> s = ParseSample(text);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("anchors and aliases"));
}

TEST(YamlReaderTest, RejectsRecursiveAliases) {
  // yaml-cpp builds a sequence that contains itself.
  Result<Sample> s = ParseSample("tags: &x [a, *x]\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("nesting deeper than 64 levels"));
}

TEST(YamlReaderTest, RejectsASecondDocument) {
  Result<Sample> s = ParseSample("count: 1\n---\ncount: 2\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("sample.yaml: holds 2 YAML documents"));
}

TEST(YamlReaderTest, AliasesOfSmallNodesAreFine) {
  Result<Sample> s = ParseSample("name: &n abc\ntags: [*n, *n]\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->tags, (std::vector<std::string>{"abc", "abc"}));
}

TEST(YamlReaderTest, NonScalarKeysAreRejected) {
  Result<Sample> s = ParseSample("? [a, b]\n: 1\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("mapping keys must be plain strings"));
}

TEST(YamlReaderTest, CapsTheNumberOfReportedErrors) {
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "unknown" + std::to_string(i) + ": 1\n";
  Result<Sample> s = ParseSample(text);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("... and 100 more errors"));
}

TEST(YamlReaderTest, DidYouMeanOnlySuggestsCloseWords) {
  std::vector<std::string> keys = {"interval", "backfill", "max_starts_per_cycle"};
  EXPECT_EQ(DidYouMean("intervall", keys), "interval");
  EXPECT_EQ(DidYouMean("backfil", keys), "backfill");
  EXPECT_EQ(DidYouMean("max_start_per_cycle", keys), "max_starts_per_cycle");
  EXPECT_EQ(DidYouMean("zebra", keys), std::nullopt);
}

TEST(YamlReaderTest, ParseSizeBytes) {
  EXPECT_EQ(*ParseSizeBytes("8MiB"), 8 << 20);
  EXPECT_EQ(*ParseSizeBytes("16K"), 16 << 10);
  EXPECT_EQ(*ParseSizeBytes("1G"), 1 << 30);
  EXPECT_EQ(*ParseSizeBytes("4096"), 4096);
  EXPECT_FALSE(ParseSizeBytes("").ok());
  EXPECT_FALSE(ParseSizeBytes("-1").ok());
  EXPECT_FALSE(ParseSizeBytes("2P").ok());
  EXPECT_FALSE(ParseSizeBytes("999999999T").ok());
}

TEST(YamlReaderTest, ValidNames) {
  EXPECT_TRUE(IsValidName("kaist-nlp"));
  EXPECT_TRUE(IsValidName("rtx-pro-6000"));
  EXPECT_TRUE(IsValidName("a.b_c"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("-lead"));
  EXPECT_FALSE(IsValidName("Upper"));
  EXPECT_FALSE(IsValidName("sp ace"));
  EXPECT_FALSE(IsValidName(std::string(65, 'a')));
}

TEST(YamlReaderTest, ResolvesRelativePaths) {
  std::optional<std::filesystem::path> base = std::filesystem::path("/etc/gsched");
  EXPECT_EQ(ResolveRelativePath("data", base), "/etc/gsched/data");
  EXPECT_EQ(ResolveRelativePath("./data/../x", base), "/etc/gsched/x");
  EXPECT_EQ(ResolveRelativePath("/var/lib/gsched", base), "/var/lib/gsched");
  EXPECT_EQ(ResolveRelativePath("", base), "");
  EXPECT_EQ(ResolveRelativePath("data", std::nullopt), "data");
}

}  // namespace
}  // namespace gsched::config

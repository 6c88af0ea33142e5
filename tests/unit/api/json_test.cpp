// `ParseJson`: malformed text with byte offsets, limits, UTF-8, and duplicate keys at any depth.
#include "scheduler/api/json.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace gsched::api {
namespace {

struct Rejection {
  std::string name;
  std::string text;
  std::string field;             // Expected `Status::field()`.
  std::string message_fragment;  // Must occur in the message.
};

class ParseJsonRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(ParseJsonRejectionTest, RejectsWithFieldAndMessage) {
  const Rejection& c = GetParam();
  auto r = ParseJson(c.text);
  ASSERT_FALSE(r.ok()) << "accepted: " << c.text;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().field(), c.field) << r.status().ToString();
  EXPECT_NE(r.status().message().find(c.message_fragment), std::string::npos)
      << "message: " << r.status().message() << "\nexpected fragment: " << c.message_fragment;
}

std::string Nested(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// A large object (more than the 16 keys checked pairwise) with one repeat at the end.
std::string WideObjectWithRepeat() {
  std::string s = "{";
  for (int i = 0; i < 100; ++i)
    s += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ", ";
  return s + "\"k7\": 0}";
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseJsonRejectionTest,
    ::testing::Values(
        // Malformed text names the byte offset: `{"a": }` fails at the `}` (byte 6).
        Rejection{"missing_value", R"({"a": })", "", "invalid JSON at byte 6"},
        Rejection{"empty", "", "", "invalid JSON at byte 0"},
        Rejection{"trailing_comma", R"({"a": 1,})", "", "invalid JSON at byte 8"},
        Rejection{"trailing_data", R"({"a": 1} {"b": 2})", "", "unexpected data after the value"},
        Rejection{"comment", "{/* c */}", "", "invalid JSON"},
        Rejection{"single_quotes", "{'a': 1}", "", "invalid JSON at byte 1"},
        Rejection{"nan", R"({"a": NaN})", "", "invalid JSON"},
        Rejection{"unterminated_string", R"({"a": "x)", "", "invalid JSON"},
        // Invalid UTF-8: a lone continuation byte, an overlong encoding, a lone surrogate byte.
        Rejection{"utf8_continuation", "{\"a\": \"\x80\"}", "", "invalid JSON at byte 7"},
        Rejection{"utf8_overlong", "{\"a\": \"\xc0\xaf\"}", "", "invalid JSON"},
        Rejection{"utf8_surrogate", "{\"a\": \"\xed\xa0\x80\"}", "", "invalid JSON"},
        Rejection{"utf8_in_key", "{\"\xff\": 1}", "", "invalid JSON"},
        Rejection{"deep_arrays", Nested(10'000), "", "nesting deeper than 32"},
        Rejection{"depth_33", Nested(33), "", "nesting deeper than 32"},
        // Duplicate keys: the path names the repeated key.
        Rejection{"dup_top", R"({"a": 1, "a": 2})", "a", "duplicate key 'a'"},
        Rejection{"dup_nested", R"({"spec": {"env": {"X": "1", "X": "2"}}})", "spec.env.X",
                  "duplicate key 'X'"},
        Rejection{"dup_escaped", R"({"a": 1, "\u0061": 2})", "a", "duplicate key 'a'"},
        Rejection{"dup_escaped_both", R"({"\u00e9": 1, "\u00E9": 2})", "[\"\xc3\xa9\"]",
                  "duplicate key"},
        Rejection{"dup_utf8_vs_escape", "{\"\xc3\xa9\": 1, \"\\u00e9\": 2}", "[\"\xc3\xa9\"]",
                  "duplicate key"},
        Rejection{"dup_in_batch", R"({"jobs": [{"a": 1}, {"b": 1, "c": 2, "b": 3}]})", "jobs[1].b",
                  "duplicate key 'b'"},
        Rejection{"dup_after_nested", R"({"x": {"y": 1}, "z": [1, {"q": 2}], "x": 3})", "x",
                  "duplicate key 'x'"},
        Rejection{"dup_wide_object", WideObjectWithRepeat(), "k7", "duplicate key 'k7'"},
        Rejection{"dup_in_array_in_array", R"([[0], [1, {"k": 1, "k": 1}]])", "[1][1].k",
                  "duplicate key 'k'"},
        Rejection{"dup_empty_key", R"({"": 1, "": 2})", "[\"\"]", "duplicate key ''"}),
    [](const ::testing::TestParamInfo<Rejection>& info) { return info.param.name; });

TEST(ParseJsonTest, AcceptsValidTextLikeBoost) {
  const std::string nested = Nested(32);
  for (std::string_view text : std::initializer_list<std::string_view>{
           R"({"a": 1, "b": [1, 2, {"a": 2}], "c": {"a": {"a": 3}}})", R"([{"a": 1}, {"a": 2}])",
           R"({"a": "\u0061", "\u0062": "x"})", "  {\"\xc3\xa9\": \"\xf0\x9f\x9a\x80\"}  ", "null",
           "12345678901234567890", R"("s")", std::string_view(nested)}) {
    auto r = ParseJson(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(*r, boost::json::parse(text)) << text;
  }
}

// Keys equal in a prefix or in hash buckets are not duplicates; sibling objects may repeat keys.
TEST(ParseJsonTest, SameKeysInDifferentObjectsAreFine) {
  auto r =
      ParseJson(R"({"a": {"a": 1, "b": 2}, "b": {"a": 1, "b": 2}, "ab": [{"a": 1}, {"a": 1}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string wide = "{";
  for (int i = 0; i < 5000; ++i)
    wide += (i ? ", \"" : "\"") + std::to_string(i) + "\": {\"x\": 1}";
  wide += "}";
  auto w = ParseJson(wide);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->as_object().size(), 5000u);
}

// A long key with escapes reaches the handler in parts; it must still be compared whole.
TEST(ParseJsonTest, LongEscapedKeysAreComparedWhole) {
  std::string key(10'000, 'x');
  std::string escaped_key = key.substr(0, 5000) + "\\u0078" + key.substr(5001);
  std::string dup = "{\"" + key + "\": 1, \"" + escaped_key + "\": 2}";
  auto r = ParseJson(dup);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("duplicate key"), std::string::npos);

  std::string other = key.substr(0, 5000) + "\\u0079" + key.substr(5001);
  auto ok = ParseJson("{\"" + key + "\": 1, \"" + other + "\": 2}");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->as_object().size(), 2u);
}

TEST(ParseJsonTest, SizeLimit) {
  JsonLimits limits;
  limits.max_bytes = 10;
  auto r = ParseJson(R"({"a": "0123456789"})", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("limit of 10 bytes"), std::string::npos);
  EXPECT_TRUE(ParseJson("[1, 2, 3]", limits).ok());
}

TEST(ParseJsonTest, DepthLimitIsConfigurable) {
  JsonLimits limits;
  limits.max_depth = 2;
  EXPECT_TRUE(ParseJson("[[1]]", limits).ok());
  auto r = ParseJson("[[[1]]]", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nesting deeper than 2"), std::string::npos);
}

}  // namespace
}  // namespace gsched::api

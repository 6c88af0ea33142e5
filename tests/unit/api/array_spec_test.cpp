// `ParseArraySpec`: Slurm-style array index lists.
#include "scheduler/api/array_spec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gsched::api {
namespace {

std::vector<uint32_t> Range(uint32_t first, uint32_t last, uint32_t step = 1) {
  std::vector<uint32_t> v;
  for (uint32_t i = first; i <= last; i += step)
    v.push_back(i);
  return v;
}

struct Accepted {
  std::string text;
  std::vector<uint32_t> indices;
  std::optional<uint32_t> max_concurrent;
};

TEST(ArraySpecTest, Accepts) {
  const std::vector<Accepted> cases = {
      {"0-9", Range(0, 9), std::nullopt},
      {"1,3,5-7", {1, 3, 5, 6, 7}, std::nullopt},
      {"0-99%10", Range(0, 99), 10},
      // Step 4 from 0 to 15: 0, 4, 8, 12 (16 is past the end).
      {"0-15:4", {0, 4, 8, 12}, std::nullopt},
      {"0-16:4", {0, 4, 8, 12, 16}, std::nullopt},
      {"7", {7}, std::nullopt},
      {"3-3", {3}, std::nullopt},
      // Overlaps collapse and the order is ascending.
      {"5-7,1-5,3", {1, 2, 3, 4, 5, 6, 7}, std::nullopt},
      {"0-999%50", Range(0, 999), 50},
      {"0-9%1", Range(0, 9), 1},
      // The step must not overflow near the top of the index range.
      {"9999990-9999999:7", {9999990, 9999997}, std::nullopt},
  };
  for (const Accepted& c : cases) {
    auto r = ParseArraySpec(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.status().ToString();
    EXPECT_EQ(r->indices, c.indices) << c.text;
    EXPECT_EQ(r->max_concurrent, c.max_concurrent) << c.text;
    EXPECT_TRUE(ValidateArraySpec(c.text).ok()) << c.text;
  }
}

TEST(ArraySpecTest, AtMostOneHundredThousandIndices) {
  auto full = ParseArraySpec("0-99999");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->indices.size(), 100'000u);
  // 0, 100, ..., 9,999,900: 9,999,999 / 100 + 1 = 100,000 indices.
  auto stepped = ParseArraySpec("0-9999999:100");
  ASSERT_TRUE(stepped.ok()) << stepped.status().ToString();
  EXPECT_EQ(stepped->indices.size(), 100'000u);
  EXPECT_EQ(stepped->indices.back(), 9'999'900u);
  // 100,001 in one range, or across parts.
  EXPECT_FALSE(ParseArraySpec("0-100000").ok());
  EXPECT_FALSE(ParseArraySpec("0-99999,100000").ok());
  EXPECT_FALSE(ParseArraySpec("0-9999999").ok());
  // Overlapping parts count twice: the limit is checked before anything is expanded.
  EXPECT_FALSE(ParseArraySpec("0-99999,5").ok());
}

struct Rejected {
  std::string text;
  std::string fragment;
};

TEST(ArraySpecTest, Rejects) {
  const std::vector<Rejected> cases = {
      {"", "empty"},
      {",", "expected an index or a range"},
      {"1,,2", "expected an index or a range"},
      {"1,", "expected an index or a range"},
      {"-1", "expected an index or a range"},
      {"1-", "expected an index or a range"},
      {"a", "expected an index or a range"},
      {"1-2-3", "expected an index or a range"},
      {" 1", "expected an index or a range"},
      {"1 ", "expected an index or a range"},
      {"+1", "expected an index or a range"},
      {"123456789", "expected an index or a range"},
      {"10000000", "indices must be 0..9999999"},
      {"9-3", "must not end before it starts"},
      {"5:2", "a step needs a range"},
      {"0-10:0", "a step must be a positive integer"},
      {"0-10:", "a step must be a positive integer"},
      {"0-10:-1", "a step must be a positive integer"},
      {"%5", "expected an index or a range"},
      {"0-9%0", "the limit after % must be 1..100000"},
      {"0-9%", "the limit after % must be 1..100000"},
      {"0-9%100001", "the limit after % must be 1..100000"},
      {"0-9%5%5", "the limit after % must be 1..100000"},
      {"0-9%x", "the limit after % must be 1..100000"},
      {"0-100000", "more than 100000 indices"},
  };
  for (const Rejected& c : cases) {
    auto r = ParseArraySpec(c.text);
    ASSERT_FALSE(r.ok()) << "accepted '" << c.text << "'";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.fragment), std::string::npos)
        << "'" << c.text << "': " << r.status().message();
    // The validation without expansion agrees, message and all.
    EXPECT_EQ(ValidateArraySpec(c.text), r.status()) << c.text;
  }
}

}  // namespace
}  // namespace gsched::api

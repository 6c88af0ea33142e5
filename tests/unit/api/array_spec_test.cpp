#include "scheduler/api/array_spec.h"

#include <gtest/gtest.h>

namespace gsched::api {
namespace {

TEST(ArraySpecTest, Range) {
  auto r = ParseArraySpec("0-9");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->indices.size(), 10u);
}

}  // namespace
}  // namespace gsched::api

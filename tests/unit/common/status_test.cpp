#include "scheduler/common/status.h"

#include <gtest/gtest.h>

#include <string>

namespace gsched {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0)
    return Status::InvalidArgument("must be even", "x");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckPositive(int x) {
  if (x <= 0)
    return Status::InvalidArgument("must be > 0", "count");
  return Status::Ok();
}

Status CheckBoth(int a, int b) {
  RETURN_IF_ERROR(CheckPositive(a));
  RETURN_IF_ERROR(CheckPositive(b));
  return Status::Ok();
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(StatusTest, ToStringPutsTheFieldFirst) {
  EXPECT_EQ(Status::InvalidArgument("must be 1..64", "gpus_per_node").ToString(),
            "gpus_per_node: must be 1..64");
  EXPECT_EQ(Status::NotFound("job 7 not found").ToString(), "job 7 not found");
}

TEST(StatusTest, FieldPrefixesCompose) {
  // A nested decoder says `gpus_per_node`; the list decoder adds `[3]`; the body decoder `jobs`.
  Status s = Status::InvalidArgument("must be 1..64", "gpus_per_node");
  s = std::move(s).WithFieldPrefix("[3]");
  s = std::move(s).WithFieldPrefix("jobs");
  EXPECT_EQ(s.field(), "jobs[3].gpus_per_node");

  Status index_only = Status::InvalidArgument("must be a string", "[2]");
  EXPECT_EQ(std::move(index_only).WithFieldPrefix("command").field(), "command[2]");

  Status no_field = Status::InvalidArgument("must be an object");
  EXPECT_EQ(std::move(no_field).WithFieldPrefix("spec").field(), "spec");

  EXPECT_TRUE(Status::Ok().WithFieldPrefix("x").field().empty());
}

TEST(StatusTest, CodeNamesAreStable) {
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted), "resource_exhausted");
}

TEST(ResultTest, ValueAndError) {
  Result<int> good = Half(8);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 4);
  Result<int> bad = Half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "x");
  EXPECT_EQ(bad.value_or(-1), -1);
}

TEST(ResultTest, AssignOrReturnPropagates) {
  // 12 / 2 = 6, 6 / 2 = 3.
  EXPECT_EQ(*Quarter(12), 3);
  // 6 / 2 = 3, and 3 is odd.
  EXPECT_EQ(Quarter(6).status().message(), "must be even");
}

TEST(ResultTest, ReturnIfErrorStopsAtTheFirstError) {
  EXPECT_TRUE(CheckBoth(1, 2).ok());
  EXPECT_EQ(CheckBoth(1, 0).field(), "count");
}

TEST(ResultTest, MovesOutValues) {
  Result<std::string> r = std::string(100, 'x');
  std::string s = std::move(r).value();
  EXPECT_EQ(s.size(), 100u);
}

}  // namespace
}  // namespace gsched

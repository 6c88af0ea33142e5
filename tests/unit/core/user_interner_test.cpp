#include "scheduler/core/user_interner.h"

#include <gtest/gtest.h>

namespace gsched::core {
namespace {

TEST(UserInternerTest, GivesEachNameOneDenseIndexInFirstSeenOrder) {
  std::vector<std::string> users;
  UserInterner ids(users);
  EXPECT_EQ(ids.Intern("alice"), 0u);
  EXPECT_EQ(ids.Intern("bob"), 1u);
  EXPECT_EQ(ids.Intern("alice"), 0u);
  EXPECT_EQ(ids.Intern("carol"), 2u);
  EXPECT_EQ(ids.Intern("bob"), 1u);
  EXPECT_EQ(users, (std::vector<std::string>{"alice", "bob", "carol"}));
}

TEST(UserInternerTest, KeepsTheIndicesOfNamesAlreadyListed) {
  std::vector<std::string> users{"dave", "erin"};
  UserInterner ids(users);
  EXPECT_EQ(ids.Intern("erin"), 1u);
  EXPECT_EQ(ids.Intern("frank"), 2u);
  EXPECT_EQ(ids.Intern("dave"), 0u);
  EXPECT_EQ(users, (std::vector<std::string>{"dave", "erin", "frank"}));
}

}  // namespace
}  // namespace gsched::core

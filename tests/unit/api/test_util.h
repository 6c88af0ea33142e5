// Helpers shared by the api tests: golden files and parsing shortcuts.
#pragma once

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "scheduler/api/json.h"

namespace gsched::api::testing {

inline std::string ReadDataFile(const std::string& name) {
  std::ifstream in(std::string(GSCHED_TEST_DATA_DIR) + "/api/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open tests/data/api/" << name;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Parses text that the test knows to be valid JSON.
inline boost::json::value Json(std::string_view text) {
  auto r = ParseJson(text);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << " in " << text;
  return r.ok() ? *r : boost::json::value();
}

}  // namespace gsched::api::testing

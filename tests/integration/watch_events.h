// Helpers shared by the watch feed's integration tests: reading the fields of one event.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace gsched::testing::watch_events {

namespace json = boost::json;

// A one-GPU job, as the tests submit it.
inline constexpr char kSpec[] =
    R"({"image":"/i","command":["x"],"gpus_per_node":1,"gpu_type":"h100"})";

inline uint64_t Seq(const json::value& e) {
  return e.at("seq").to_number<uint64_t>();
}
inline std::string Type(const json::value& e) {
  return std::string(e.at("type").as_string());
}
// The `job` of a job event, else 0.
inline uint64_t JobOf(const json::value& e) {
  const json::value* j = e.at("data").as_object().if_contains("job");
  return j ? j->to_number<uint64_t>() : 0;
}
inline std::string DataString(const json::value& e, std::string_view key) {
  const json::value* v = e.at("data").as_object().if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}
inline bool IsSubmitted(const json::value& e, uint64_t job) {
  return Type(e) == "job.submitted" && JobOf(e) == job;
}

}  // namespace gsched::testing::watch_events

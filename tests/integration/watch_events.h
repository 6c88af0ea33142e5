// Helpers shared by the watch feed's integration tests: reading the fields of one event,
// submitting jobs, reading a metric.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/net/http_client.h"
#include "tests/integration/scheduler_process.h"

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

inline std::vector<uint64_t> Seqs(const std::vector<json::value>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events)
    out.push_back(Seq(e));
  return out;
}

// One `kSpec` job; its id, or 0 (with a test failure) when refused.
inline uint64_t Submit(const SchedulerProcess& s, const std::string& token) {
  auto r = s.Client(token)->Post("/v1/jobs", kSpec);
  EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  if (!r.ok() || r->status != 201)
    return 0;
  return Parse(r->body).at("id").to_number<uint64_t>();
}

// `n` jobs in one durable write; their ids.
inline std::vector<uint64_t> SubmitBatch(net::HttpClient& client, int n) {
  std::string body = R"({"jobs":[)";
  for (int i = 0; i < n; ++i)
    body += (i ? "," : "") + std::string(kSpec);
  body += "]}";
  auto r = client.Post("/v1/jobs", body);
  EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  std::vector<uint64_t> ids;
  if (!r.ok() || r->status != 201)
    return ids;
  json::value answer = Parse(r->body);  // Kept: a range-for over a temporary's member dangles.
  for (const auto& id : answer.at("ids").as_array())
    ids.push_back(id.to_number<uint64_t>());
  return ids;
}

// A sample of `/metrics`, or -1.
inline double Metric(const SchedulerProcess& s, const std::string& name) {
  auto r = s.Client(s.admin_token())->Get("/metrics");
  if (!r.ok())
    return -1;
  size_t at = r->body.find("\n" + name + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(r->body.substr(at + name.size() + 2));
}

}  // namespace gsched::testing::watch_events

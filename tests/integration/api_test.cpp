// Every REST endpoint, every role and every error path, against the real binary.
#include <gtest/gtest.h>

#include "tests/integration/scheduler_process.h"

namespace gsched::testing {
namespace {

constexpr char kSpec[] = R"({"image":"/images/x","command":["python","train.py"],"gpus_per_node":4,
                             "gpu_type":"h100","time_limit_s":3600})";

class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scheduler_ = new SchedulerProcess();
    alice_ = scheduler_->Token("alice", "user", {"proj-a"});
    bob_ = scheduler_->Token("bob", "user", {"proj-b"});
    coord_ = scheduler_->Token("carol", "coordinator", {"lab"});
  }
  static void TearDownTestSuite() {
    delete scheduler_;
    scheduler_ = nullptr;
  }
  static net::HttpResponse Do(const std::string& token, const std::string& method,
                              const std::string& target, const std::string& body = {}) {
    auto r = scheduler_->Client(token)->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : net::HttpResponse{0, r.status().ToString()};
  }
  static uint64_t Submit(const std::string& token, const std::string& spec = kSpec) {
    auto r = Do(token, "POST", "/v1/jobs", spec);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? Parse(r.body).at("id").to_number<uint64_t>() : 0;
  }
  static std::string ErrorField(const net::HttpResponse& r) {
    boost::json::value body = Parse(r.body);
    const auto& e = body.at("error").as_object();
    return e.contains("field") ? std::string(e.at("field").as_string()) : "";
  }

  static SchedulerProcess* scheduler_;
  static std::string alice_, bob_, coord_;
};
SchedulerProcess* ApiTest::scheduler_ = nullptr;
std::string ApiTest::alice_, ApiTest::bob_, ApiTest::coord_;

TEST_F(ApiTest, HealthAndMetricsNeedNoToken) {
  EXPECT_EQ(Do("", "GET", "/healthz").status, 200);
  auto m = Do("", "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("gsched_cycle_seconds_bucket"), std::string::npos);
}

TEST_F(ApiTest, MissingBadAndForgedTokensAre401) {
  EXPECT_EQ(Do("", "GET", "/v1/whoami").status, 401);
  EXPECT_EQ(Do("nonsense", "GET", "/v1/whoami").status, 401);
  std::string forged = alice_.substr(0, alice_.size() - 4) + "AAAA";
  EXPECT_EQ(Do(forged, "GET", "/v1/whoami").status, 401);
}

TEST_F(ApiTest, WhoAmISaysWhoAndWhat) {
  auto r = Do(alice_, "GET", "/v1/whoami");
  ASSERT_EQ(r.status, 200);
  auto w = Parse(r.body).as_object();
  EXPECT_EQ(w.at("user").as_string(), "alice");
  EXPECT_EQ(w.at("role").as_string(), "user");
  EXPECT_EQ(w.at("accounts").as_array().size(), 1u);
}

TEST_F(ApiTest, SubmitGetAndListOwnJobs) {
  uint64_t id = Submit(alice_);
  auto r = Do(alice_, "GET", "/v1/jobs/" + std::to_string(id));
  ASSERT_EQ(r.status, 200) << r.body;
  auto job = Parse(r.body).as_object();
  EXPECT_EQ(job.at("user").as_string(), "alice");
  // The account defaults to the token's first account.
  EXPECT_EQ(job.at("spec").at("account").as_string(), "proj-a");
  EXPECT_EQ(job.at("state").as_string(), "pending");
  auto list = Do(alice_, "GET", "/v1/jobs?state=pending&limit=1000");
  ASSERT_EQ(list.status, 200);
  bool found = false;
  boost::json::value jobs = Parse(list.body);
  for (const auto& j : jobs.at("jobs").as_array())
    found |= j.at("id").to_number<uint64_t>() == id;
  EXPECT_TRUE(found);
}

TEST_F(ApiTest, ListTakesSeveralStatesAndPagesAcrossThem) {
  uint64_t a = Submit(alice_);
  uint64_t b = Submit(alice_);
  uint64_t c = Submit(alice_);
  ASSERT_EQ(Do(alice_, "POST", "/v1/jobs/" + std::to_string(b) + "/cancel").status, 200);
  auto ids_of = [&](const std::string& target) {
    std::vector<uint64_t> ids;
    boost::json::value v = Parse(Do(alice_, "GET", target).body);
    for (const auto& j : v.at("jobs").as_array())
      ids.push_back(j.at("id").to_number<uint64_t>());
    return ids;
  };
  std::string after = "&after=" + std::to_string(a - 1);
  EXPECT_EQ(ids_of("/v1/jobs?state=pending,running" + after), (std::vector<uint64_t>{a, c}));
  EXPECT_EQ(ids_of("/v1/jobs?state=cancelled" + after), (std::vector<uint64_t>{b}));
  EXPECT_EQ(ids_of("/v1/jobs?state=pending,cancelled" + after), (std::vector<uint64_t>{a, b, c}));
  // Paging: one at a time, in id order.
  EXPECT_EQ(ids_of("/v1/jobs?state=pending,cancelled&limit=1&after=" + std::to_string(a)),
            (std::vector<uint64_t>{b}));
  EXPECT_EQ(Do(alice_, "GET", "/v1/jobs?state=pending,,running").status, 400);
}

TEST_F(ApiTest, PendingJobsGetAReason) {
  uint64_t id = Submit(alice_);
  // No worker is connected: the scheduling pass must say it waits for h100 GPUs.
  ASSERT_TRUE(WaitFor([&] {
    auto job = Parse(Do(alice_, "GET", "/v1/jobs/" + std::to_string(id)).body).as_object();
    return job.at("reason").is_object();
  }));
  auto job = Parse(Do(alice_, "GET", "/v1/jobs/" + std::to_string(id)).body).as_object();
  EXPECT_EQ(job.at("reason").at("code").as_string(), "resources");
  EXPECT_EQ(job.at("reason").at("details").at("requested").as_int64(), 4);
}

TEST_F(ApiTest, BatchAndArraySubmissionsReturnIds) {
  auto batch =
      Do(alice_, "POST", "/v1/jobs", std::string(R"({"jobs":[)") + kSpec + "," + kSpec + "]}");
  ASSERT_EQ(batch.status, 201) << batch.body;
  auto ids = Parse(batch.body).at("ids").as_array();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[1].to_number<uint64_t>(), ids[0].to_number<uint64_t>() + 1);
  auto array = Do(alice_, "POST", "/v1/jobs", R"({"image":"/i","command":["x"],"array":"0-9%2"})");
  ASSERT_EQ(array.status, 201) << array.body;
  EXPECT_EQ(Parse(array.body).at("ids").as_array().size(), 10u);
}

TEST_F(ApiTest, ValidationErrorsAre400WithTheField) {
  auto r = Do(alice_, "POST", "/v1/jobs", R"({"image":"/i","command":["x"],"gpus_per_node":99})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "gpus_per_node");
  r = Do(alice_, "POST", "/v1/jobs", R"({"jobs":[{"image":"/i","command":["x"]},{"image":"/i"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "jobs[1].command");
  r = Do(alice_, "POST", "/v1/jobs", R"({"image":"/i","command":["x"],"gpu_type":"a100"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "gpu_type[0]");
  r = Do(alice_, "POST", "/v1/jobs",
         R"({"image":"/i","command":["x"],"depends_on":[{"type":"afterok","job":999999}]})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorField(r), "depends_on[0].job");
  r = Do(alice_, "POST", "/v1/jobs", "{not json");
  EXPECT_EQ(r.status, 400);
  r = Do(alice_, "GET", "/v1/jobs?state=sleeping");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "state");
  r = Do(alice_, "GET", "/v1/jobs/abc");
  EXPECT_EQ(r.status, 400);
}

TEST_F(ApiTest, UsersCannotSubmitToOthersAccountsOrSeeOthersJobs) {
  auto r = Do(alice_, "POST", "/v1/jobs", R"({"image":"/i","command":["x"],"account":"proj-b"})");
  EXPECT_EQ(r.status, 403);
  uint64_t bobs = Submit(bob_);
  EXPECT_EQ(Do(alice_, "GET", "/v1/jobs/" + std::to_string(bobs)).status, 404);
  EXPECT_EQ(Do(alice_, "POST", "/v1/jobs/" + std::to_string(bobs) + "/cancel").status, 404);
  boost::json::value all = Parse(Do(alice_, "GET", "/v1/jobs?limit=10000").body);
  for (const auto& j : all.at("jobs").as_array()) {
    EXPECT_EQ(j.at("user").as_string(), "alice");
  }
}

TEST_F(ApiTest, CoordinatorsManageTheirSubtree) {
  uint64_t bobs = Submit(bob_);
  EXPECT_EQ(Do(coord_, "GET", "/v1/jobs/" + std::to_string(bobs)).status, 200);
  EXPECT_EQ(Do(coord_, "POST", "/v1/jobs/" + std::to_string(bobs) + "/hold").status, 200);
  EXPECT_EQ(
      Do(coord_, "POST", "/v1/jobs", R"({"image":"/i","command":["x"],"account":"other"})").status,
      403);
}

TEST_F(ApiTest, CancelHoldRelease) {
  uint64_t id = Submit(alice_);
  std::string base = "/v1/jobs/" + std::to_string(id);
  auto h = Do(alice_, "POST", base + "/hold");
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_TRUE(Parse(h.body).at("held").as_bool());
  EXPECT_FALSE(Parse(Do(alice_, "POST", base + "/release").body).at("held").as_bool());
  auto c = Do(alice_, "POST", base + "/cancel");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(Parse(c.body).at("state").as_string(), "cancelled");
  // A finished job cannot be cancelled or held again.
  EXPECT_EQ(Do(alice_, "POST", base + "/cancel").status, 409);
  EXPECT_EQ(Do(alice_, "POST", base + "/hold").status, 409);
  EXPECT_EQ(Do(alice_, "POST", "/v1/jobs/99999999/cancel").status, 404);
}

TEST_F(ApiTest, OnlyAdminsChangeAccountsAndTokens) {
  std::string body = R"({"parent":"lab","shares":2,"quotas":{"h100":{"guaranteed":0,"limit":4}}})";
  EXPECT_EQ(Do(alice_, "PUT", "/v1/accounts/proj-c", body).status, 403);
  auto r = Do(scheduler_->admin_token(), "PUT", "/v1/accounts/proj-c", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Parse(r.body).at("parent").as_string(), "lab");
  // Guarantees of lab's children would exceed lab's 8.
  r = Do(scheduler_->admin_token(), "PUT", "/v1/accounts/proj-d",
         R"({"parent":"lab","quotas":{"h100":{"guaranteed":4,"limit":4}}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "quotas.h100.guaranteed");
  r = Do(scheduler_->admin_token(), "PUT", "/v1/accounts/x", R"({"parent":"nowhere"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "parent");
  EXPECT_EQ(Do(alice_, "POST", "/v1/tokens", R"({"user":"mallory","role":"admin"})").status, 403);
  // A user reads only their accounts and those above them (DESIGN.md section 11); admins all.
  auto accounts = Parse(Do(alice_, "GET", "/v1/accounts").body).at("accounts").as_array();
  EXPECT_EQ(accounts.size(), 3u);  // root, lab, proj-a.
  accounts =
      Parse(Do(scheduler_->admin_token(), "GET", "/v1/accounts").body).at("accounts").as_array();
  EXPECT_GE(accounts.size(), 5u);
}

TEST_F(ApiTest, RevokedTokensStopWorking) {
  std::string token = scheduler_->Token("dave", "user", {"proj-b"});
  auto who = Parse(Do(token, "GET", "/v1/whoami").body);
  std::string id(who.at("token_id").as_string());
  EXPECT_EQ(Do(alice_, "DELETE", "/v1/tokens/" + id).status, 403);
  EXPECT_EQ(Do(scheduler_->admin_token(), "DELETE", "/v1/tokens/" + id).status, 200);
  EXPECT_EQ(Do(token, "GET", "/v1/whoami").status, 401);
}

TEST_F(ApiTest, NodesAndCluster) {
  EXPECT_EQ(Do(alice_, "GET", "/v1/nodes").status, 200);
  EXPECT_EQ(Do(alice_, "POST", "/v1/nodes/n1/drain", R"({"reason":"x"})").status, 403);
  EXPECT_EQ(
      Do(scheduler_->admin_token(), "POST", "/v1/nodes/nowhere/drain", R"({"reason":"x"})").status,
      404);
  auto c = Do(alice_, "GET", "/v1/cluster");
  ASSERT_EQ(c.status, 200);
  EXPECT_TRUE(Parse(c.body).as_object().contains("pending"));
}

TEST_F(ApiTest, UnknownRoutesAre404AndHugeBodies413) {
  EXPECT_EQ(Do(alice_, "GET", "/v1/nothing").status, 404);
  EXPECT_EQ(Do(alice_, "GET", "/v2/jobs").status, 404);
  auto r = Do(alice_, "POST", "/v1/jobs", std::string(9 << 20, ' '));
  EXPECT_EQ(r.status, 413);
}

TEST(RateLimitTest, TooManyRequestsAre429WithRetryAfter) {
  SchedulerProcess scheduler("rate_limit:\n  requests_per_s: 1\n  burst: 3\n");
  auto client = scheduler.Client(scheduler.admin_token());
  int limited = 0;
  std::string retry_after;
  for (int i = 0; i < 10; ++i) {
    auto r = client->Get("/v1/whoami");
    ASSERT_TRUE(r.ok());
    if (r->status == 429) {
      ++limited;
      for (const auto& [k, v] : r->headers) {
        if (k == "Retry-After")
          retry_after = v;
      }
    }
  }
  // A burst of 3 at 1/s: at least 6 of 10 back-to-back requests are refused.
  EXPECT_GE(limited, 6);
  EXPECT_FALSE(retry_after.empty());
}

}  // namespace
}  // namespace gsched::testing

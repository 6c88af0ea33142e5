// A real `gsched-scheduler` process for integration tests: its own temp data dir, 127.0.0.1:0,
// a small account tree, and clients with tokens of any role. `Crash()` kills it with SIGKILL and
// `Start()` brings it back on the same data dir.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/net/http_client.h"
#include "tests/testutil/subprocess.h"
#include "tests/testutil/temp_dir.h"

namespace gsched::testing {

inline constexpr char kTestAccounts[] = R"(accounts:
  - name: lab
    shares: 1
    quotas:
      h100: {guaranteed: 8, limit: 16}
  - name: proj-a
    parent: lab
    shares: 3
    quotas:
      h100: {guaranteed: 8, limit: 16}
  - name: proj-b
    parent: lab
    shares: 1
  - name: other
    shares: 1
)";

class SchedulerProcess {
 public:
  // `extra_yaml` is appended to scheduler.yaml (e.g. a tighter rate limit).
  // `start`: false leaves the data dir to be prepared (e.g. mounted) before `Start()`.
  // `ca_file` is what the clients verify an https scheduler with (its `tls.cert` in tests).
  explicit SchedulerProcess(std::string extra_yaml = {}, bool start = true,
                            std::string ca_file = {})
      : ca_file_(std::move(ca_file)) {
    std::ofstream(dir_.path() + "/accounts.yaml") << kTestAccounts;
    std::ofstream(dir_.path() + "/scheduler.yaml") << "listen: 127.0.0.1:0\n"
                                                   << "data_dir: data\n"
                                                   << "accounts_file: accounts.yaml\n"
                                                   << "log_level: info\n"
                                                   << "scheduling:\n  interval: 100ms\n"
                                                   << extra_yaml;
    std::filesystem::create_directories(data_dir());
    if (start)
      Start();
  }
  ~SchedulerProcess() {
    if (process_)
      process_->Kill(SIGTERM);
  }

  // `same_port`: listen where the previous run listened, so that workers reconnect by themselves.
  void Start(bool same_port = false) {
    std::filesystem::remove(data_dir() + "/scheduler.addr");
    std::vector<std::string> argv{GSCHED_SCHEDULER_BIN, "--config",
                                  dir_.path() + "/scheduler.yaml"};
    if (same_port && !url_.empty())
      argv.insert(argv.end(), {"--listen", url_.substr(url_.find("://") + 3)});
    process_ = std::make_unique<Subprocess>(argv, dir_.path() + "/scheduler.log");
    ASSERT_GT(process_->pid(), 0);
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(data_dir() + "/scheduler.addr"); }))
        << "scheduler did not start:\n"
        << process_->Log();
    std::ifstream in(data_dir() + "/scheduler.addr");
    std::getline(in, url_);
    std::ifstream t(data_dir() + "/admin.token");
    std::getline(t, admin_token_);
  }
  void Crash() { process_->Kill(SIGKILL); }
  int Stop() { return process_->Kill(SIGTERM); }

  std::string data_dir() const { return dir_.path() + "/data"; }
  std::string dir() const { return dir_.path(); }
  const std::string& url() const { return url_; }
  const std::string& admin_token() const { return admin_token_; }
  std::string Log() const { return process_->Log(); }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  std::unique_ptr<net::HttpClient> Client(const std::string& token) const {
    auto c = net::HttpClient::Create(url_,
                                     {.token = token, .ca_file = ca_file_, .timeout = Seconds(20)});
    EXPECT_TRUE(c.ok());
    return std::move(c).value();
  }

  // A token made through the API by the admin. A worker token serves `nodes`, by default the node
  // named like its user (`Token("node-1", "worker", {})` serves node-1 only).
  std::string Token(const std::string& user, const std::string& role,
                    const std::vector<std::string>& accounts,
                    std::vector<std::string> nodes = {}) const {
    boost::json::array acc;
    for (const auto& a : accounts)
      acc.emplace_back(a);
    boost::json::object body{{"user", user}, {"role", role}, {"accounts", acc}};
    if (role == "worker" && nodes.empty())
      nodes.push_back(user);
    if (!nodes.empty()) {
      boost::json::array n;
      for (const auto& p : nodes)
        n.emplace_back(p);
      body["nodes"] = std::move(n);
    }
    auto r = Client(admin_token_)->Post("/v1/tokens", boost::json::serialize(body));
    EXPECT_TRUE(r.ok());
    if (!r.ok() || r->status != 201) {
      ADD_FAILURE() << "token: " << (r.ok() ? r->body : r.status().ToString());
      return {};
    }
    return std::string(boost::json::parse(r->body).at("token").as_string());
  }

 private:
  std::string ca_file_;
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  std::string url_;
  std::string admin_token_;
};

inline boost::json::value Parse(const std::string& body) {
  return boost::json::parse(body);
}

}  // namespace gsched::testing

// The real `gsched` binary as a subprocess: exit codes that shell scripts rely on.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/unit/client/fake_server.h"

namespace gsched::client {
namespace {

struct Exit {
  int code;
  std::string out;
};

// Runs `gsched ARGS` through /bin/sh with a clean environment; stderr goes to stdout.
Exit RunBinary(const std::string& env, const std::string& args) {
  std::string cmd = "env -i HOME=/nonexistent " + env + " " + GSCHED_BIN + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(GschedBinary, ExitCodes) {
  FakeServer server;
  server.On("POST /v1/jobs", 201, R"({"id": 7})");
  server.On("GET /v1/jobs/8", 404, R"({"error": {"code": "not_found", "message": "no job 8"}})");
  std::string env = "GSCHED_SERVER=" + server.url() + " GSCHED_TOKEN=t";

  Exit ok = RunBinary(env, "submit --image /i -- echo hi");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_EQ(ok.out, "Submitted job 7\n");

  Exit no = RunBinary(env, "show 8");
  EXPECT_EQ(no.code, 1);
  EXPECT_EQ(no.out, "gsched: no job 8\n");

  EXPECT_EQ(RunBinary(env, "submit --gpus lots -- x").code, 2);
  EXPECT_EQ(RunBinary("", "--help").code, 0);

  std::string url = server.url();
  server.Stop();
  Exit down = RunBinary("GSCHED_SERVER=" + url, "whoami");
  EXPECT_EQ(down.code, 3) << down.out;
}

}  // namespace
}  // namespace gsched::client

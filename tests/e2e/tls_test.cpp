// TLS between sites, end to end: a scheduler with `tls.cert`/`tls.key`, a worker that reaches
// it over wss with `ca_file`, and the CLI over https with `--ca-file`; a job runs and its output
// comes back. A worker without the CA never gets in. Certificates are made by the openssl CLI.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/e2e/system_fixture.h"

namespace gsched::testing {
namespace {

// A CA, and a server certificate it signs for 127.0.0.1; false when openssl is missing.
bool MakeCertificates(const std::string& dir) {
  std::string cmd =
      "cd " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=gsched-test-ca -days 1 "
      "-keyout ca.key -out ca.pem"
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=scheduler -keyout server.key "
      "-out server.csr"
      " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
      "-extfile san.ext -out server.pem";
  return std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) == 0;
}

TEST(TlsSystemTest, WorkerAndCliSpeakTlsToTheScheduler) {
  TempDir certs;
  if (!MakeCertificates(certs.path()))
    GTEST_SKIP() << "openssl CLI not available";
  const std::string ca = certs.path() + "/ca.pem";
  SchedulerProcess s(
      "tls: {cert: " + certs.path() + "/server.pem, key: " + certs.path() + "/server.key}\n", true,
      ca);
  ASSERT_EQ(s.url().rfind("https://", 0), 0u) << s.url();

  // Without the CA a worker cannot get in; with it, it can.
  WorkerProcess stranger(s, "node-x", s.Token("node-x", "worker", {}), "process",
                         "identity: {run_as_root: true}\n");
  stranger.Start();
  WorkerProcess worker(s, "node-1", s.Token("node-1", "worker", {}), "process",
                       "identity: {run_as_root: true}\nca_file: " + ca + "\n");
  worker.Start();
  ASSERT_TRUE(WaitFor([&] {
    auto r = s.Client(s.admin_token())->Get("/v1/nodes");
    return r.ok() && r->body.find(R"("state":"up")") != std::string::npos;
  })) << worker.Log();
  EXPECT_TRUE(WaitFor([&] { return stranger.Log().find("TLS handshake") != std::string::npos; }))
      << stranger.Log();
  EXPECT_EQ(s.Client(s.admin_token())->Get("/v1/nodes")->body.find("node-x"), std::string::npos);

  // The CLI over https.
  std::string token_file = s.dir() + "/alice.token";
  std::ofstream(token_file) << s.Token("alice", "user", {"proj-a"}) << "\n";
  std::filesystem::permissions(token_file, std::filesystem::perms(0600));
  auto cli = [&](std::vector<std::string> args, const std::string& out) {
    std::vector<std::string> argv{GSCHED_CLI_BIN, "--server",  s.url(), "--token-file",
                                  token_file,     "--ca-file", ca};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p(argv, out,
                 {.err_path = out + ".err", .env = std::vector<std::string>{"HOME=" + s.dir()}});
    int status = p.Wait(std::chrono::seconds(20));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out = s.dir() + "/submit.out";
  ASSERT_EQ(cli({"submit", "--parsable", "--image", "/", "--gpus", "1", "--gpu-type", "h100",
                 "--time", "5m", "--", "sh", "-c", "echo over tls"},
                out),
            0)
      << ReadFile(out) << ReadFile(out + ".err");
  std::string id = ReadFile(out);
  id.erase(id.find_last_not_of("\n") + 1);
  ASSERT_TRUE(WaitFor([&] {
    auto r = s.Client(s.admin_token())->Get("/v1/jobs/" + id);
    return r.ok() && r->body.find(R"("state":"completed")") != std::string::npos;
  })) << worker.Log();
  std::string logs = s.dir() + "/logs.out";
  ASSERT_EQ(cli({"logs", id}, logs), 0) << ReadFile(logs + ".err");
  EXPECT_EQ(ReadFile(logs), "over tls\n");
  // And the CLI without the CA refuses the server (exit 3: unreachable).
  Subprocess bare(
      {GSCHED_CLI_BIN, "--server", s.url(), "--token-file", token_file, "whoami"},
      s.dir() + "/bare.out",
      {.err_path = s.dir() + "/bare.err", .env = std::vector<std::string>{"HOME=" + s.dir()}});
  int status = bare.Wait(std::chrono::seconds(20));
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 3) << ReadFile(s.dir() + "/bare.err");
}

}  // namespace
}  // namespace gsched::testing

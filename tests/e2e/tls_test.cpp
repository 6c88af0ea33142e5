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

// A client certificate for `node` signed by the test CA: `node`.pem and `node`.key; the node's name
// as a DNS subject alternative name (or only as the common name when `san` is false).
bool MakeNodeCertificate(const std::string& dir, const std::string& node, bool san = true) {
  std::string cmd = "cd " + dir + " && openssl req -newkey rsa:2048 -nodes -subj /CN=" + node +
                    " -keyout " + node + ".key -out " + node + ".csr";
  if (san) {
    cmd += " && printf 'subjectAltName=DNS:" + node + "\\n' > " + node + ".ext" +
           " && openssl x509 -req -in " + node + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial " +
           "-days 1 -extfile " + node + ".ext -out " + node + ".pem";
  } else {
    cmd += " && openssl x509 -req -in " + node + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial " +
           "-days 1 -out " + node + ".pem";
  }
  return std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) == 0;
}

// Mutual TLS for workers: with `tls.client_ca`, a worker must present a certificate of that CA,
// and says hello only as a node it names; a stolen worker token alone opens nothing. Users and the
// CLI need no certificate.
TEST(TlsSystemTest, WithAClientCaAWorkerIsTheNodeItsCertificateNames) {
  TempDir certs;
  if (!MakeCertificates(certs.path()) || !MakeNodeCertificate(certs.path(), "node-1") ||
      !MakeNodeCertificate(certs.path(), "node-2", /*san=*/false))
    GTEST_SKIP() << "openssl CLI not available";
  const std::string dir = certs.path();
  const std::string ca = dir + "/ca.pem";
  SchedulerProcess s("tls: {cert: " + dir + "/server.pem, key: " + dir + "/server.key, " +
                         "client_ca: " + ca + "}\n",
                     true, ca);
  // One token for every node-*: the certificate decides which node a connection is.
  std::string token = s.Token("fleet", "worker", {}, {"node-*"});
  auto tls = [&](const std::string& cert) {
    std::string y = "identity: {run_as_root: true}\nca_file: " + ca + "\n";
    if (!cert.empty())
      y += "tls_cert: " + dir + "/" + cert + ".pem\ntls_key: " + dir + "/" + cert + ".key\n";
    return y;
  };
  WorkerProcess node1(s, "node-1", token, "process", tls("node-1"));
  WorkerProcess node2(s, "node-2", token, "process", tls("node-2"));     // Named by its CN alone.
  WorkerProcess impostor(s, "node-3", token, "process", tls("node-1"));  // node-1's certificate.
  WorkerProcess bare(s, "node-4", token, "process", tls(""));            // The token alone.
  for (auto* w : {&node1, &node2, &impostor, &bare})
    w->Start();
  auto nodes = [&] { return s.Client(s.admin_token())->Get("/v1/nodes")->body; };
  ASSERT_TRUE(WaitFor([&] {
    std::string n = nodes();
    return n.find(R"("name":"node-1")") != std::string::npos &&
           n.find(R"("name":"node-2")") != std::string::npos;
  })) << nodes()
      << node1.Log() << node2.Log();
  // The token alone is refused at the upgrade, and the worker's log says why.
  EXPECT_TRUE(WaitFor([&] {
    return bare.Log().find("(HTTP 403): ") != std::string::npos &&
           bare.Log().find("needs a client certificate signed by tls.client_ca") !=
               std::string::npos;
  })) << bare.Log();
  EXPECT_TRUE(WaitFor([&] {
    return impostor.Log().find("may not serve node 'node-3'") != std::string::npos;
  })) << impostor.Log();
  std::string n = nodes();
  EXPECT_EQ(n.find("node-3"), std::string::npos) << n;
  EXPECT_EQ(n.find("node-4"), std::string::npos) << n;
  // The refusals are counted.
  auto metrics = s.Client(s.admin_token())->Get("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->body.find("gsched_worker_hello_refused_total 0"), std::string::npos);
  // A user needs no certificate.
  EXPECT_EQ(s.Client(s.Token("alice", "user", {"proj-a"}))->Get("/v1/whoami")->status, 200);
}

}  // namespace
}  // namespace gsched::testing

// Every command end to end, in-process through `RunCli`, against a fake scheduler over real HTTP on
// 127.0.0.1:0: the request each command sends, its table and `--json` output, and exit codes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <sstream>

#include "client/cli.h"
#include "scheduler/api/codec.h"
#include "scheduler/common/quantity.h"
#include "tests/testutil/temp_dir.h"
#include "tests/unit/client/fake_server.h"

namespace gsched::client {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// "Now" in every test: 2026-11-23 17:55:00 UTC.
Timestamp TestNow() {
  return *ParseTimestamp("2026-11-23T17:55:00Z");
}

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

api::Job MakeJob(uint64_t id, api::JobState state) {
  api::Job j;
  j.id = id;
  j.user = "alice";
  j.state = state;
  j.spec.name = "job" + std::to_string(id);
  j.spec.account = "kaist-nlp";
  j.spec.image = "/images/pytorch-24.10";
  j.spec.command = {"python", "train.py"};
  j.spec.gpus_per_node = 8;
  j.spec.gpu_type = {"h100"};
  j.submit_time = TestNow() - Seconds(600);
  return j;
}

class CliTest : public ::testing::Test {
 protected:
  CliTest() {
    env_.vars["HOME"] = home_.path();
    env_.vars["GSCHED_SERVER"] = server_.url();
    env_.vars["GSCHED_TOKEN"] = "tok-env";
    env_.now = TestNow();
    env_.poll_interval = Duration(10);
  }

  CliRun Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    int code = RunCli(std::move(args), out, err, env_);
    return {code, out.str(), err.str()};
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = home_.path() + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
    return path;
  }

  void WhoAmIIsAlice() {
    server_.On("GET /v1/whoami", 200,
               R"({"user": "alice", "role": "user", "accounts": ["kaist-nlp"],
                   "token_id": "tok_8f3a2c", "expires": "2026-12-23T18:00:00.000Z"})");
  }

  TempDir home_;
  FakeServer server_;
  Env env_;
};

// --- submit ---------------------------------------------------------------------------------

TEST_F(CliTest, SubmitCommandPostsTheSpec) {
  server_.On("POST /v1/jobs", 201, R"({"id": 42})");
  CliRun r = Run({"submit",     "--gpus",    "8",        "--nodes",    "2",         "--gpu-type",
                  "h100,h200",  "--time",    "1d",       "--account",  "kaist-nlp", "--image",
                  "/images/pt", "--name",    "llama-ft", "--class",    "high",      "--topology",
                  "block",      "-e",        "EPOCHS=3", "--after-ok", "7",         "--after-any",
                  "8",          "--requeue", "--",       "torchrun",   "--nproc",   "8",
                  "train.py"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Submitted job 42\n");
  auto requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/v1/jobs");
  EXPECT_EQ(requests[0].Header("authorization"), "Bearer tok-env");
  auto spec = api::DecodeJobSpec(json::parse(requests[0].body));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "llama-ft");
  EXPECT_EQ(spec->nodes, 2);
  EXPECT_EQ(spec->gpus_per_node, 8);
  EXPECT_THAT(spec->gpu_type, ElementsAre("h100", "h200"));
  EXPECT_EQ(spec->time_limit_s, 86400);
  EXPECT_EQ(spec->priority_class, api::PriorityClass::kHigh);
  EXPECT_EQ(spec->topology, api::Topology::kBlock);
  EXPECT_EQ(spec->env.at("EPOCHS"), "3");
  EXPECT_THAT(spec->depends_on, ElementsAre(api::Dependency{api::DependencyType::kAfterOk, 7},
                                            api::Dependency{api::DependencyType::kAfterAny, 8}));
  EXPECT_TRUE(spec->requeue);
  EXPECT_THAT(spec->command, ElementsAre("torchrun", "--nproc", "8", "train.py"));
}

TEST_F(CliTest, SubmitScriptWithFlagOverridesAndWarnings) {
  server_.On("POST /v1/jobs", 201, R"({"ids": [100, 101, 102]})");
  std::string script =
      "#!/bin/bash\n#SBATCH --gres=gpu:h100:4\n#SBATCH --nodes=2\n#SBATCH --array=0-2\n"
      "#SBATCH --mail-user=a@b\n#GSCHED --image /images/pt\npython run.py \"$@\"\n";
  std::string path = WriteFile("job.sh", script);
  CliRun r = Run({"submit", path, "--nodes", "1", "--", "--seed", "5"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Submitted 3 jobs: 100 .. 102\n");
  EXPECT_EQ(r.err,
            "gsched: warning: " + path + ":5: #SBATCH --mail-user is not supported; ignored\n");
  auto spec = api::DecodeJobSpec(json::parse(server_.Requests().at(0).body));
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->nodes, 1);  // The flag beats `#SBATCH --nodes=2`.
  EXPECT_EQ(spec->gpus_per_node, 4);
  EXPECT_EQ(spec->array, "0-2");
  EXPECT_THAT(spec->command, ElementsAre("/bin/bash", "-c", script, "job.sh", "--seed", "5"));

  CliRun parsable = Run({"submit", "--parsable", path});
  EXPECT_EQ(parsable.out, "100\n101\n102\n");
}

TEST_F(CliTest, SubmitDryRunNeedsNoServer) {
  env_.vars.erase("GSCHED_SERVER");
  CliRun r = Run({"submit", "--dry-run", "--image", "/img", "--time", "90m", "--", "true"});
  EXPECT_EQ(r.code, 0) << r.err;
  json::value v = json::parse(r.out);
  EXPECT_EQ(v.at("time_limit_s").as_int64(), 5400);
  EXPECT_EQ(v.at("command").at(0).as_string(), "true");
  EXPECT_TRUE(server_.Requests().empty());
}

TEST_F(CliTest, SubmitErrorsAreUsageErrors) {
  CliRun bad_flag = Run({"submit", "--gpus", "65", "--image", "/i", "--", "x"});
  EXPECT_EQ(bad_flag.code, 2);
  EXPECT_EQ(bad_flag.err, "gsched: --gpus: must be an integer in 0..64, got '65'\n");
  CliRun no_image = Run({"submit", "--", "x"});
  EXPECT_EQ(no_image.code, 2);
  EXPECT_THAT(no_image.err, HasSubstr("gsched: image: "));
  CliRun nothing = Run({"submit", "--image", "/i"});
  EXPECT_EQ(nothing.code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("nothing to run"));
  std::string path = WriteFile("bad.sh", "#!/bin/sh\n#SBATCH --time=1-25:00\ntrue\n");
  CliRun bad_script = Run({"submit", path});
  EXPECT_EQ(bad_script.code, 2);
  EXPECT_EQ(bad_script.err, "gsched: " + path +
                                ":2: --time: invalid duration '1-25:00': hours must be < 24 after "
                                "a day, minutes and seconds < 60\n");
  CliRun missing = Run({"submit", home_.path() + "/nope.sh"});
  EXPECT_EQ(missing.code, 2);
  CliRun unknown = Run({"submit", "--gpuz", "1"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("--gpuz"));
  EXPECT_TRUE(server_.Requests().empty());
}

TEST_F(CliTest, ServerRejectionIsExitOneWithTheFieldPath) {
  server_.On("POST /v1/jobs", 400,
             R"({"error": {"code": "invalid_argument", "message": "must be 0..64",
                 "field": "jobs[0].gpus_per_node"}})");
  CliRun r = Run({"submit", "--image", "/i", "--", "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "gsched: jobs[0].gpus_per_node: must be 0..64\n");
  server_.On("POST /v1/jobs", 503, "upstream down");
  CliRun plain = Run({"submit", "--image", "/i", "--", "x"});
  EXPECT_EQ(plain.code, 1);
  EXPECT_EQ(plain.err, "gsched: HTTP 503: upstream down\n");
}

TEST_F(CliTest, UnreachableServerIsExitThree) {
  FakeServer closed;
  std::string url = closed.url();
  closed.Stop();
  CliRun r = Run({"--server", url, "whoami"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("gsched: cannot reach " + url));
  CliRun w = Run({"--server", url, "watch"});
  EXPECT_EQ(w.code, 3);
}

TEST_F(CliTest, NoServerConfiguredIsAUsageError) {
  env_.vars.erase("GSCHED_SERVER");
  CliRun r = Run({"queue"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("no server configured"));
  CliRun bad = Run({"--server", "ftp://x", "whoami"});
  EXPECT_EQ(bad.code, 2);
}

// --- queue, show, cancel ----------------------------------------------------------------------

TEST_F(CliTest, QueueListsOwnJobsRunningFirstThenByPriority) {
  WhoAmIIsAlice();
  api::Job low = MakeJob(11, api::JobState::kPending);
  low.priority = 0.2;
  api::Job high = MakeJob(12, api::JobState::kPending);
  high.priority = 0.9;
  high.reason = api::Reason{api::ReasonCode::kQuota, "quota", {}, TestNow() + Seconds(7800)};
  api::Job running = MakeJob(13, api::JobState::kRunning);
  running.start_time = TestNow() - Seconds(3900);
  running.allocation = {{"nccc-b03-n12", {0, 1, 2, 3, 4, 5, 6, 7}}};
  json::object body;
  body["jobs"] = json::array{api::Encode(low), api::Encode(high), api::Encode(running)};
  server_.OnJson("GET /v1/jobs", 200, body);

  CliRun r = Run({"queue", "--state", "pending,running", "--limit", "50"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(
      server_.Lines(),
      ElementsAre("GET /v1/whoami", "GET /v1/jobs?user=alice&state=pending,running&limit=50"));
  EXPECT_EQ(r.out,
            "ID  NAME   USER   ACCOUNT    STATE    GPUS  TYPE  TIME  NODES(REASON)\n"
            "13  job13  alice  kaist-nlp  running  8     h100  1h5m  nccc-b03-n12\n"
            "12  job12  alice  kaist-nlp  pending  8     h100  -     (quota) start in 2h10m\n"
            "11  job11  alice  kaist-nlp  pending  8     h100  -     -\n");

  CliRun json_run = Run({"queue", "--all", "--json", "--account", "kaist nlp"});
  EXPECT_EQ(json_run.code, 0);
  EXPECT_EQ(json::parse(json_run.out), json::value(body));
  // Without --state, active jobs only (as squeue does); `--state all` asks for every state.
  EXPECT_EQ(server_.Lines().back(),
            "GET /v1/jobs?account=kaist%20nlp&state=pending,starting,running");
  CliRun every = Run({"queue", "--all", "--json", "--state", "all"});
  EXPECT_EQ(every.code, 0);
  EXPECT_EQ(server_.Lines().back(), "GET /v1/jobs");

  CliRun bad = Run({"queue", "--state", "sleeping"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("unknown state 'sleeping'"));
}

TEST_F(CliTest, ShowExplainsThePendingReasonInPlainWords) {
  api::Job j = MakeJob(43, api::JobState::kPending);
  j.spec.time_limit_s = 86400;
  j.reason = api::Reason{api::ReasonCode::kQuota,
                         "account kaist-nlp uses 64 of its 64 guaranteed h100 GPUs (limit 128)",
                         {},
                         *ParseTimestamp("2026-11-23T20:05:00Z")};
  server_.OnJson("GET /v1/jobs/43", 200, api::Encode(j));
  CliRun r = Run({"show", "43"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Job 43 (job43)\n"));
  EXPECT_THAT(r.out, HasSubstr("Reason:      Pending (quota): account kaist-nlp uses 64 of its 64 "
                               "guaranteed h100 GPUs (limit 128). Estimated start: in 2h10m "
                               "(2026-11-23 20:05 UTC).\n"));
  EXPECT_THAT(r.out, HasSubstr("Submitted:   10m ago (2026-11-23 17:45 UTC)\n"));
  EXPECT_THAT(r.out, HasSubstr("Time limit:  1d\n"));

  CliRun js = Run({"show", "43", "--json"});
  EXPECT_EQ(json::parse(js.out), api::Encode(j));

  CliRun missing = Run({"show", "44"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err, "gsched: no route GET /v1/jobs/44\n");
  EXPECT_EQ(Run({"show", "abc"}).code, 2);
}

TEST_F(CliTest, ShowRunningJobWithAttempts) {
  api::Job j = MakeJob(50, api::JobState::kRunning);
  j.spec.time_limit_s = 7200;
  j.start_time = TestNow() - Seconds(1800);
  j.attempt = 2;
  j.allocation = {{"n1", {0, 1}}};
  j.attempts = {{1,
                 {{"n9", {3}}},
                 TestNow() - Seconds(5000),
                 TestNow() - Seconds(4000),
                 api::JobState::kPreempted,
                 std::nullopt,
                 "preempted for job 77"},
                {2,
                 {{"n1", {0, 1}}},
                 TestNow() - Seconds(1800),
                 std::nullopt,
                 api::JobState::kRunning,
                 std::nullopt}};
  server_.OnJson("GET /v1/jobs/50", 200, api::Encode(j));
  CliRun r = Run({"show", "50"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Time left:   1h30m\n"));
  EXPECT_THAT(r.out, HasSubstr("Allocation:  n1 GPUs 0,1\n"));
  EXPECT_THAT(r.out, HasSubstr("Attempts:\n"));
  // Each attempt's message, in the worker's or the scheduler's words.
  EXPECT_THAT(r.out, HasSubstr("  1  preempted  2026-11-23 16:31 UTC  16m       -     n9     "
                               "preempted for job 77\n"));
  EXPECT_THAT(r.out, HasSubstr("  2  running    2026-11-23 17:25 UTC  30m       -     n1     -\n"));
}

TEST_F(CliTest, CancelHoldReleasePostPerIdAndReportFailures) {
  server_.On("POST /v1/jobs/1/cancel", 200, "{}");
  server_.On("POST /v1/jobs/3/cancel", 200, "{}");
  CliRun r = Run({"cancel", "1", "2", "3"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "cancelled job 1\ncancelled job 3\n");
  EXPECT_EQ(r.err, "gsched: no route POST /v1/jobs/2/cancel\n");
  EXPECT_THAT(server_.Lines(), ElementsAre("POST /v1/jobs/1/cancel", "POST /v1/jobs/2/cancel",
                                           "POST /v1/jobs/3/cancel"));
  server_.On("POST /v1/jobs/5/hold", 200, "{}");
  server_.On("POST /v1/jobs/5/release", 200, "");
  EXPECT_EQ(Run({"hold", "5"}).out, "held job 5\n");
  EXPECT_EQ(Run({"release", "5"}).out, "released job 5\n");
  EXPECT_EQ(Run({"cancel", "x"}).code, 2);
  EXPECT_EQ(Run({"cancel"}).code, 2);
}

// --- logs and watch ---------------------------------------------------------------------------

TEST_F(CliTest, LogsReadsFromOffsetAndFollowsUntilTheEnd) {
  // The server serves at most 128 KiB per answer: the CLI asks on until an answer is empty.
  server_.On("GET /v1/jobs/42/logs", 200, R"({"data": "epoch 1\n", "next_offset": 8})");
  server_.ThenOn("GET /v1/jobs/42/logs", 200, R"({"data": "epoch 2\n", "next_offset": 16})");
  server_.ThenOn("GET /v1/jobs/42/logs", 200, R"({"data": "", "next_offset": 16})");
  CliRun r = Run({"logs", "42", "--stderr", "--attempt", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "epoch 1\nepoch 2\n");
  EXPECT_THAT(server_.Lines(),
              ElementsAre("GET /v1/jobs/42/logs?offset=0&limit=1048576&stream=stderr&attempt=2",
                          "GET /v1/jobs/42/logs?offset=8&limit=1048576&stream=stderr&attempt=2",
                          "GET /v1/jobs/42/logs?offset=16&limit=1048576&stream=stderr&attempt=2"));

  // -f: the first answer has data, the second is empty and the job has ended.
  server_.On("GET /v1/jobs/42/logs", 200, R"({"data": "", "next_offset": 8})");
  server_.OnJson("GET /v1/jobs/42", 200, api::Encode(MakeJob(42, api::JobState::kCompleted)));
  CliRun f = Run({"logs", "-f", "42"});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(f.out, "");
  server_.On("GET /v1/jobs/42/logs", 200, R"({"data": "done\n", "next_offset": 13, "eof": true})");
  CliRun eof = Run({"logs", "-f", "42"});
  EXPECT_EQ(eof.out, "done\n");

  // -f on a job that has not started waits for it (the logs endpoint would say 409).
  server_.OnJson("GET /v1/jobs/44", 200, api::Encode(MakeJob(44, api::JobState::kPending)));
  server_.ThenOn("GET /v1/jobs/44", 200,
                 json::serialize(api::Encode(MakeJob(44, api::JobState::kCompleted))));
  server_.On("GET /v1/jobs/44/logs", 200, R"({"data": "hi\n", "next_offset": 3, "eof": true})");
  CliRun waited = Run({"logs", "-f", "44"});
  EXPECT_EQ(waited.code, 0) << waited.err;
  EXPECT_EQ(waited.out, "hi\n");
  auto lines = server_.Lines();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "GET /v1/jobs/44"), 2);  // pending, completed

  // A plain-text answer is the bytes themselves.
  server_.OnText("GET /v1/jobs/43/logs", "plain line\n");
  CliRun text = Run({"logs", "43"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out, "plain line\n");
}

TEST_F(CliTest, WatchPrintsEventsAndEndsWithTheJob) {
  // The scheduler's shapes: `job.state` {job, from, to, reason, node, attempt}, `node.state`
  // {node, from, to, reason}.
  server_.QueueEvent(
      R"({"seq": 7, "type": "job.state", "time": "2026-11-23T18:01:02.000Z",
          "data": {"job": 42, "user": "alice", "account": "a", "from": "starting",
                   "to": "running", "attempt": 1, "node": "n1"}})");
  server_.QueueEvent(
      R"({"seq": 8, "type": "node.state", "time": "2026-11-23T18:01:03.000Z",
          "data": {"node": "n2", "from": "up", "to": "draining", "reason": "xid 79"}})");
  server_.QueueEvent(R"({"seq": 9, "type": "job.state", "time": "2026-11-23T18:05:00.000Z",
                         "data": {"job": 42, "from": "running", "to": "completed", "node": "n1",
                                  "exit_code": 0}})");
  // Once the feed is open the CLI asks whether the job is still alive.
  server_.OnJson("GET /v1/jobs/42", 200, api::Encode(MakeJob(42, api::JobState::kRunning)));
  CliRun r = Run({"watch", "42", "--since", "6"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "18:01:02  job.state  job 42 running on n1\n"
            "18:01:03  node.state  node n2 draining (xid 79)\n"
            "18:05:00  job.state  job 42 completed on n1\n");
  EXPECT_THAT(
      server_.Lines(),
      ElementsAre("GET /v1/watch?topics=jobs,nodes,accounts&since=6&job=42", "GET /v1/jobs/42"));

  CliRun js = Run({"watch", "42", "--json"});
  EXPECT_EQ(js.code, 0) << js.err;
  std::istringstream lines(js.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(json::parse(line).at("type").is_string());
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST_F(CliTest, WatchReconnectsWithSinceAndSkipsRepeats) {
  std::string e7 = R"({"seq": 7, "type": "job.state", "time": "2026-11-23T18:01:02.000Z",
                       "data": {"job": 42, "to": "running"}})";
  std::string e8 = R"({"seq": 8, "type": "job.held", "time": "2026-11-23T18:02:00.000Z",
                       "data": {"job": 42, "reason": "by alice"}})";
  std::string e9 = R"({"seq": 9, "type": "job.state", "time": "2026-11-23T18:03:00.000Z",
                       "data": {"job": 42, "to": "failed"}})";
  server_.QueueConnection({e7, e8}, /*close=*/true);
  server_.QueueConnection({e8, e9}, /*close=*/false);
  server_.OnJson("GET /v1/jobs/42", 200, api::Encode(MakeJob(42, api::JobState::kRunning)));
  CliRun r = Run({"watch", "42"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "18:01:02  job.state  job 42 running\n"
            "18:02:00  job.held  job 42 held: by alice\n"
            "18:03:00  job.state  job 42 failed\n");
  EXPECT_THAT(server_.Lines(),
              ElementsAre("GET /v1/watch?topics=jobs,nodes,accounts&job=42", "GET /v1/jobs/42",
                          "GET /v1/watch?topics=jobs,nodes,accounts&since=8&job=42"));
}

TEST_F(CliTest, WatchReconnectsAfterAQuietSpell) {
  env_.watch_idle_timeout = Duration(200);
  server_.QueueConnection({R"({"seq": 3, "type": "job.state", "time": "2026-11-23T18:00:00Z",
                              "data": {"job": 5, "to": "running"}})"},
                          /*close=*/false);
  server_.QueueConnection({R"({"seq": 4, "type": "job.state", "time": "2026-11-23T18:10:00Z",
                              "data": {"job": 5, "to": "timeout"}})"},
                          /*close=*/false);
  server_.OnJson("GET /v1/jobs/5", 200, api::Encode(MakeJob(5, api::JobState::kRunning)));
  CliRun r = Run({"watch", "5", "--topics", "jobs"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "18:00:00  job.state  job 5 running\n18:10:00  job.state  job 5 timeout\n");
  EXPECT_THAT(server_.Lines(), ElementsAre("GET /v1/watch?topics=jobs&job=5", "GET /v1/jobs/5",
                                           "GET /v1/watch?topics=jobs&since=3&job=5"));
}

TEST_F(CliTest, WatchShowsAResyncAndGoesOnFromIt) {
  // The server pruned what was asked for: the resync's seq is the position to resume after.
  server_.QueueConnection({R"({"seq": 20, "type": "resync", "time": "2026-11-23T18:00:00Z",
           "data": {"resumes_after": 20, "reason": "events 6..20 were pruned from the log"}})",
                           R"({"seq": 21, "type": "job.state", "time": "2026-11-23T18:00:01Z",
           "data": {"job": 5, "to": "completed"}})"},
                          /*close=*/false);
  server_.OnJson("GET /v1/jobs/5", 200, api::Encode(MakeJob(5, api::JobState::kRunning)));
  CliRun r = Run({"watch", "5", "--since", "5"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "18:00:00  resync  missed events are gone: events 6..20 were pruned from the log; "
            "resuming after 20\n"
            "18:00:01  job.state  job 5 completed\n");
}

TEST_F(CliTest, WatchOfAJobThatEndedOrIsUnknownDoesNotWaitForever) {
  // Ended before the feed opened: its end is not coming; a short quiet spell ends the watch.
  server_.OnJson("GET /v1/jobs/42", 200, api::Encode(MakeJob(42, api::JobState::kCompleted)));
  CliRun ended = Run({"watch", "42", "--json"});
  EXPECT_EQ(ended.code, 0) << ended.err;
  EXPECT_EQ(ended.out, "");
  EXPECT_EQ(ended.err, "gsched: job 42 has ended (completed); no more events will come\n");
  // Unknown, or not the token's to see: the server's answer, not a silent feed.
  server_.On("GET /v1/jobs/43", 404, R"({"error": {"code": "not_found", "message": "no job 43"}})");
  CliRun unknown = Run({"watch", "43"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_EQ(unknown.err, "gsched: no job 43\n");
}

TEST_F(CliTest, WatchRefusedIsTheServerSayingNo) {
  server_.RefuseWatch(403, R"({"error": {"code": "permission_denied", "message": "not yours"}})");
  CliRun r = Run({"watch", "42"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "gsched: not yours\n");
  EXPECT_EQ(Run({"watch", "x"}).code, 2);
}

// --- nodes, accounts, quota, usage, tokens, whoami --------------------------------------------

TEST_F(CliTest, NodesDrainResume) {
  api::Node n;
  n.name = "nccc-b03-n12";
  n.site = "nccc";
  n.block = "b03";
  n.gpu_type = "h100";
  n.gpu_count = 8;
  n.free_gpus = 3;
  n.state = api::NodeState::kDraining;
  n.state_reason = "admin: firmware";
  n.gpus = {{0, "GPU-0", "h100", api::GpuHealth::kUnhealthy, std::nullopt}};
  n.last_heartbeat = TestNow() - Seconds(5);
  json::object body;
  body["nodes"] = json::array{api::Encode(n)};
  server_.OnJson("GET /v1/nodes", 200, body);
  CliRun r = Run({"nodes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME          STATE     TYPE  FREE/GPUS          SITE  BLOCK  HEARTBEAT  REASON\n"
            "nccc-b03-n12  draining  h100  3/8 (1 unhealthy)  nccc  b03    5s ago     admin: "
            "firmware\n");
  EXPECT_EQ(json::parse(Run({"nodes", "--json"}).out), json::value(body));

  server_.On("POST /v1/nodes/n1/drain", 200, "{}");
  server_.On("POST /v1/nodes/n1/resume", 200, "{}");
  CliRun d = Run({"drain", "n1", "--reason", "bad fan"});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(json::parse(server_.Requests().back().body), json::parse(R"({"reason": "bad fan"})"));
  EXPECT_EQ(Run({"resume", "n1"}).code, 0);
  EXPECT_EQ(server_.Lines().back(), "POST /v1/nodes/n1/resume");
  EXPECT_EQ(Run({"drain", "n1"}).code, 2);  // --reason is required.
}

TEST_F(CliTest, AccountsTree) {
  server_.On("GET /v1/accounts", 200, R"({"accounts": [
      {"name": "root", "parent": "", "shares": 1, "quotas": {}},
      {"name": "kaist", "parent": "root", "shares": 20,
       "quotas": {"h100": {"guaranteed": 128, "limit": 512}}},
      {"name": "kaist-nlp", "parent": "kaist", "shares": 10,
       "quotas": {"h100": {"guaranteed": 64, "limit": 128}, "b200": {"guaranteed": 0, "limit": 8}},
       "running_gpus": {"h100": 64}, "fair_share": 0.42, "usage_gpu_hours": 1234.5}]})");
  CliRun r = Run({"accounts"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "ACCOUNT        SHARES  GPU TYPE  IN USE  GUARANTEED  LIMIT  FAIR SHARE  USAGE (GPU-H)\n"
      "root           1       -         -       -           -      -           -\n"
      "  kaist        20      h100      -       128         512    -           -\n"
      "    kaist-nlp  10      b200      -       0           8      0.42        1234.5\n"
      "                       h100      64      64          128\n");
}

TEST_F(CliTest, AccountsApplyPutsParentsFirst) {
  std::string path = WriteFile("accounts.yaml", R"(accounts:
  - name: kaist-nlp
    parent: kaist
    quotas:
      h100: {guaranteed: 64, limit: 128}
  - name: kaist
    shares: 20
    quotas:
      h100: {guaranteed: 128}
)");
  server_.On("PUT /v1/accounts/kaist", 200, "{}");
  server_.On("PUT /v1/accounts/kaist-nlp", 200, "{}");
  CliRun r = Run({"accounts", "apply", "-f", path});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(server_.Lines(), ElementsAre("PUT /v1/accounts/kaist", "PUT /v1/accounts/kaist-nlp"));
  auto kaist = api::DecodeAccount(json::parse(server_.Requests()[0].body));
  ASSERT_TRUE(kaist.ok()) << kaist.status().ToString();
  EXPECT_EQ(kaist->shares, 20);
  EXPECT_EQ(kaist->quotas.at("h100").guaranteed, 128);
  EXPECT_EQ(kaist->quotas.at("h100").limit, 10'000'000);  // No limit in YAML: no cap of its own.

  CliRun dry = Run({"accounts", "apply", "-f", path, "--dry-run"});
  EXPECT_EQ(dry.code, 0);
  EXPECT_THAT(dry.out, HasSubstr("PUT /v1/accounts/kaist {"));
  EXPECT_EQ(server_.Requests().size(), 2u);

  std::string bad = WriteFile("bad.yaml", "accounts:\n  - name: x\n    parent: nowhere\n");
  CliRun b = Run({"accounts", "apply", "-f", bad});
  EXPECT_EQ(b.code, 2);
  EXPECT_THAT(b.err, HasSubstr("nowhere"));
}

TEST_F(CliTest, QuotaSetReadsModifiesAndPutsTheAccount) {
  server_.On("GET /v1/accounts", 200, R"({"accounts": [
      {"name": "kaist-nlp", "parent": "kaist", "shares": 10,
       "quotas": {"b200": {"guaranteed": 0, "limit": 8}}, "fair_share": 0.5}]})");
  server_.On("PUT /v1/accounts/kaist-nlp", 200, "{}");
  CliRun r = Run(
      {"quota", "set", "kaist-nlp", "--gpu-type", "h100", "--guaranteed", "64", "--limit", "128"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "kaist-nlp h100: guaranteed 64, limit 128\n");
  auto put = api::DecodeAccount(json::parse(server_.Requests().back().body));
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->parent, "kaist");
  EXPECT_EQ(put->quotas.at("h100"), (api::Quota{64, 128}));
  EXPECT_EQ(put->quotas.at("b200"), (api::Quota{0, 8}));

  CliRun bad = Run(
      {"quota", "set", "kaist-nlp", "--gpu-type", "h100", "--guaranteed", "64", "--limit", "10"});
  EXPECT_EQ(bad.code, 2);
  CliRun none = Run({"quota", "set", "nope", "--gpu-type", "h100", "--limit", "1"});
  EXPECT_EQ(none.code, 1);
  EXPECT_EQ(none.err, "gsched: no account 'nope'\n");
}

TEST_F(CliTest, UsageSendsTheWindow) {
  server_.On("GET /v1/usage", 200, R"({"usage": [
      {"account": "kaist-nlp", "user": "alice", "gpu_type": "h100", "gpu_hours": 1520.25}]})");
  CliRun r = Run({"usage", "--account", "kaist-nlp", "--since", "7d"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(server_.Lines().back(),
            "GET /v1/usage?account=kaist-nlp&since=2026-11-16T17%3A55%3A00.000Z");
  EXPECT_EQ(r.out,
            "ACCOUNT    USER   GPU TYPE  GPU-HOURS\n"
            "kaist-nlp  alice  h100      1520.2\n");
  EXPECT_EQ(Run({"usage", "--since", "yesterday"}).code, 2);
}

TEST_F(CliTest, TokensAndWhoAmI) {
  server_.On("POST /v1/tokens", 201, R"({"id": "tok_1", "token": "secret"})");
  server_.On("DELETE /v1/tokens/tok_1", 200, "{}");
  CliRun c = Run({"token", "create", "--user", "bob", "--role", "coordinator", "--account", "a",
                  "--account", "b", "--expires", "7d"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, "secret\n");
  auto req = api::DecodeTokenRequest(json::parse(server_.Requests().back().body));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->user, "bob");
  EXPECT_EQ(req->role, api::Role::kCoordinator);
  EXPECT_THAT(req->accounts, ElementsAre("a", "b"));
  EXPECT_EQ(req->expires_in_s, 7 * 86400);
  EXPECT_EQ(Run({"token", "create", "--user", "bob", "--role", "king"}).code, 2);
  // Worker tokens name their nodes: repeatable and comma-separated; required, checked before
  // asking the server.
  CliRun wt = Run({"token", "create", "--user", "nvl003", "--role", "worker", "--nodes",
                   "nacc-nvl003-*,n1", "--nodes", "n2"});
  EXPECT_EQ(wt.code, 0) << wt.err;
  auto wreq = api::DecodeTokenRequest(json::parse(server_.Requests().back().body));
  ASSERT_TRUE(wreq.ok());
  EXPECT_THAT(wreq->nodes, ElementsAre("nacc-nvl003-*", "n1", "n2"));
  size_t asked = server_.Requests().size();
  CliRun no_nodes = Run({"token", "create", "--user", "nvl003", "--role", "worker"});
  EXPECT_EQ(no_nodes.code, 2);
  EXPECT_NE(no_nodes.err.find("nodes"), std::string::npos) << no_nodes.err;
  EXPECT_EQ(Run({"token", "create", "--user", "x", "--role", "worker", "--nodes", "a*b"}).code, 2);
  EXPECT_EQ(server_.Requests().size(), asked);
  CliRun rv = Run({"token", "revoke", "tok_1"});
  EXPECT_EQ(rv.code, 0) << rv.err;
  EXPECT_EQ(server_.Lines().back(), "DELETE /v1/tokens/tok_1");

  WhoAmIIsAlice();
  CliRun w = Run({"whoami"});
  EXPECT_EQ(w.code, 0) << w.err;
  EXPECT_THAT(w.out, HasSubstr("alice (user)\naccounts: kaist-nlp\ntoken:    tok_8f3a2c, expires "
                               "in 30d (2026-12-23 18:00 UTC)\n"));
  EXPECT_EQ(json::parse(Run({"whoami", "--json"}).out).at("user").as_string(), "alice");
}

TEST_F(CliTest, HelpCompletionAndUsageErrors) {
  CliRun help = Run({"submit", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("--gpu-type"));
  EXPECT_THAT(help.out, HasSubstr("Examples:"));
  CliRun comp = Run({"completion", "bash"});
  EXPECT_EQ(comp.code, 0);
  EXPECT_THAT(comp.out, HasSubstr("complete -F _gsched gsched"));
  EXPECT_THAT(comp.out, HasSubstr("\" submit\") opts=\"--help -h"));
  EXPECT_THAT(comp.out, HasSubstr("--after-ok"));
  EXPECT_THAT(comp.out, HasSubstr("\" accounts apply\")"));
  EXPECT_EQ(Run({}).code, 2);
  EXPECT_EQ(Run({"frobnicate"}).code, 2);
  EXPECT_EQ(Run({"queue", "--", "x"}).code, 2);
}

// --- configuration precedence -------------------------------------------------------------------

TEST_F(CliTest, FlagsBeatEnvironmentBeatsConfigFile) {
  WhoAmIIsAlice();
  FakeServer file_server;
  file_server.On("GET /v1/whoami", 200,
                 R"({"user": "carol", "role": "admin", "accounts": [], "token_id": "t",
                     "expires": "2026-12-23T18:00:00.000Z"})");
  WriteFile(".config/gsched/token", "tok-file\n");
  WriteFile(".config/gsched/config.yaml",
            "server: " + file_server.url() + "\ntoken_file: token\npartitions:\n  gpu: [h100]\n");
  env_.vars.erase("GSCHED_SERVER");
  env_.vars.erase("GSCHED_TOKEN");

  // Config file only.
  CliRun a = Run({"whoami"});
  EXPECT_EQ(a.code, 0) << a.err;
  EXPECT_THAT(a.out, HasSubstr("carol"));
  EXPECT_EQ(file_server.Requests().back().Header("authorization"), "Bearer tok-file");

  // The environment beats the file.
  env_.vars["GSCHED_SERVER"] = server_.url();
  env_.vars["GSCHED_TOKEN"] = "tok-env";
  CliRun b = Run({"whoami"});
  EXPECT_THAT(b.out, HasSubstr("alice"));
  EXPECT_EQ(server_.Requests().back().Header("authorization"), "Bearer tok-env");

  // Flags beat the environment.
  CliRun c = Run({"--server", file_server.url(), "--token", "tok-flag", "whoami"});
  EXPECT_THAT(c.out, HasSubstr("carol"));
  EXPECT_EQ(file_server.Requests().back().Header("authorization"), "Bearer tok-flag");
  // Global flags may also follow the subcommand.
  CliRun d = Run({"whoami", "--token", "tok-late"});
  EXPECT_EQ(server_.Requests().back().Header("authorization"), "Bearer tok-late");

  // GSCHED_TOKEN_FILE when GSCHED_TOKEN is not set.
  env_.vars.erase("GSCHED_TOKEN");
  env_.vars["GSCHED_TOKEN_FILE"] = WriteFile("other.token", "tok-envfile");
  Run({"whoami"});
  EXPECT_EQ(server_.Requests().back().Header("authorization"), "Bearer tok-envfile");

  // The partitions of the file reach #SBATCH --partition.
  std::string script = WriteFile("p.sh", "#!/bin/sh\n#SBATCH -p gpu\ntrue\n");
  CliRun e = Run({"submit", "--dry-run", "--image", "/i", script});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(json::parse(e.out).at("gpu_type"), json::value("h100"));  // One type is a string.
}

TEST_F(CliTest, XdgConfigHomeAndBadConfigFiles) {
  TempDir xdg;
  env_.vars["XDG_CONFIG_HOME"] = xdg.path();
  std::filesystem::create_directories(xdg.path() + "/gsched");
  std::ofstream(xdg.path() + "/gsched/config.yaml") << "server: http://x\nsevrer: typo\n";
  CliRun r = Run({"whoami"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("sevrer: unknown key; did you mean 'server'?"));
  EXPECT_EQ(Run({"--config", xdg.path() + "/missing.yaml", "whoami"}).code, 2);
  std::ofstream(xdg.path() + "/gsched/config.yaml") << "token_file: /nonexistent/token\n";
  env_.vars.erase("GSCHED_TOKEN");  // Otherwise the environment's token wins over the file.
  CliRun t = Run({"whoami"});
  EXPECT_EQ(t.code, 2);
  EXPECT_THAT(t.err, HasSubstr("cannot read token file"));
}

}  // namespace
}  // namespace gsched::client

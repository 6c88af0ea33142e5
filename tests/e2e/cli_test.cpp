// Every `gsched` command end to end: the real CLI binary against a live scheduler and a live
// worker (system_fixture.h), with its `--json` output parsed and its exit codes checked:
// 0 done, 1 the server said no, 2 usage error, 3 server unreachable. Errors are one line.
//
// Jobs that must stay running or pending while a command looks at them are held up by a
// "blocker" that takes all eight GPUs of the node and waits for `Go()`; nothing waits for time.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/system_fixture.h"

namespace gsched::testing {
namespace {

namespace json = boost::json;

// Whether `text` is exactly one line ending in a newline.
bool OneLine(const std::string& text) {
  return !text.empty() && text.back() == '\n' && std::count(text.begin(), text.end(), '\n') == 1;
}

std::set<uint64_t> Ids(const json::value& list) {
  std::set<uint64_t> ids;
  for (const auto& j : list.at("jobs").as_array())
    ids.insert(j.at("id").to_number<uint64_t>());
  return ids;
}

const json::object* Find(const json::array& rows, std::string_view key, std::string_view value) {
  for (const auto& r : rows) {
    if (r.as_object().at(key).as_string() == value)
      return &r.as_object();
  }
  return nullptr;
}

class CliTest : public SystemTest {
 protected:
  void SetUp() override {
    SystemTest::SetUp();
    bob_ = s_.Token("bob", "user", {"proj-b"});
    admin_ = s_.admin_token();
  }

  // An 8-GPU job of alice's that runs until `Go()` exists: the node is full while it runs.
  uint64_t Blocker() {
    uint64_t id = Submit(R"({"image": "/", "gpus_per_node": 8, "gpu_type": "h100",
                             "time_limit_s": 300, "command": ["sh", "-c", ")" +
                         WaitForGoCommand() + R"("]})");
    EXPECT_TRUE(WaitFor([&] { return State(id) == "running"; })) << State(id);
    return id;
  }
  // A one-GPU job that cannot start while the blocker runs.
  uint64_t PendingJob(const std::string& token) {
    return Submit(R"({"image": "/", "gpus_per_node": 1, "gpu_type": "h100", "time_limit_s": 60,
                      "command": ["true"]})",
                  token);
  }
  std::string Script(const std::string& name, const std::string& text) {
    std::string path = s_.dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string bob_;
  std::string admin_;
};

// --- submit ---------------------------------------------------------------------------------

TEST_F(CliTest, SubmitWithFlagsSendsEveryOptionAndAnswersTheIdAsJson) {
  auto r = Cli({"submit",  "--json", "--gpus",  "2",      "--gpu-type",
                "h100",    "--time", "90m",     "--name", "flags",
                "--image", "/",      "--class", "high",   "-e",
                "FOO=bar", "--",     "sh",      "-c",     "echo $FOO on $CUDA_VISIBLE_DEVICES"});
  ASSERT_EQ(r.code, 0) << r.Text();
  EXPECT_EQ(r.err, "");
  uint64_t id = r.Json().at("id").to_number<uint64_t>();
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << State(id);
  json::value job = Job(id);
  const json::object& spec = job.at("spec").as_object();
  EXPECT_EQ(spec.at("name").as_string(), "flags");
  EXPECT_EQ(spec.at("gpus_per_node").as_int64(), 2);
  EXPECT_EQ(spec.at("gpu_type"), "h100");  // One type is sent as a string.
  EXPECT_EQ(spec.at("time_limit_s").as_int64(), 90 * 60);
  EXPECT_EQ(spec.at("priority_class").as_string(), "high");
  EXPECT_EQ(spec.at("env").at("FOO").as_string(), "bar");
  EXPECT_EQ(job.at("user").as_string(), "alice");
  EXPECT_EQ(spec.at("account").as_string(), "proj-a");  // Alice's only account.
  auto logs = Cli({"logs", std::to_string(id)});
  EXPECT_EQ(logs.code, 0) << logs.Text();
  EXPECT_EQ(logs.out, "bar on 0,1\n");

  // Without --json: one line naming the job.
  auto plain = Cli({"submit", "--image", "/", "--time", "1m", "--", "true"});
  ASSERT_EQ(plain.code, 0) << plain.Text();
  EXPECT_TRUE(plain.out.starts_with("Submitted job ")) << plain.out;
  EXPECT_TRUE(OneLine(plain.out)) << plain.out;
}

TEST_F(CliTest, SubmitAnArrayAndADependencyFromFlags) {
  auto array = Cli({"submit", "--json", "--array", "0-3%2", "--image", "/", "--time", "1m",
                    "--name", "sweep", "--", "sh", "-c", "echo $GSCHED_ARRAY_INDEX"});
  ASSERT_EQ(array.code, 0) << array.Text();
  json::value answer = array.Json();
  const json::array& ids = answer.at("ids").as_array();
  ASSERT_EQ(ids.size(), 4u);
  for (size_t i = 0; i < ids.size(); ++i) {
    json::value job = Job(ids[i].to_number<uint64_t>());
    EXPECT_EQ(job.at("array_job_id"), ids[0]);
    EXPECT_EQ(job.at("array_index").as_int64(), static_cast<int64_t>(i));
  }
  auto parsable = Cli({"submit", "--parsable", "--array", "0-1", "--image", "/", "--", "true"});
  ASSERT_EQ(parsable.code, 0) << parsable.Text();
  EXPECT_EQ(std::count(parsable.out.begin(), parsable.out.end(), '\n'), 2) << parsable.out;

  // A job after one that cannot end yet waits for it, and says so.
  uint64_t blocker = Blocker();
  auto after = Cli({"submit", "--parsable", "--after-ok", std::to_string(blocker), "--image", "/",
                    "--", "true"});
  ASSERT_EQ(after.code, 0) << after.Text();
  uint64_t id = std::stoull(after.out);
  json::value job = Job(id);
  EXPECT_EQ(job.at("spec").at("depends_on").at(0).at("job").to_number<uint64_t>(), blocker);
  EXPECT_EQ(job.at("spec").at("depends_on").at(0).at("type").as_string(), "afterok");
  ASSERT_TRUE(WaitFor([&] {
    json::value j = Job(id);
    return j.at("reason").is_object() && j.at("reason").at("code").as_string() == "dependency";
  })) << json::serialize(Job(id));
}

TEST_F(CliTest, SubmitASlurmScriptDryRunPrintsTheSpecWithoutTheServer) {
  std::string script = Script("train.sh",
                              "#!/bin/bash\n"
                              "#SBATCH -J train\n"
                              "#SBATCH --gres=gpu:h100:2\n"
                              "#SBATCH -t 1-00:00\n"
                              "#SBATCH -A proj-a\n"
                              "#SBATCH --output=train.%j.log\n"
                              "#SBATCH --mail-user=alice@example.org\n"
                              "echo \"training on $CUDA_VISIBLE_DEVICES, args $1\"\n");
  // Nothing listens on port 1: a dry run never asks.
  auto dry = CliRaw({"--server", "http://127.0.0.1:1", "submit", "--dry-run", "--image", "/",
                     script, "--", "--epochs=3"});
  ASSERT_EQ(dry.code, 0) << dry.Text();
  json::value spec = dry.Json();
  EXPECT_EQ(spec.at("name").as_string(), "train");
  EXPECT_EQ(spec.at("gpus_per_node").as_int64(), 2);
  EXPECT_EQ(spec.at("gpu_type"), "h100");
  EXPECT_EQ(spec.at("time_limit_s").as_int64(), 24 * 3600);  // D-HH:MM = 1 day.
  EXPECT_EQ(spec.at("account").as_string(), "proj-a");
  // The script is shipped: [shell, -c, text, name, args...].
  const json::array& command = spec.at("command").as_array();
  ASSERT_EQ(command.size(), 5u) << json::serialize(command);
  EXPECT_EQ(command[0].as_string(), "/bin/bash");
  EXPECT_EQ(command[1].as_string(), "-c");
  EXPECT_TRUE(command[2].as_string().starts_with("#!/bin/bash\n"));
  EXPECT_EQ(command[3].as_string(), "train.sh");
  EXPECT_EQ(command[4].as_string(), "--epochs=3");
  // --output and the unknown directive are warned about, one line each, with their line numbers.
  EXPECT_NE(dry.err.find("gsched: warning: " + script + ":6: #SBATCH --output"), std::string::npos)
      << dry.err;
  EXPECT_NE(dry.err.find("gsched: warning: " + script + ":7: #SBATCH --mail-user"),
            std::string::npos)
      << dry.err;
  EXPECT_EQ(std::count(dry.err.begin(), dry.err.end(), '\n'), 2) << dry.err;

  // The same script for real runs with what the dry run showed.
  auto real = Cli({"submit", "--parsable", "--image", "/", script, "--", "--epochs=3"});
  ASSERT_EQ(real.code, 0) << real.Text();
  uint64_t id = std::stoull(real.out);
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << State(id);
  EXPECT_EQ(Job(id).at("spec").at("command"), spec.at("command"));
  EXPECT_EQ(Logs(id), "training on 0,1, args --epochs=3\n");

  // Flags after the script are gsched's; the script's own go after `--`, and the error says so.
  auto unknown = Cli({"submit", "--image", "/", script, "--epochs=3"});
  EXPECT_EQ(unknown.code, 2) << unknown.Text();
  EXPECT_TRUE(OneLine(unknown.err)) << unknown.err;
  EXPECT_NE(unknown.err.find("options for the job script go after '--'"), std::string::npos)
      << unknown.err;

  // A bad directive is a usage error naming its line.
  std::string bad = Script("bad.sh", "#!/bin/sh\n#SBATCH --time=soon\necho\n");
  auto refused = Cli({"submit", "--image", "/", bad});
  EXPECT_EQ(refused.code, 2) << refused.Text();
  EXPECT_TRUE(OneLine(refused.err)) << refused.err;
  EXPECT_TRUE(refused.err.starts_with("gsched: " + bad + ":2: --time: invalid duration 'soon'"))
      << refused.err;
  EXPECT_EQ(refused.out, "");
}

// --- queue and show -------------------------------------------------------------------------

TEST_F(CliTest, QueueListsOwnJobsByDefaultEveryoneWithAllAndFilters) {
  uint64_t blocker = Blocker();
  uint64_t mine = PendingJob(alice_);
  uint64_t bobs = PendingJob(bob_);

  auto own = Cli({"queue", "--json"});
  ASSERT_EQ(own.code, 0) << own.Text();
  EXPECT_EQ(Ids(own.Json()), (std::set<uint64_t>{blocker, mine}));
  auto all = CliAs(admin_, {"queue", "--all", "--json"});
  ASSERT_EQ(all.code, 0) << all.Text();
  EXPECT_EQ(Ids(all.Json()), (std::set<uint64_t>{blocker, mine, bobs}));
  auto by_user = CliAs(admin_, {"queue", "--user", "bob", "--json"});
  ASSERT_EQ(by_user.code, 0) << by_user.Text();
  EXPECT_EQ(Ids(by_user.Json()), std::set<uint64_t>{bobs});
  auto by_account = CliAs(admin_, {"queue", "--all", "--account", "proj-b", "--json"});
  ASSERT_EQ(by_account.code, 0) << by_account.Text();
  EXPECT_EQ(Ids(by_account.Json()), std::set<uint64_t>{bobs});
  auto pending = CliAs(admin_, {"queue", "--all", "--state", "pending", "--json"});
  ASSERT_EQ(pending.code, 0) << pending.Text();
  EXPECT_EQ(Ids(pending.Json()), (std::set<uint64_t>{mine, bobs}));
  auto limited = CliAs(admin_, {"queue", "--all", "--limit", "1", "--json"});
  ASSERT_EQ(limited.code, 0) << limited.Text();
  EXPECT_EQ(limited.Json().at("jobs").as_array().size(), 1u);
  // A user asking for everyone still sees only what a user may see: her own jobs.
  auto alice_all = Cli({"queue", "--all", "--json"});
  ASSERT_EQ(alice_all.code, 0) << alice_all.Text();
  EXPECT_EQ(Ids(alice_all.Json()), (std::set<uint64_t>{blocker, mine}));

  // The table: running first, then pending with its reason, like squeue.
  auto table = CliAs(admin_, {"queue", "--all"});
  ASSERT_EQ(table.code, 0) << table.Text();
  std::istringstream lines(table.out);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);)
    rows.push_back(line);
  ASSERT_EQ(rows.size(), 4u) << table.out;
  EXPECT_TRUE(rows[0].starts_with("ID")) << table.out;
  EXPECT_TRUE(rows[1].starts_with(std::to_string(blocker) + " ")) << table.out;
  EXPECT_NE(rows[1].find("running"), std::string::npos) << table.out;
  EXPECT_NE(rows[1].find("node-1"), std::string::npos) << table.out;
  EXPECT_NE(rows[2].find("pending"), std::string::npos) << table.out;
  EXPECT_NE(rows[3].find("pending"), std::string::npos) << table.out;

  auto bad = Cli({"queue", "--state", "sleeping"});
  EXPECT_EQ(bad.code, 2) << bad.Text();
  EXPECT_TRUE(OneLine(bad.err)) << bad.err;
  EXPECT_NE(bad.err.find("sleeping"), std::string::npos) << bad.err;
}

TEST_F(CliTest, ShowGivesThePendingReasonInPlainWordsAndTheEstimatedStart) {
  uint64_t blocker = Blocker();
  // The whole node again: it can only start when the blocker ends, at the latest at its
  // time limit (300 s), which is what the estimate is based on.
  uint64_t waiting = Submit(R"({"image": "/", "gpus_per_node": 8, "gpu_type": "h100",
                                "time_limit_s": 60, "command": ["true"]})");
  json::value shown;
  ASSERT_TRUE(WaitFor([&] {
    auto r = Cli({"show", std::to_string(waiting), "--json"});
    if (r.code != 0)
      return false;
    shown = r.Json();
    return shown.at("reason").is_object() &&
           shown.at("reason").as_object().contains("estimated_start");
  })) << json::serialize(shown);
  EXPECT_EQ(shown.at("id").to_number<uint64_t>(), waiting);
  EXPECT_EQ(shown.at("state").as_string(), "pending");
  const json::object& reason = shown.at("reason").as_object();
  std::string code(reason.at("code").as_string());
  EXPECT_TRUE(code == "resources" || code == "reservation") << code;
  EXPECT_FALSE(reason.at("message").as_string().empty());

  auto text = Cli({"show", std::to_string(waiting)});
  ASSERT_EQ(text.code, 0) << text.Text();
  EXPECT_TRUE(text.out.starts_with("Job " + std::to_string(waiting) + "\n")) << text.out;
  EXPECT_NE(text.out.find("State:       pending"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Reason:      Pending (" + code +
                          "): " + std::string(reason.at("message").as_string())),
            std::string::npos)
      << text.out;
  // 300 s from the blocker's start, minus the few seconds that have passed.
  EXPECT_NE(text.out.find("Estimated start: in 4m"), std::string::npos) << text.out;

  // The queue gives the reason's code and the estimate in the job's row.
  auto queue = Cli({"queue"});
  ASSERT_EQ(queue.code, 0) << queue.Text();
  EXPECT_NE(queue.out.find("(" + code + ") start in 4m\n"), std::string::npos) << queue.out;

  // A running job: where it runs, and no reason.
  auto running = Cli({"show", std::to_string(blocker)});
  ASSERT_EQ(running.code, 0) << running.Text();
  EXPECT_NE(running.out.find("State:       running"), std::string::npos) << running.out;
  EXPECT_NE(running.out.find("Allocation:  node-1 GPUs 0,1,2,3,4,5,6,7"), std::string::npos)
      << running.out;
  EXPECT_EQ(running.out.find("Reason:"), std::string::npos) << running.out;

  auto missing = Cli({"show", "999999"});
  EXPECT_EQ(missing.code, 1) << missing.Text();
  EXPECT_EQ(missing.err, "gsched: no job 999999\n");
  // Bob may not see alice's job: the same answer as for a job that does not exist.
  auto hidden = CliAs(bob_, {"show", std::to_string(waiting)});
  EXPECT_EQ(hidden.code, 1) << hidden.Text();
  EXPECT_EQ(hidden.err, "gsched: no job " + std::to_string(waiting) + "\n");
  auto bad = Cli({"show", "latest"});
  EXPECT_EQ(bad.code, 2) << bad.Text();
  EXPECT_TRUE(OneLine(bad.err)) << bad.err;
}

// --- cancel, hold, release ------------------------------------------------------------------

TEST_F(CliTest, CancelHoldAndReleaseTakeSeveralIdsAndWholeArrays) {
  Blocker();
  uint64_t single = PendingJob(alice_);
  auto array = Cli({"submit", "--json", "--array", "0-2", "--gpus", "1", "--image", "/", "--time",
                    "1m", "--", "true"});
  ASSERT_EQ(array.code, 0) << array.Text();
  std::vector<uint64_t> tasks;
  json::value answer = array.Json();
  for (const auto& id : answer.at("ids").as_array())
    tasks.push_back(id.to_number<uint64_t>());
  ASSERT_EQ(tasks.size(), 3u);
  std::string s = std::to_string(single), a = std::to_string(tasks[0]);
  auto held = [&](uint64_t id) { return Job(id).at("held").as_bool(); };

  auto hold = Cli({"hold", s, a});
  ASSERT_EQ(hold.code, 0) << hold.Text();
  EXPECT_EQ(hold.out, "held job " + s + "\nheld job " + a + "\n");
  EXPECT_TRUE(held(single));
  for (uint64_t t : tasks)
    EXPECT_TRUE(held(t)) << "task " << t << " of the array";
  // The next scheduling pass gives them the reason `held`.
  auto reason = [&](uint64_t id) {
    json::value j = Job(id);
    return j.at("reason").is_object() ? std::string(j.at("reason").at("code").as_string()) : "";
  };
  EXPECT_TRUE(WaitFor([&] {
    return reason(single) == "held" &&
           std::all_of(tasks.begin(), tasks.end(), [&](uint64_t t) { return reason(t) == "held"; });
  }));
  auto queue = Cli({"queue", "--state", "pending", "--json"});
  ASSERT_EQ(queue.code, 0) << queue.Text();
  json::value pending = queue.Json();
  for (const auto& j : pending.at("jobs").as_array()) {
    EXPECT_TRUE(j.at("held").as_bool()) << json::serialize(j);
    EXPECT_EQ(j.at("reason").at("code").as_string(), "held") << json::serialize(j);
  }

  auto release = Cli({"release", a});
  ASSERT_EQ(release.code, 0) << release.Text();
  EXPECT_EQ(release.out, "released job " + a + "\n");
  for (uint64_t t : tasks)
    EXPECT_FALSE(held(t)) << "task " << t << " of the array";
  EXPECT_TRUE(held(single));

  auto cancel = Cli({"cancel", s, a});
  ASSERT_EQ(cancel.code, 0) << cancel.Text();
  EXPECT_EQ(cancel.out, "cancelled job " + s + "\ncancelled job " + a + "\n");
  EXPECT_EQ(State(single), "cancelled");
  for (uint64_t t : tasks)
    EXPECT_EQ(State(t), "cancelled") << "task " << t << " of the array";

  // The server says no: ended, unknown, another user's. One line each; exit 1.
  auto again = Cli({"cancel", s});
  EXPECT_EQ(again.code, 1) << again.Text();
  EXPECT_EQ(again.err, "gsched: job " + s + " has already ended\n");
  auto unknown = Cli({"hold", "999999"});
  EXPECT_EQ(unknown.code, 1) << unknown.Text();
  EXPECT_EQ(unknown.err, "gsched: no job 999999\n");
  uint64_t bobs = PendingJob(bob_);
  auto others = Cli({"cancel", std::to_string(bobs)});
  EXPECT_EQ(others.code, 1) << others.Text();
  EXPECT_TRUE(OneLine(others.err)) << others.err;
  EXPECT_EQ(State(bobs), "pending");
  // One bad id among good ones: the good ones are done, the exit code says not all were.
  uint64_t another = PendingJob(alice_);
  auto mixed = Cli({"cancel", "999999", std::to_string(another)});
  EXPECT_EQ(mixed.code, 1) << mixed.Text();
  EXPECT_EQ(mixed.out, "cancelled job " + std::to_string(another) + "\n");
  EXPECT_EQ(State(another), "cancelled");

  auto usage = Cli({"cancel", "12x"});
  EXPECT_EQ(usage.code, 2) << usage.Text();
  EXPECT_EQ(usage.err, "gsched: invalid job id '12x'\n");
  auto none = Cli({"release"});
  EXPECT_EQ(none.code, 2) << none.Text();
  EXPECT_TRUE(OneLine(none.err)) << none.err;
}

// --- logs and watch -------------------------------------------------------------------------

TEST_F(CliTest, LogsPrintsTheOutputAndFollowsARunningJobToItsEnd) {
  // All eight GPUs, so that the next job waits for this one.
  uint64_t id =
      Submit(R"({"image": "/", "gpus_per_node": 8, "gpu_type": "h100", "time_limit_s": 300,
                           "command": ["sh", "-c", "echo warming >&2; )" +
             WaitForGoCommand() + R"("]})");
  ASSERT_TRUE(WaitFor([&] { return Logs(id) == "started\n"; })) << State(id);
  std::string sid = std::to_string(id);
  auto now = Cli({"logs", sid});
  EXPECT_EQ(now.code, 0) << now.Text();
  EXPECT_EQ(now.out, "started\n");
  auto err = Cli({"logs", "--stderr", sid});
  EXPECT_EQ(err.code, 0) << err.Text();
  EXPECT_EQ(err.out, "warming\n");

  // `logs -f` prints what is there, keeps going while the job runs, and ends with it; on a job
  // that has not started yet, it waits for the start.
  uint64_t next = Submit(R"({"image": "/", "gpu_type": "h100", "time_limit_s": 60,
                             "command": ["sh", "-c", "echo next"]})");
  ASSERT_EQ(State(next), "pending");
  auto follow = StartCliAs(alice_, {"logs", "-f", sid});
  auto follow_next = StartCliAs(alice_, {"logs", "-f", std::to_string(next)});
  ASSERT_TRUE(WaitFor([&] { return follow->Out() == "started\n"; })) << follow->Out();
  EXPECT_TRUE(follow->running());
  std::ofstream(Go()) << "";
  auto followed = follow->Wait();
  EXPECT_EQ(followed.code, 0) << followed.Text();
  EXPECT_EQ(followed.out, "started\nfinished\n");
  EXPECT_EQ(State(id), "completed");
  auto followed_next = follow_next->Wait();
  EXPECT_EQ(followed_next.code, 0) << followed_next.Text();
  EXPECT_EQ(followed_next.out, "next\n");

  auto missing = Cli({"logs", "999999"});
  EXPECT_EQ(missing.code, 1) << missing.Text();
  EXPECT_EQ(missing.err, "gsched: no job 999999\n");
  auto hidden = CliAs(bob_, {"logs", sid});
  EXPECT_EQ(hidden.code, 1) << hidden.Text();
  EXPECT_EQ(hidden.out, "");
}

TEST_F(CliTest, WatchJsonSeesTheJobsEventsAndEndsWhenTheJobEnds) {
  uint64_t id = Submit(R"({"image": "/", "gpu_type": "h100", "time_limit_s": 300,
                           "command": ["sh", "-c", ")" +
                       WaitForGoCommand() + R"("]})");
  std::string sid = std::to_string(id);
  // From the start of the log (`--since 0`), so that the job's first events are in it whenever
  // the watch connects.
  auto watch = StartCliAs(alice_, {"watch", sid, "--json", "--since", "0"});
  auto plain = StartCliAs(alice_, {"watch", sid, "--since", "0"});
  ASSERT_TRUE(WaitFor([&] { return watch->Out().find(R"("to":"running")") != std::string::npos; }))
      << watch->Out() << watch->Err();
  ASSERT_TRUE(WaitFor([&] { return plain->Out().find(" running on node-1") != std::string::npos; }))
      << plain->Out() << plain->Err();
  EXPECT_TRUE(watch->running());
  std::ofstream(Go()) << "";
  auto watched = watch->Wait();
  ASSERT_EQ(watched.code, 0) << watched.Text();
  auto lines = watched.JsonLines();
  ASSERT_GE(lines.size(), 3u) << watched.out;
  EXPECT_EQ(lines.front().at("type").as_string(), "job.submitted");
  std::vector<std::string> states;
  int64_t last_seq = 0;
  for (const auto& e : lines) {
    EXPECT_EQ(e.at("data").at("job").to_number<uint64_t>(), id) << json::serialize(e);
    EXPECT_EQ(e.at("data").at("user").as_string(), "alice");
    int64_t seq = e.at("seq").to_number<int64_t>();
    EXPECT_GT(seq, last_seq) << watched.out;
    last_seq = seq;
    if (e.at("type") == "job.state")
      states.push_back(std::string(e.at("data").at("to").as_string()));
  }
  ASSERT_FALSE(states.empty()) << watched.out;
  EXPECT_EQ(states.back(), "completed") << watched.out;
  EXPECT_NE(std::find(states.begin(), states.end(), "running"), states.end()) << watched.out;

  auto text = plain->Wait();
  EXPECT_EQ(text.code, 0) << text.Text();
  EXPECT_NE(text.out.find("job.submitted  job " + sid + " submitted"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("job.state  job " + sid + " completed"), std::string::npos) << text.out;

  // A job that has ended sends nothing more: the watch says so and ends instead of waiting.
  auto late = Cli({"watch", sid, "--json"});
  EXPECT_EQ(late.code, 0) << late.Text();
  EXPECT_EQ(late.out, "");
  EXPECT_EQ(late.err, "gsched: job " + sid + " has ended (completed); no more events will come\n");
  // Another user's job, or none: the server's answer rather than a feed that stays silent.
  auto refused = CliAs(bob_, {"watch", sid, "--json"});
  EXPECT_EQ(refused.code, 1) << refused.Text();
  EXPECT_EQ(refused.err, "gsched: no job " + sid + "\n");
  auto unknown = Cli({"watch", "999999"});
  EXPECT_EQ(unknown.code, 1) << unknown.Text();
  EXPECT_EQ(unknown.err, "gsched: no job 999999\n");
  auto bad = Cli({"watch", "--topics", "weather"});
  EXPECT_EQ(bad.code, 1) << bad.Text();
  EXPECT_NE(bad.err.find("topics"), std::string::npos) << bad.err;
}

TEST_F(CliTest, WatchEphemeralShowsAPendingReasonAsItChanges) {
  Blocker();  // The node is full: the next job waits for resources.
  uint64_t id = Submit(R"({"image": "/", "gpus_per_node": 8, "gpu_type": "h100",
                           "time_limit_s": 300, "command": ["true"]})");
  std::string sid = std::to_string(id);
  auto watch = StartCliAs(alice_, {"watch", sid, "--json", "--since", "0", "--ephemeral"});
  auto plain = StartCliAs(alice_, {"watch", sid, "--since", "0", "--ephemeral"});
  // The replayed job.submitted shows that both feeds are open; a hold then changes the reason.
  ASSERT_TRUE(WaitFor([&] { return watch->Out().find("job.submitted") != std::string::npos; }))
      << watch->Out() << watch->Err();
  ASSERT_TRUE(WaitFor([&] { return plain->Out().find("job.submitted") != std::string::npos; }))
      << plain->Out() << plain->Err();
  EXPECT_EQ(Cli({"hold", sid}).code, 0);
  ASSERT_TRUE(WaitFor([&] { return watch->Out().find(R"("code":"held")") != std::string::npos; }))
      << watch->Out() << watch->Err();
  ASSERT_TRUE(WaitFor([&] { return plain->Out().find(" waits: held") != std::string::npos; }))
      << plain->Out() << plain->Err();
  EXPECT_EQ(Cli({"cancel", sid}).code, 0);
  auto watched = watch->Wait();
  ASSERT_EQ(watched.code, 0) << watched.Text();
  bool reason_seen = false;
  for (const auto& e : watched.JsonLines()) {
    EXPECT_EQ(e.at("data").at("job").to_number<uint64_t>(), id) << json::serialize(e);
    if (e.at("type") == "job.reason" && e.at("data").at("code") == "held")
      reason_seen = true;
  }
  EXPECT_TRUE(reason_seen) << watched.out;
  EXPECT_EQ(plain->Wait().code, 0);
}

TEST_F(CliTest, ASchedulerCrashEndsLogsFollowWithExit3AndWatchResumesWithoutGapsOrRepeats) {
  uint64_t id = Submit(R"({"image": "/", "gpu_type": "h100", "time_limit_s": 300,
                           "command": ["sh", "-c", ")" +
                       WaitForGoCommand() + R"("]})");
  std::string sid = std::to_string(id);
  ASSERT_TRUE(WaitFor([&] { return Logs(id) == "started\n"; })) << State(id);
  auto watch = StartCliAs(alice_, {"watch", sid, "--json", "--since", "0"});
  auto follow = StartCliAs(alice_, {"logs", "-f", sid});
  ASSERT_TRUE(WaitFor([&] { return watch->Out().find(R"("to":"running")") != std::string::npos; }))
      << watch->Out() << watch->Err();
  ASSERT_TRUE(WaitFor([&] { return follow->Out() == "started\n"; })) << follow->Out();

  // The scheduler dies: `logs -f` cannot reach it at its next poll and says so.
  s_.Crash();
  auto followed = follow->Wait();
  EXPECT_EQ(followed.code, 3) << followed.Text();
  EXPECT_TRUE(OneLine(followed.err)) << followed.err;
  EXPECT_TRUE(followed.err.starts_with("gsched: cannot reach " + s_.url())) << followed.err;
  EXPECT_EQ(followed.out, "started\n");

  // It comes back on the same address: the watch reconnects with `since` and goes on to the end.
  s_.Start(/*same_port=*/true);
  std::ofstream(Go()) << "";
  auto watched = watch->Wait(std::chrono::seconds(30));
  ASSERT_EQ(watched.code, 0) << watched.Text();
  std::vector<std::string> states;
  int64_t last_seq = 0;
  for (const auto& e : watched.JsonLines()) {
    int64_t seq = e.at("seq").to_number<int64_t>();
    EXPECT_GT(seq, last_seq) << "a repeat or disorder:\n" << watched.out;
    last_seq = seq;
    if (e.at("type") == "job.state")
      states.push_back(std::string(e.at("data").at("to").as_string()));
  }
  ASSERT_FALSE(states.empty()) << watched.out;
  EXPECT_EQ(states.back(), "completed") << watched.out;
  EXPECT_EQ(std::count(states.begin(), states.end(), "running"), 1) << watched.out;
  EXPECT_EQ(Job(id).at("attempt").as_int64(), 1);
}

// --- nodes, drain, resume -------------------------------------------------------------------

TEST_F(CliTest, NodesDrainAndResume) {
  auto nodes = Cli({"nodes", "--json"});
  ASSERT_EQ(nodes.code, 0) << nodes.Text();
  json::value body = nodes.Json();
  const json::array& list = body.at("nodes").as_array();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].at("name").as_string(), "node-1");
  EXPECT_EQ(list[0].at("state").as_string(), "up");
  EXPECT_EQ(list[0].at("gpu_type").as_string(), "h100");
  EXPECT_EQ(list[0].at("gpus").as_array().size(), 8u);
  auto table = Cli({"nodes"});
  ASSERT_EQ(table.code, 0) << table.Text();
  EXPECT_TRUE(table.out.starts_with("NAME")) << table.out;
  EXPECT_NE(table.out.find("node-1  up     h100  8/8"), std::string::npos) << table.out;

  // Only admins drain.
  auto denied = Cli({"drain", "node-1", "--reason", "mine now"});
  EXPECT_EQ(denied.code, 1) << denied.Text();
  EXPECT_TRUE(OneLine(denied.err)) << denied.err;
  // The feed shows the drain; a watch without a job runs until it is stopped. From the start of
  // the log (`--since 0`), so that the drain is in it whenever the watch subscribes.
  auto watch = StartCliAs(alice_, {"watch", "--topics", "nodes", "--json", "--since", "0"});
  auto drain = CliAs(admin_, {"drain", "node-1", "--reason", "firmware update"});
  ASSERT_EQ(drain.code, 0) << drain.Text();
  EXPECT_TRUE(OneLine(drain.out)) << drain.out;
  auto drained = CliAs(admin_, {"nodes", "--json"});
  ASSERT_EQ(drained.code, 0) << drained.Text();
  json::value drained_body = drained.Json();
  const json::value& node = drained_body.at("nodes").at(0);
  std::string state(node.at("state").as_string());
  EXPECT_TRUE(state == "drained" || state == "draining") << state;
  EXPECT_EQ(node.at("state_reason").as_string(), "firmware update");
  ASSERT_TRUE(WaitFor([&] { return watch->Out().find("firmware update") != std::string::npos; }))
      << watch->Out() << watch->Err();
  EXPECT_TRUE(watch->running());
  auto watched = watch->Stop();
  bool saw_drain = false;
  for (const auto& e : watched.JsonLines()) {
    EXPECT_TRUE(e.at("type").as_string().starts_with("node.")) << json::serialize(e);
    if (e.at("type") == "node.state" && e.at("data").at("reason") == "firmware update") {
      saw_drain = true;
      EXPECT_EQ(e.at("data").at("node").as_string(), "node-1");
      EXPECT_EQ(e.at("data").at("from").as_string(), "up");
    }
  }
  EXPECT_TRUE(saw_drain) << watched.out;
  // A job submitted now waits for the node.
  uint64_t id = PendingJob(alice_);
  ASSERT_TRUE(WaitFor([&] { return Job(id).at("reason").is_object(); }));
  EXPECT_EQ(State(id), "pending");

  auto resume = CliAs(admin_, {"resume", "node-1"});
  ASSERT_EQ(resume.code, 0) << resume.Text();
  EXPECT_EQ(resume.out, "node node-1 resumed\n");
  auto up = CliAs(admin_, {"nodes", "--json"});
  EXPECT_EQ(up.Json().at("nodes").at(0).at("state").as_string(), "up");
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << State(id);

  auto unknown = CliAs(admin_, {"drain", "node-9", "--reason", "x"});
  EXPECT_EQ(unknown.code, 1) << unknown.Text();
  EXPECT_TRUE(OneLine(unknown.err)) << unknown.err;
  EXPECT_NE(unknown.err.find("node-9"), std::string::npos) << unknown.err;
  auto no_reason = CliAs(admin_, {"drain", "node-1"});
  EXPECT_EQ(no_reason.code, 2) << no_reason.Text();
  EXPECT_TRUE(OneLine(no_reason.err)) << no_reason.err;
}

// --- accounts, quota, usage -----------------------------------------------------------------

TEST_F(CliTest, AccountsShowTheTreeAndApplyAndQuotaSetChangeIt) {
  auto accounts = Cli({"accounts", "--json"});
  ASSERT_EQ(accounts.code, 0) << accounts.Text();
  json::value body = accounts.Json();
  const json::array& list = body.at("accounts").as_array();
  const json::object* proj_a = Find(list, "name", "proj-a");
  ASSERT_NE(proj_a, nullptr) << accounts.out;
  EXPECT_EQ(proj_a->at("parent").as_string(), "lab");
  EXPECT_EQ(proj_a->at("shares").as_int64(), 3);
  EXPECT_EQ(proj_a->at("quotas").at("h100").at("guaranteed").as_int64(), 8);
  EXPECT_EQ(proj_a->at("quotas").at("h100").at("limit").as_int64(), 16);
  EXPECT_TRUE(proj_a->at("usage_gpu_hours").is_number());
  auto tree = Cli({"accounts"});
  ASSERT_EQ(tree.code, 0) << tree.Text();
  EXPECT_TRUE(tree.out.starts_with("ACCOUNT")) << tree.out;
  // Children indented under their parent, from the implicit root.
  EXPECT_NE(tree.out.find("\nroot "), std::string::npos) << tree.out;
  EXPECT_NE(tree.out.find("\n  lab "), std::string::npos) << tree.out;
  EXPECT_NE(tree.out.find("\n    proj-a "), std::string::npos) << tree.out;

  std::string file = Script("accounts.yaml",
                            "accounts:\n"
                            "  - name: lab\n"
                            "    shares: 1\n"
                            "    quotas:\n"
                            "      h100: {guaranteed: 8, limit: 16}\n"
                            "  - name: proj-c\n"
                            "    parent: lab\n"
                            "    shares: 2\n"
                            "    quotas:\n"
                            "      h100: {guaranteed: 0, limit: 4}\n");
  auto dry = CliAs(admin_, {"accounts", "apply", "-f", file, "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.Text();
  EXPECT_NE(dry.out.find("PUT /v1/accounts/proj-c "), std::string::npos) << dry.out;
  auto denied = Cli({"accounts", "apply", "-f", file});
  EXPECT_EQ(denied.code, 1) << denied.Text();
  EXPECT_TRUE(OneLine(denied.err)) << denied.err;
  auto apply = CliAs(admin_, {"accounts", "apply", "-f", file});
  ASSERT_EQ(apply.code, 0) << apply.Text();
  EXPECT_EQ(apply.out, "applied lab\napplied proj-c\n");
  auto after = CliAs(admin_, {"accounts", "--json"});
  ASSERT_EQ(after.code, 0) << after.Text();
  json::value after_body = after.Json();
  const json::object* proj_c = Find(after_body.at("accounts").as_array(), "name", "proj-c");
  ASSERT_NE(proj_c, nullptr) << after.out;
  EXPECT_EQ(proj_c->at("parent").as_string(), "lab");
  EXPECT_EQ(proj_c->at("shares").as_int64(), 2);
  EXPECT_EQ(proj_c->at("quotas").at("h100").at("limit").as_int64(), 4);

  // A bad file is a usage error naming the field.
  std::string bad = Script("bad.yaml", "accounts:\n  - name: x\n    shares: -1\n");
  auto refused = CliAs(admin_, {"accounts", "apply", "-f", bad});
  EXPECT_EQ(refused.code, 2) << refused.Text();
  EXPECT_TRUE(OneLine(refused.err)) << refused.err;
  EXPECT_EQ(refused.err, "gsched: " + bad + ": accounts[0].shares: must be >= 1 (got -1)\n");

  // quota set changes one type of one account and keeps the rest.
  auto quota = CliAs(admin_, {"quota", "set", "proj-a", "--gpu-type", "h100", "--guaranteed", "4",
                              "--limit", "12"});
  ASSERT_EQ(quota.code, 0) << quota.Text();
  EXPECT_EQ(quota.out, "proj-a h100: guaranteed 4, limit 12\n");
  auto changed = Cli({"accounts", "--json"});
  json::value changed_body = changed.Json();
  const json::object* a = Find(changed_body.at("accounts").as_array(), "name", "proj-a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->at("quotas").at("h100").at("guaranteed").as_int64(), 4);
  EXPECT_EQ(a->at("quotas").at("h100").at("limit").as_int64(), 12);
  EXPECT_EQ(a->at("shares").as_int64(), 3);
  EXPECT_EQ(a->at("parent").as_string(), "lab");

  auto not_admin = Cli({"quota", "set", "proj-a", "--gpu-type", "h100", "--limit", "64"});
  EXPECT_EQ(not_admin.code, 1) << not_admin.Text();
  EXPECT_TRUE(OneLine(not_admin.err)) << not_admin.err;
  auto inverted = CliAs(admin_, {"quota", "set", "proj-a", "--gpu-type", "h100", "--guaranteed",
                                 "8", "--limit", "2"});
  EXPECT_EQ(inverted.code, 2) << inverted.Text();
  EXPECT_TRUE(OneLine(inverted.err)) << inverted.err;
  // The server checks the tree: lab guarantees 8 h100, proj-a 4 of them, so proj-b may get 4
  // but not 5.
  auto fits = CliAs(admin_, {"quota", "set", "proj-b", "--gpu-type", "h100", "--guaranteed", "4"});
  EXPECT_EQ(fits.code, 0) << fits.Text();
  auto over = CliAs(admin_, {"quota", "set", "proj-b", "--gpu-type", "h100", "--guaranteed", "5"});
  EXPECT_EQ(over.code, 1) << over.Text();
  EXPECT_EQ(over.err,
            "gsched: quotas.h100.guaranteed: children of 'lab' would be guaranteed 9 h100 GPUs, "
            "more than its 8\n");
  std::string too_much = Script("too-much.yaml",
                                "accounts:\n"
                                "  - name: lab\n"
                                "    quotas:\n"
                                "      h100: {guaranteed: 8, limit: 16}\n"
                                "  - name: proj-d\n"
                                "    parent: lab\n"
                                "    quotas:\n"
                                "      h100: {guaranteed: 1}\n");
  auto partial = CliAs(admin_, {"accounts", "apply", "-f", too_much});
  EXPECT_EQ(partial.code, 1) << partial.Text();
  // One line: the server's error, the account it is about and what was applied before it.
  EXPECT_EQ(partial.out, "applied lab\n");
  EXPECT_EQ(partial.err,
            "gsched: quotas.h100.guaranteed: children of 'lab' would be guaranteed 9 h100 GPUs, "
            "more than its 8 (account 'proj-d'; applied before it: lab)\n");
  auto nobody = CliAs(admin_, {"quota", "set", "ghost", "--gpu-type", "h100", "--limit", "2"});
  EXPECT_EQ(nobody.code, 1) << nobody.Text();
  EXPECT_EQ(nobody.err, "gsched: no account 'ghost'\n");
}

TEST_F(CliTest, UsageGivesGpuHoursByAccountUserAndType) {
  uint64_t id = Submit(R"({"image": "/", "gpus_per_node": 2, "gpu_type": "h100",
                           "time_limit_s": 60, "command": ["sleep", "0.2"]})");
  ASSERT_TRUE(WaitFor([&] { return State(id) == "completed"; })) << State(id);
  auto usage = Cli({"usage", "--since", "1d", "--json"});
  ASSERT_EQ(usage.code, 0) << usage.Text();
  json::value body = usage.Json();
  const json::array& rows = body.at("usage").as_array();
  ASSERT_EQ(rows.size(), 1u) << usage.out;
  EXPECT_EQ(rows[0].at("account").as_string(), "proj-a");
  EXPECT_EQ(rows[0].at("user").as_string(), "alice");
  EXPECT_EQ(rows[0].at("gpu_type").as_string(), "h100");
  // 2 GPUs x at least 0.2 s = at least 0.4 GPU-seconds.
  EXPECT_GE(rows[0].at("gpu_hours").to_number<double>(), 0.4 / 3600) << usage.out;
  EXPECT_EQ(body.at("total_gpu_hours").to_number<double>(),
            rows[0].at("gpu_hours").to_number<double>());

  // A date works as well as a duration; a window that ended before the job has nothing.
  auto since_date = Cli({"usage", "--since", "2020-01-01", "--json"});
  ASSERT_EQ(since_date.code, 0) << since_date.Text();
  EXPECT_EQ(since_date.Json().at("usage").as_array().size(), 1u) << since_date.out;
  auto old = Cli({"usage", "--since", "2020-01-01", "--until", "2020-02-01", "--json"});
  ASSERT_EQ(old.code, 0) << old.Text();
  EXPECT_TRUE(old.Json().at("usage").as_array().empty()) << old.out;
  auto table = Cli({"usage", "--since", "1d"});
  ASSERT_EQ(table.code, 0) << table.Text();
  EXPECT_NE(table.out.find("proj-a   alice  h100"), std::string::npos) << table.out;

  auto bad = Cli({"usage", "--since", "soon"});
  EXPECT_EQ(bad.code, 2) << bad.Text();
  EXPECT_EQ(bad.err, "gsched: --since: use a duration (30d) or a date (2027-01-01), got 'soon'\n");
  // Users see their own usage only, whatever the account they ask for.
  auto bobs = CliAs(bob_, {"usage", "--account", "proj-a", "--json"});
  ASSERT_EQ(bobs.code, 0) << bobs.Text();
  EXPECT_TRUE(bobs.Json().at("usage").as_array().empty()) << bobs.out;
  auto unknown = Cli({"usage", "--account", "ghost"});
  EXPECT_EQ(unknown.code, 1) << unknown.Text();
  EXPECT_EQ(unknown.err, "gsched: account: no account 'ghost'\n");
}

// --- tokens and identity --------------------------------------------------------------------

TEST_F(CliTest, TokenCreateWhoamiAndARevokedTokenIsRefused) {
  auto created = CliAs(admin_, {"token", "create", "--user", "carol", "--account", "proj-b",
                                "--expires", "2h", "--json"});
  ASSERT_EQ(created.code, 0) << created.Text();
  json::value answer = created.Json();
  std::string token_id(answer.at("id").as_string());
  std::string token(answer.at("token").as_string());
  EXPECT_TRUE(token_id.starts_with("tok_")) << token_id;

  auto who = CliAs(token, {"whoami", "--json"});
  ASSERT_EQ(who.code, 0) << who.Text();
  json::value w = who.Json();
  EXPECT_EQ(w.at("user").as_string(), "carol");
  EXPECT_EQ(w.at("role").as_string(), "user");
  EXPECT_EQ(w.at("accounts"), json::array{"proj-b"});
  EXPECT_EQ(w.at("token_id").as_string(), token_id);
  auto text = CliAs(token, {"whoami"});
  ASSERT_EQ(text.code, 0) << text.Text();
  EXPECT_TRUE(text.out.starts_with("carol (user)\naccounts: proj-b\ntoken:    " + token_id +
                                   ", expires in "))
      << text.out;
  EXPECT_NE(text.out.find("server:   " + s_.url() + "\n"), std::string::npos) << text.out;

  // Without --json the token alone goes to stdout, so that `> file` keeps just it.
  auto plain = CliAs(
      admin_, {"token", "create", "--user", "dave", "--role", "coordinator", "--account", "lab"});
  ASSERT_EQ(plain.code, 0) << plain.Text();
  EXPECT_TRUE(OneLine(plain.out)) << plain.out;
  EXPECT_TRUE(plain.err.starts_with("token tok_")) << plain.err;
  std::string daves(plain.out.substr(0, plain.out.size() - 1));
  auto dave = CliAs(daves, {"whoami", "--json"});
  ASSERT_EQ(dave.code, 0) << dave.Text();
  EXPECT_EQ(dave.Json().at("role").as_string(), "coordinator");

  auto revoke = CliAs(admin_, {"token", "revoke", token_id});
  ASSERT_EQ(revoke.code, 0) << revoke.Text();
  EXPECT_EQ(revoke.out, "revoked token " + token_id + "\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"whoami"}, {"queue", "--json"}, {"submit", "--image", "/", "--", "true"}}) {
    auto refused = CliAs(token, args);
    EXPECT_EQ(refused.code, 1) << args[0] << ": " << refused.Text();
    EXPECT_EQ(refused.err, "gsched: token revoked\n") << args[0];
    EXPECT_EQ(refused.out, "");
  }

  // Only admins make tokens; a token needs a user and a real role.
  auto denied = Cli({"token", "create", "--user", "mallory"});
  EXPECT_EQ(denied.code, 1) << denied.Text();
  EXPECT_TRUE(OneLine(denied.err)) << denied.err;
  auto no_user = CliAs(admin_, {"token", "create"});
  EXPECT_EQ(no_user.code, 2) << no_user.Text();
  auto bad_role = CliAs(admin_, {"token", "create", "--user", "x", "--role", "wizard"});
  EXPECT_EQ(bad_role.code, 2) << bad_role.Text();
  EXPECT_TRUE(OneLine(bad_role.err)) << bad_role.err;
  // Token ids are checked; tokens themselves are not stored, so any well-formed id may be revoked.
  auto malformed = CliAs(admin_, {"token", "revoke", "nosuch"});
  EXPECT_EQ(malformed.code, 1) << malformed.Text();
  EXPECT_EQ(malformed.err, "gsched: id: not a token id\n");
}

// --- completion, configuration, errors ------------------------------------------------------

TEST_F(CliTest, BashCompletionCompletesCommandsAndFlags) {
  auto script = CliRaw({"completion", "bash"});
  ASSERT_EQ(script.code, 0) << script.Text();
  std::string path = s_.dir() + "/gsched.bash";
  std::ofstream(path) << script.out;
  // What bash offers after `gsched que`, `gsched accounts a` and `gsched queue --a`.
  std::string probe = s_.dir() + "/probe.sh";
  std::filesystem::create_directories(s_.dir() + "/empty");
  // In an empty directory: for words without a dash the script offers file names too.
  std::ofstream(probe) << "cd " << s_.dir() << "/empty\n"
                       << "source " << path << "\n"
                       << "complete_words() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); "
                          "COMPREPLY=(); _gsched; echo \"${COMPREPLY[*]}\"; }\n"
                       << "complete_words gsched que\n"
                       << "complete_words gsched accounts a\n"
                       << "complete_words gsched queue --a\n";
  std::string out_path = s_.dir() + "/probe.out";
  Subprocess bash({"/bin/bash", probe}, out_path, {.env = CliEnv()});
  int status = bash.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(out_path);
  EXPECT_EQ(ReadFile(out_path), "queue\napply\n--all --account\n");

  auto zsh = CliRaw({"completion", "zsh"});
  EXPECT_EQ(zsh.code, 2) << zsh.Text();
  EXPECT_TRUE(OneLine(zsh.err)) << zsh.err;
}

TEST_F(CliTest, FlagsOverTheEnvironmentOverTheConfigFile) {
  // A bad config file is a usage error naming the file and the key.
  std::string bad = s_.dir() + "/bad-config.yaml";
  std::ofstream(bad) << "sevrer: " << s_.url() << "\n";
  auto refused = CliRaw({"--config", bad, "whoami"});
  EXPECT_EQ(refused.code, 2) << refused.Text();
  EXPECT_EQ(refused.err, "gsched: " + bad + ": sevrer: unknown key; did you mean 'server'?\n");

  // The config file alone.
  std::filesystem::create_directories(s_.dir() + "/home/.config/gsched");
  std::ofstream(s_.dir() + "/home/.config/gsched/config.yaml")
      << "server: " << s_.url() << "\ntoken_file: " << TokenFile(bob_) << "\n";
  auto from_file = CliRaw({"whoami", "--json"});
  ASSERT_EQ(from_file.code, 0) << from_file.Text();
  EXPECT_EQ(from_file.Json().at("user").as_string(), "bob");
  // The environment over it.
  auto from_env = CliRaw({"whoami", "--json"}, {"GSCHED_TOKEN=" + alice_});
  ASSERT_EQ(from_env.code, 0) << from_env.Text();
  EXPECT_EQ(from_env.Json().at("user").as_string(), "alice");
  // A flag over both: nothing listens there, so the server is unreachable.
  auto from_flag = CliRaw({"--server", "http://127.0.0.1:1", "whoami"},
                          {"GSCHED_SERVER=" + s_.url(), "GSCHED_TOKEN=" + alice_});
  EXPECT_EQ(from_flag.code, 3) << from_flag.Text();
  EXPECT_TRUE(from_flag.err.starts_with("gsched: cannot reach http://127.0.0.1:1"))
      << from_flag.err;
  EXPECT_TRUE(OneLine(from_flag.err)) << from_flag.err;
}

TEST_F(CliTest, ExitCodesAndOneLineErrors) {
  // 3: nobody listens, for every kind of command.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"queue"}, {"show", "1"}, {"watch", "1"}, {"cancel", "1"}, {"nodes", "--json"}}) {
    std::vector<std::string> full{"--server", "http://127.0.0.1:1", "--token", "x"};
    full.insert(full.end(), args.begin(), args.end());
    auto r = CliRaw(full);
    EXPECT_EQ(r.code, 3) << args[0] << ": " << r.Text();
    EXPECT_TRUE(OneLine(r.err)) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out, "");
  }
  // 2: no server anywhere, bad flags, bad values, no command.
  auto no_server = CliRaw({"queue"});
  EXPECT_EQ(no_server.code, 2) << no_server.Text();
  EXPECT_TRUE(OneLine(no_server.err)) << no_server.err;
  EXPECT_NE(no_server.err.find("no server configured"), std::string::npos) << no_server.err;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"queue", "--bogus"},
           {"submit", "--gpus", "two", "--image", "/", "--", "true"},
           {"submit", "--time", "UNLIMITED", "--image", "/", "--", "true"},
           {"submit", "--image", "/"},
           {"frobnicate"},
           {"show"}}) {
    auto r = Cli(args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.Text();
    EXPECT_TRUE(OneLine(r.err)) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out, "");
  }
  auto nothing = CliRaw({});
  EXPECT_EQ(nothing.code, 2) << nothing.Text();

  // 1: the server's refusal, in one line, with the field path it names.
  auto wrong_account = Cli({"submit", "--account", "ghost", "--image", "/", "--", "true"});
  EXPECT_EQ(wrong_account.code, 1) << wrong_account.Text();
  EXPECT_EQ(wrong_account.err, "gsched: account: unknown account 'ghost'\n");
  auto not_member = Cli({"submit", "--account", "other", "--image", "/", "--", "true"});
  EXPECT_EQ(not_member.code, 1) << not_member.Text();
  EXPECT_EQ(not_member.err, "gsched: account: user 'alice' may not submit to account 'other'\n");
  auto bad_window = Cli({"usage", "--since", "1d", "--until", "2d"});
  EXPECT_EQ(bad_window.code, 1) << bad_window.Text();
  EXPECT_EQ(bad_window.err, "gsched: until: must be after since\n");
  auto bad_token = CliAs("not-a-token", {"whoami"});
  EXPECT_EQ(bad_token.code, 1) << bad_token.Text();
  EXPECT_TRUE(OneLine(bad_token.err)) << bad_token.err;

  // --help is not an error, and shows examples.
  auto help = CliRaw({"submit", "--help"});
  EXPECT_EQ(help.code, 0) << help.Text();
  EXPECT_NE(help.out.find("Examples:"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace gsched::testing

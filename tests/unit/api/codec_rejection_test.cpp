// Table-driven rejection tests of the strict decoders: each case is a JSON text, the decoder it is
// given to, the exact field path expected in the `Status` and a fragment of its message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "scheduler/api/codec.h"
#include "scheduler/api/json.h"
#include "scheduler/api/worker_messages.h"

namespace gsched::api {
namespace {

enum class Decoder { kSpec, kSubmit, kJob, kNode, kAccount, kToken, kWorker, kScheduler };

struct Rejection {
  std::string name;
  Decoder decoder;
  std::string text;
  std::string field;
  std::string message_fragment;
};

Status Decode(Decoder decoder, std::string_view text) {
  if (decoder == Decoder::kWorker)
    return DecodeWorkerMessage(text).status();
  if (decoder == Decoder::kScheduler)
    return DecodeSchedulerMessage(text).status();
  auto v = ParseJson(text);
  if (!v.ok())
    return v.status();
  switch (decoder) {
    case Decoder::kSpec:
      return DecodeJobSpec(*v).status();
    case Decoder::kSubmit:
      return DecodeSubmitBody(*v).status();
    case Decoder::kJob:
      return DecodeJob(*v).status();
    case Decoder::kNode:
      return DecodeNode(*v).status();
    case Decoder::kAccount:
      return DecodeAccount(*v).status();
    case Decoder::kToken:
      return DecodeTokenRequest(*v).status();
    default:
      return Status::Internal("unreachable");
  }
}

// A valid spec with `extra` fields added: `Spec(R"("nodes": 0)")`.
std::string Spec(const std::string& extra) {
  std::string s = R"({"image": "/images/cuda", "command": ["python", "train.py"])";
  if (!extra.empty())
    s += ", " + extra;
  return s + "}";
}

std::string Quoted(const std::string& s) {
  return "\"" + s + "\"";
}

// `{"K0": "v", "K1": "v", ...}` with `n` entries.
std::string ObjectOf(size_t n, const std::string& key_prefix) {
  std::string s = "{";
  for (size_t i = 0; i < n; ++i)
    s += (i ? ", \"" : "\"") + key_prefix + std::to_string(i) + "\": \"v\"";
  return s + "}";
}

std::string ArgsOf(size_t n) {
  std::string s = "[";
  for (size_t i = 0; i < n; ++i)
    s += i ? ", \"a\"" : "\"a\"";
  return s + "]";
}

std::string BatchWithBadFourth() {
  return R"({"jobs": [)" + Spec("") + ", " + Spec("") + ", " + Spec("") + ", " +
         Spec(R"("gpus_per_node": 65)") + "]}";
}

std::string BatchOf(size_t n) {
  std::string s = R"({"jobs": [)";
  for (size_t i = 0; i < n; ++i)
    s += (i ? ", " : "") + Spec("");
  return s + "]}";
}

const std::string kJobPrefix =
    R"({"id": 7, "user": "alice", "state": "pending", "submit_time": "2026-11-23T00:00:00Z", )";

std::vector<Rejection> Cases() {
  using D = Decoder;
  return {
      // Wrong JSON types.
      {"nodes_string", D::kSpec, Spec(R"("nodes": "2")"), "nodes",
       "must be an integer, not a string"},
      {"gpus_float", D::kSpec, Spec(R"("gpus_per_node": 8.5)"), "gpus_per_node",
       "must be an integer, not a number"},
      {"gpus_whole_float", D::kSpec, Spec(R"("gpus_per_node": 8.0)"), "gpus_per_node",
       "must be an integer"},
      {"gpus_exponent", D::kSpec, Spec(R"("gpus_per_node": 1e1)"), "gpus_per_node",
       "must be an integer"},
      {"gpus_bool", D::kSpec, Spec(R"("gpus_per_node": true)"), "gpus_per_node",
       "must be an integer, not a boolean"},
      {"command_string", D::kSpec, R"({"image": "/i", "command": "python train.py"})", "command",
       "must be an array, not a string"},
      {"command_arg_int", D::kSpec, R"({"image": "/i", "command": ["python", "a", 3]})",
       "command[2]", "must be a string"},
      {"env_not_object", D::kSpec, Spec(R"("env": ["A=1"])"), "env", "must be an object"},
      {"env_value_int", D::kSpec, Spec(R"("env": {"EPOCHS": 3})"), "env.EPOCHS",
       "must be a string"},
      {"requeue_string", D::kSpec, Spec(R"("requeue": "yes")"), "requeue", "must be true or false"},
      {"gpu_type_int", D::kSpec, Spec(R"("gpu_type": 5)"), "gpu_type",
       "must be a GPU type name or an array of them"},
      {"gpu_type_list_int", D::kSpec, Spec(R"("gpu_type": ["h100", 5])"), "gpu_type[1]",
       "must be a string"},
      {"array_int", D::kSpec, Spec(R"("array": 10)"), "array", "must be a string"},
      {"memory_bool", D::kSpec, Spec(R"("memory_mib_per_node": false)"), "memory_mib_per_node",
       "must be an integer (MiB) or a size string"},
      {"time_limit_float", D::kSpec, Spec(R"("time_limit_s": 3600.5)"), "time_limit_s",
       "must be an integer or a duration string"},
      {"spec_not_object", D::kSpec, "[1, 2]", "", "must be an object, not an array"},
      {"labels_value_int", D::kSpec, Spec(R"("labels": {"team": 1})"), "labels.team",
       "must be a string"},

      // Missing required fields.
      {"missing_image", D::kSpec, R"({"command": ["x"]})", "image", "is required"},
      {"null_image", D::kSpec, R"({"image": null, "command": ["x"]})", "image", "is required"},
      {"missing_command", D::kSpec, R"({"image": "/i"})", "command", "is required"},
      {"empty_command", D::kSpec, R"({"image": "/i", "command": []})", "command",
       "must not be empty"},
      {"empty_program", D::kSpec, R"({"image": "/i", "command": ["", "x"]})", "command[0]",
       "must not be empty"},
      {"empty_image", D::kSpec, R"({"image": "", "command": ["x"]})", "image", "must not be empty"},
      {"dependency_without_job", D::kSpec, Spec(R"("depends_on": [{"type": "afterok"}])"),
       "depends_on[0].job", "is required"},

      // Zero, negative and huge counts.
      {"nodes_zero", D::kSpec, Spec(R"("nodes": 0)"), "nodes", "must be 1..4096"},
      {"nodes_negative", D::kSpec, Spec(R"("nodes": -1)"), "nodes", "must be 1..4096"},
      {"nodes_huge", D::kSpec, Spec(R"("nodes": 4097)"), "nodes", "must be 1..4096"},
      {"nodes_u64", D::kSpec, Spec(R"("nodes": 18446744073709551615)"), "nodes", "must be 1..4096"},
      {"nodes_beyond_u64", D::kSpec, Spec(R"("nodes": 99999999999999999999)"), "nodes",
       "must be an integer"},
      {"gpus_huge", D::kSpec, Spec(R"("gpus_per_node": 65)"), "gpus_per_node", "must be 0..64"},
      {"gpus_negative", D::kSpec, Spec(R"("gpus_per_node": -8)"), "gpus_per_node", "must be 0..64"},
      {"cpus_huge", D::kSpec, Spec(R"("cpus_per_node": 4097)"), "cpus_per_node", "must be 0..4096"},
      {"memory_huge", D::kSpec, Spec(R"("memory_mib_per_node": 16777217)"), "memory_mib_per_node",
       "must be 0..16777216 MiB"},
      {"memory_huge_string", D::kSpec, Spec(R"("memory_mib_per_node": "17T")"),
       "memory_mib_per_node", "must be 0..16777216 MiB"},
      {"memory_negative", D::kSpec, Spec(R"("memory_mib_per_node": -1)"), "memory_mib_per_node",
       "must be 0..16777216 MiB"},
      {"memory_bad_unit", D::kSpec, Spec(R"("memory_mib_per_node": "16X")"), "memory_mib_per_node",
       "invalid size '16X'"},
      {"time_limit_zero", D::kSpec, Spec(R"("time_limit_s": 0)"), "time_limit_s",
       "must be 1..31536000 seconds"},
      {"time_limit_year_plus", D::kSpec, Spec(R"("time_limit_s": 31536001)"), "time_limit_s",
       "must be 1..31536000 seconds"},
      {"time_limit_string_huge", D::kSpec, Spec(R"("time_limit_s": "400d")"), "time_limit_s",
       "must be 1..31536000 seconds"},
      {"time_limit_millis", D::kSpec, Spec(R"("time_limit_s": "1500ms")"), "time_limit_s",
       "must be whole seconds"},
      {"time_limit_garbage", D::kSpec, Spec(R"("time_limit_s": "soon")"), "time_limit_s",
       "invalid duration 'soon'"},
      {"time_limit_long_string", D::kSpec,
       Spec(R"("time_limit_s": ")" + std::string(70'000, '1') + "\""), "time_limit_s",
       "(too long)"},
      {"memory_long_string", D::kSpec,
       Spec(R"("memory_mib_per_node": ")" + std::string(70'000, '1') + "\""), "memory_mib_per_node",
       "(too long)"},
      {"grace_huge", D::kSpec, Spec(R"("grace_period_s": 3601)"), "grace_period_s",
       "must be 0..3600"},
      {"grace_negative", D::kSpec, Spec(R"("grace_period_s": -1)"), "grace_period_s",
       "must be 0..3600"},
      {"dependency_job_zero", D::kSpec, Spec(R"("depends_on": [{"type": "afterok", "job": 0}])"),
       "depends_on[0].job", "must be 1..18446744073709551615"},
      {"too_many_args", D::kSpec, R"({"image": "/i", "command": )" + ArgsOf(1025) + "}", "command",
       "must have at most 1024 elements (got 1025)"},
      {"too_many_env", D::kSpec, Spec(R"("env": )" + ObjectOf(1025, "K")), "env",
       "must have at most 1024 entries (got 1025)"},
      {"too_many_labels", D::kSpec, Spec(R"("labels": )" + ObjectOf(65, "l")), "labels",
       "must have at most 64 entries (got 65)"},

      // Unknown enum values list what is accepted.
      {"priority_class", D::kSpec, Spec(R"("priority_class": "urgent")"), "priority_class",
       "must be one of high, normal, preemptible"},
      {"topology", D::kSpec, Spec(R"("topology": "rack")"), "topology",
       "must be one of any, site, block"},
      {"dependency_type", D::kSpec, Spec(R"("depends_on": [{"type": "after", "job": 1}])"),
       "depends_on[0].type", "must be one of afterok, afterany, afternotok"},
      {"signal", D::kSpec, Spec(R"("checkpoint_signal": "SIGSEGV")"), "checkpoint_signal",
       "must be one of SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGKILL"},
      {"budget_policy", D::kAccount, R"({"on_budget_exhausted": "wait"})", "on_budget_exhausted",
       "must be one of preemptible, hold"},
      {"role", D::kToken, R"({"user": "alice", "role": "root"})", "role",
       "must be one of user, coordinator, admin, worker"},

      // Oversized and malformed strings, with the limit in the message.
      {"image_huge", D::kSpec,
       R"({"image": ")" + std::string(4097, 'i') + R"(", "command": ["x"]})", "image",
       "must be at most 4096 bytes long (got 4097)"},
      {"arg_huge", D::kSpec,
       R"({"image": "/i", "command": ["x", ")" + std::string(65537, 'a') + "\"]}", "command[1]",
       "must be at most 65536 bytes long (got 65537)"},
      {"env_value_huge", D::kSpec, Spec(R"("env": {"A": ")" + std::string(65537, 'v') + "\"}"),
       "env.A", "must be at most 65536 bytes long (got 65537)"},
      {"env_key_huge", D::kSpec, Spec(R"("env": {")" + std::string(257, 'K') + "\": \"v\"}"),
       "env[\"" + std::string(64, 'K') + "...\"]", "must be at most 256 bytes long (got 257)"},
      {"unknown_huge_key", D::kSpec, Spec("\"" + std::string(1 << 20, 'g') + "\": 1"),
       "[\"" + std::string(64, 'g') + "...\"]", "unknown field"},
      {"env_key_digit", D::kSpec, Spec(R"("env": {"1PATH": "x"})"), "env.1PATH",
       "must match [A-Za-z_][A-Za-z0-9_]*"},
      {"env_key_dash", D::kSpec, Spec(R"("env": {"MY-VAR": "x"})"), "env.MY-VAR",
       "must match [A-Za-z_][A-Za-z0-9_]*"},
      {"name_space", D::kSpec, Spec(R"("name": "my job")"), "name",
       "may only contain A-Z a-z 0-9 . _ -"},
      {"name_huge", D::kSpec, Spec(R"("name": )" + Quoted(std::string(129, 'n'))), "name",
       "must be at most 128 bytes long (got 129)"},
      {"name_empty", D::kSpec, Spec(R"("name": "")"), "name", "must not be empty"},
      {"arg_with_nul", D::kSpec, R"({"image": "/i", "command": ["a\u0000b"]})", "command[0]",
       "must not contain NUL"},
      {"gpu_type_upper", D::kSpec, Spec(R"("gpu_type": "H100")"), "gpu_type",
       "may only contain a-z 0-9 . _ -"},
      {"gpu_type_empty", D::kSpec, Spec(R"("gpu_type": "")"), "gpu_type", "must not be empty"},
      {"gpu_type_huge", D::kSpec, Spec(R"("gpu_type": )" + Quoted(std::string(65, 'h'))),
       "gpu_type", "must be at most 64 bytes long (got 65)"},
      {"label_key_space", D::kSpec, Spec(R"("labels": {"a b": "x"})"), "labels[\"a b\"]",
       "may only contain"},
      {"account_slash", D::kSpec, Spec(R"("account": "kaist/nlp")"), "account", "may only contain"},
      {"array_backwards", D::kSpec, Spec(R"("array": "5-3")"), "array",
       "must not end before it starts"},
      {"array_too_many", D::kSpec, Spec(R"("array": "0-100000")"), "array",
       "more than 100000 indices"},

      // Unknown fields, with a suggestion when one is close.
      {"unknown_gpus", D::kSpec, Spec(R"("gpus": 8)"), "gpus",
       "unknown field; did you mean 'gpus_per_node'?"},
      {"unknown_typo", D::kSpec, Spec(R"("nodse": 2)"), "nodse",
       "unknown field; did you mean 'nodes'?"},
      {"unknown_time_limit", D::kSpec, Spec(R"("time_limit": 60)"), "time_limit",
       "did you mean 'time_limit_s'?"},
      {"unknown_case", D::kSpec, Spec(R"("Image": "/x")"), "Image", "did you mean 'image'?"},
      {"unknown_far", D::kSpec, Spec(R"("xyzzy": 1)"), "xyzzy", "unknown field"},
      {"user_not_in_spec", D::kSpec, Spec(R"("user": "mallory")"), "user", "unknown field"},
      {"unknown_in_dependency", D::kSpec,
       Spec(R"("depends_on": [{"type": "afterok", "job": 1, "jbo": 2}])"), "depends_on[0].jbo",
       "did you mean 'job'?"},
      {"unknown_in_job_spec", D::kJob, kJobPrefix + R"("spec": )" + Spec(R"("gpus": 8)") + "}",
       "spec.gpus", "unknown field; did you mean 'gpus_per_node'?"},
      {"unknown_account", D::kAccount, R"({"name": "a", "share": 3})", "share",
       "did you mean 'shares'?"},
      {"unknown_quota", D::kAccount, R"({"quotas": {"h100": {"guranteed": 1}}})",
       "quotas.h100.guranteed", "did you mean 'guaranteed'?"},
      {"unknown_token", D::kToken, R"({"user": "alice", "expires": 60})", "expires",
       "did you mean 'expires_in_s'?"},

      // Batches name the element.
      {"batch_fourth", D::kSubmit, BatchWithBadFourth(), "jobs[3].gpus_per_node", "must be 0..64"},
      {"batch_not_object", D::kSubmit, R"({"jobs": [)" + Spec("") + ", 5]}", "jobs[1]",
       "must be an object, not an integer"},
      {"batch_empty", D::kSubmit, R"({"jobs": []})", "jobs", "must hold 1..10000 job specs"},
      {"batch_not_array", D::kSubmit, R"({"jobs": {}})", "jobs", "must be an array"},
      {"batch_extra_field", D::kSubmit, R"({"jobs": [)" + Spec("") + R"(], "job": 1})", "job",
       "unknown field; did you mean 'jobs'?"},
      {"batch_too_big", D::kSubmit, BatchOf(10'001), "jobs",
       "must have at most 10000 elements (got 10001)"},
      {"batch_nested_unknown", D::kSubmit, R"({"jobs": [)" + Spec(R"("spec": {})") + "]}",
       "jobs[0].spec", "unknown field"},
      {"single_bad", D::kSubmit, Spec(R"("nodes": 0)"), "nodes", "must be 1..4096"},

      // Accounts and tokens.
      {"own_parent", D::kAccount, R"({"name": "a", "parent": "a"})", "parent",
       "must not be the account itself"},
      {"shares_zero", D::kAccount, R"({"shares": 0})", "shares", "must be 1..1000000"},
      {"limit_below_guarantee", D::kAccount,
       R"({"quotas": {"h100": {"guaranteed": 64, "limit": 32}}})", "quotas.h100.limit",
       "must be >= guaranteed (64)"},
      {"quota_negative", D::kAccount, R"({"quotas": {"h100": {"guaranteed": -1}}})",
       "quotas.h100.guaranteed", "must be 0..10000000"},
      {"quota_type_upper", D::kAccount, R"({"quotas": {"H100": {"guaranteed": 1}}})", "quotas.H100",
       "may only contain a-z 0-9 . _ -"},
      {"budget_negative", D::kAccount,
       R"({"budget": {"gpu_hours": -1, "start": "2027-01-01", "end": "2027-12-31"}})",
       "budget.gpu_hours", "must be 0..1e+12"},
      {"budget_backwards", D::kAccount,
       R"({"budget": {"gpu_hours": 1, "start": "2027-12-31", "end": "2027-01-01"}})", "budget.end",
       "must be after start"},
      {"budget_bad_date", D::kAccount,
       R"({"budget": {"gpu_hours": 1, "start": "2027-13-01", "end": "2028-01-01"}})",
       "budget.start", "invalid time '2027-13-01'"},
      {"budget_missing_end", D::kAccount, R"({"budget": {"gpu_hours": 1, "start": "2027-01-01"}})",
       "budget.end", "is required"},
      {"token_no_user", D::kToken, R"({"role": "user"})", "user", "is required"},
      {"token_zero_lifetime", D::kToken, R"({"user": "alice", "expires_in_s": 0})", "expires_in_s",
       "must be 1..31536000 seconds"},
      {"token_two_years", D::kToken, R"({"user": "alice", "expires_in_s": "730d"})", "expires_in_s",
       "must be 1..31536000 seconds"},
      {"token_bad_account", D::kToken, R"({"user": "alice", "accounts": ["ok", "not ok"]})",
       "accounts[1]", "may only contain"},
      {"worker_token_without_nodes", D::kToken, R"({"user": "w", "role": "worker"})", "nodes",
       "required for worker tokens"},
      {"worker_token_star_inside", D::kToken,
       R"({"user": "w", "role": "worker", "nodes": ["n1", "a*b"]})", "nodes[1]",
       "prefix ending in '*'"},
      {"worker_token_empty_node", D::kToken, R"({"user": "w", "role": "worker", "nodes": [""]})",
       "nodes[0]", "must be a node name"},
      {"user_token_with_nodes", D::kToken, R"({"user": "u", "nodes": ["n1"]})", "nodes",
       "only worker tokens"},

      // Server output and worker messages: known fields are still checked.
      {"job_id_zero", D::kJob,
       R"({"id": 0, "user": "a", "state": "pending", "submit_time": "2026-01-01", "spec": )" +
           Spec("") + "}",
       "id", "must be 1..18446744073709551615"},
      {"job_bad_state", D::kJob,
       R"({"id": 1, "user": "a", "state": "sleeping", "submit_time": "2026-01-01", "spec": )" +
           Spec("") + "}",
       "state", "must be one of pending, starting, running"},
      {"node_bad_gpu", D::kNode, R"({"name": "n1", "gpus": [{"index": 0}, {"index": -1}]})",
       "gpus[1].index", "must be 0..1023"},
      {"node_bad_pair", D::kNode, R"({"name": "n1", "nvlink_pairs": [[0, 1], [2]]})",
       "nvlink_pairs[1]", "must be a pair of GPU indices"},
      {"worker_unknown_type", D::kWorker, R"({"type": "helo", "node": "n1"})", "type",
       "must be one of hello, heartbeat, job_update, gpu_health"},
      {"worker_no_type", D::kWorker, R"({"node": "n1"})", "type", "is required"},
      {"worker_bad_attempt", D::kWorker,
       R"({"type": "job_update", "job": 1, "attempt": 0, "state": "running"})", "attempt",
       "must be 1..4294967295"},
      {"worker_bad_running", D::kWorker,
       R"({"type": "heartbeat", "node": "n1", "time": "2026-01-01T00:00:00Z", "running": [{"job": 1, "attempt": "1"}]})",
       "running[0].attempt", "must be an integer"},
      {"worker_bad_health", D::kWorker,
       R"({"type": "gpu_health", "node": "n1", "gpus": [{"index": 1, "health": "sick"}]})",
       "gpus[0].health", "must be one of healthy, unhealthy"},
      {"worker_not_json", D::kWorker, R"({"type": "hello")", "", "invalid JSON at byte 16"},
      {"worker_duplicate", D::kWorker, R"({"type": "hello", "type": "drain"})", "type",
       "duplicate key"},
      {"scheduler_signal", D::kScheduler,
       R"({"type": "signal", "job": 1, "attempt": 1, "signal": "SIGSTOP"})", "signal",
       "must be one of SIGTERM"},
      {"scheduler_launch_spec", D::kScheduler,
       R"({"type": "launch", "job": 1, "attempt": 1, "spec": {"image": "/i", "command": []}})",
       "spec.command", "must not be empty"},
      {"scheduler_rank", D::kScheduler,
       R"({"type": "launch", "job": 1, "attempt": 1, "spec": {"image": "/i", "command": ["x"]}, "node_rank": 2, "nodes": ["a", "b"]})",
       "node_rank", "must be less than the number of nodes"},
      {"scheduler_kill_grace", D::kScheduler,
       R"({"type": "kill", "job": 1, "attempt": 1, "grace_s": 7200})", "grace_s",
       "must be 0..3600"},
  };
}

class CodecRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(CodecRejectionTest, NamesFieldAndReason) {
  const Rejection& c = GetParam();
  Status s = Decode(c.decoder, c.text);
  ASSERT_FALSE(s.ok()) << "accepted: " << c.text.substr(0, 200);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.field(), c.field) << s.ToString().substr(0, 300);
  EXPECT_NE(s.message().find(c.message_fragment), std::string::npos)
      << "message: " << s.message() << "\nexpected fragment: " << c.message_fragment;
}

INSTANTIATE_TEST_SUITE_P(Table, CodecRejectionTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Rejection>& info) {
                           return info.param.name;
                         });

// The accepting side of the same rules, at their edges.
TEST(CodecAcceptTest, EdgesOfEveryRange) {
  for (const std::string& extra :
       {std::string(R"("nodes": 4096, "gpus_per_node": 0)"),
        std::string(R"("nodes": 1, "gpus_per_node": 64, "cpus_per_node": 4096)"),
        std::string(R"("memory_mib_per_node": 16777216)"),
        std::string(R"("memory_mib_per_node": "16T")"), std::string(R"("time_limit_s": 1)"),
        std::string(R"("time_limit_s": 31536000)"), std::string(R"("time_limit_s": "1-12:00:00")"),
        std::string(R"("grace_period_s": 0)"), std::string(R"("grace_period_s": 3600)"),
        std::string(R"("gpu_type": [])"), std::string(R"("checkpoint_signal": "USR2")"),
        std::string(R"("name": )") + Quoted(std::string(128, 'n')),
        std::string(R"("env": )") + ObjectOf(1024, "K"),
        std::string(R"("labels": )") + ObjectOf(64, "l"), std::string(R"("time_limit_s": null)"),
        std::string(R"("env": {"_X1": ""})"), std::string(R"("array": "0-15:4")")}) {
    auto v = ParseJson(Spec(extra));
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    auto spec = DecodeJobSpec(*v);
    EXPECT_TRUE(spec.ok()) << extra.substr(0, 100) << ": " << spec.status().ToString();
  }
}

TEST(CodecAcceptTest, SignalsAreNormalised) {
  for (std::string_view name : {"TERM", "SIGTERM", "term", "SigTerm"}) {
    auto s = NormalizeSignal(name);
    ASSERT_TRUE(s.ok()) << name;
    EXPECT_EQ(*s, "SIGTERM");
  }
  EXPECT_FALSE(NormalizeSignal("SIG").ok());
  EXPECT_FALSE(NormalizeSignal("").ok());
  EXPECT_FALSE(NormalizeSignal("9").ok());
}

// Types the scheduler writes for programs ignore fields they do not know (forward compatibility);
// job specs do not.
TEST(CodecAcceptTest, OutputTypesIgnoreUnknownFields) {
  auto v = ParseJson(
      R"({"name": "n1", "future_field": {"x": 1}, "gpus": [{"index": 0, "future": true}]})");
  ASSERT_TRUE(v.ok());
  auto node = DecodeNode(*v);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ(node->gpus.size(), 1u);

  auto m = DecodeWorkerMessage(
      R"({"type": "drain_me_not", "node": "n1"})");  // Unknown types are still errors.
  EXPECT_FALSE(m.ok());
  auto hb = DecodeWorkerMessage(
      R"({"type": "heartbeat", "node": "n1", "time": "2026-01-01T00:00:00Z", "load": 0.5})");
  EXPECT_TRUE(hb.ok()) << hb.status().ToString();
  // A newer scheduler may add spec fields; the worker launches anyway.
  auto launch = DecodeSchedulerMessage(
      R"({"type": "launch", "job": 1, "attempt": 1, "spec": {"image": "/i", "command": ["x"], "future": 1}})");
  EXPECT_TRUE(launch.ok()) << launch.status().ToString();
}

}  // namespace
}  // namespace gsched::api

// Trace readers (sim/trace.h): what each format yields, and bad input rejected naming its line and
// column.
#include "sim/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "config/gpu_types.h"
#include "sim/replay.h"

namespace gsched::sim {
namespace {

using ::testing::HasSubstr;

Result<Trace> Read(const std::string& text, TraceFormat format) {
  std::istringstream in(text);
  return ReadTrace(in, format, "t.csv");
}

std::string ErrorOf(const std::string& text, TraceFormat format) {
  auto t = Read(text, format);
  return t.ok() ? "(accepted)" : t.status().ToString();
}

constexpr char kOpenbHeader[] =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n";

TEST(OpenbTraceTest, ReadsPodsAndSkipsThoseWithoutGpusOrRunTime) {
  const std::string text = std::string(kOpenbHeader) +
                           "p0,12000,16384,1,1000,,LS,Running,0,12537496,0\n"
                           "p1,6000,12288,1,460,,BE,Running,427061,12902960,427071\n"
                           "p2,88000,327680,0,0,,LS,Running,10,20,10\n"
                           "p3,11908,47104,1,1000,,BE,Pending,100,150,\n"
                           "p4,1500,1024,8,1000,V100M32|G3,Burstable,Failed,5,905,15\n";
  auto t = Read(text, TraceFormat::kOpenb);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->jobs.size(), 3u);
  const TraceJob& p0 = t->jobs[0];
  EXPECT_EQ(p0.line, 2);
  EXPECT_EQ(p0.submit_ms, 0);
  EXPECT_EQ(p0.duration_ms, int64_t{12537496} * 1000);  // deletion - scheduled
  EXPECT_EQ(p0.gpus_per_node, 1);
  EXPECT_EQ(p0.cpus_per_node, 12);  // ceil(12000 / 1000)
  EXPECT_EQ(p0.memory_mib_per_node, 16384);
  EXPECT_EQ(p0.priority_class, api::PriorityClass::kNormal);
  const TraceJob& p1 = t->jobs[1];
  // A GPU-sharing pod (gpu_milli 460) takes one whole GPU; best effort runs as preemptible.
  EXPECT_EQ(p1.gpus_per_node, 1);
  EXPECT_EQ(p1.priority_class, api::PriorityClass::kPreemptible);
  EXPECT_EQ(p1.duration_ms, (12902960 - 427071) * int64_t{1000});
  const TraceJob& p4 = t->jobs[2];
  EXPECT_EQ(p4.line, 6);
  EXPECT_EQ(p4.cpus_per_node, 2);      // ceil(1500 / 1000)
  EXPECT_EQ(p4.duration_ms, 890'000);  // 905 - 15
  EXPECT_THAT(p4.gpu_types, ::testing::ElementsAre("v100m32", "g3"));
  EXPECT_EQ(t->skipped.at("no GPU (num_gpu 0)"), 1);
  EXPECT_EQ(t->skipped.at("never scheduled in the trace (no scheduled_time)"), 1);
}

TEST(OpenbTraceTest, BadRowsNameLineAndColumn) {
  const std::string h = kOpenbHeader;
  EXPECT_EQ(ErrorOf(h + "p0,1000,1,1,1000,,LS,Running,-5,10,0\n", TraceFormat::kOpenb),
            "t.csv: line 2, column 9 (creation_time): must be >= 0, got -5");
  EXPECT_EQ(ErrorOf(h + "p0,1000,1,1,1000,,LS,Running,0,10,0\np1,1000,1,1,1000,,LS,Running,0,5,"
                        "9\n",
                    TraceFormat::kOpenb),
            "t.csv: line 3, column 10 (deletion_time): before scheduled_time");
  EXPECT_EQ(ErrorOf(h + "p0,1000,1,two,1000,,LS,Running,0,10,0\n", TraceFormat::kOpenb),
            "t.csv: line 2, column 4 (num_gpu): not an integer: \"two\"");
  EXPECT_EQ(ErrorOf(h + "p0,1000,1,1,1000\n", TraceFormat::kOpenb),
            "t.csv: line 2, column 6: expected 11 columns, got 5");
  EXPECT_THAT(ErrorOf("name,num_gpu,creation_time\np0,1,0\n", TraceFormat::kOpenb),
              HasSubstr("t.csv: line 1, column 4 (cpu_milli): missing column"));
}

TEST(TiresiasTraceTest, ReadsJobsAndSplitsWideJobsIntoNodesOfEight) {
  auto t = Read(
      "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n"
      "0,1,0,606,vgg19,164,30\n"
      "1,16,30,133,vgg11,147,23\n",
      TraceFormat::kTiresias);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->jobs.size(), 2u);
  EXPECT_EQ(t->jobs[0].nodes, 1);
  EXPECT_EQ(t->jobs[0].gpus_per_node, 1);
  EXPECT_EQ(t->jobs[0].duration_ms, 164'000);
  // 16 GPUs = 2 nodes x 8.
  EXPECT_EQ(t->jobs[1].nodes, 2);
  EXPECT_EQ(t->jobs[1].gpus_per_node, 8);
  EXPECT_EQ(t->jobs[1].submit_ms, 30'000);
  EXPECT_TRUE(t->jobs[1].account.empty());
}

TEST(TiresiasTraceTest, BadRowsNameLineAndColumn) {
  const std::string h = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n";
  EXPECT_EQ(ErrorOf(h + "0,12,0,1,m,10,1\n", TraceFormat::kTiresias),
            "t.csv: line 2, column 2 (num_gpu): more than 8 GPUs must be a multiple of 8 (whole "
            "nodes), got 12");
  EXPECT_EQ(ErrorOf(h + "0,1,0,1,m,10,1\n\n1,1,5,1,m,-3,1\n", TraceFormat::kTiresias),
            "t.csv: line 4, column 6 (duration): must be >= 0, got -3");
  EXPECT_THAT(ErrorOf("job_id,num_gpu,submit_time\n0,1,0\n", TraceFormat::kTiresias),
              HasSubstr("line 1, column 4 (duration): missing column"));
}

TEST(CsvTraceTest, ReadsEveryColumnInAnyOrder) {
  auto t = Read(
      "user,account,gpus,nodes,submit_s,duration_s,gpu_type,time_limit_s,cpus,memory_mib,class\n"
      "alice,kaist-nlp,8,2,1.5,3600,h100|H200,7200,32,65536,high\n"
      ",,1,,0,60,,,,,\n",
      TraceFormat::kCsv);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->jobs.size(), 2u);
  const TraceJob& a = t->jobs[0];
  EXPECT_EQ(a.user, "alice");
  EXPECT_EQ(a.account, "kaist-nlp");
  EXPECT_EQ(a.nodes, 2);
  EXPECT_EQ(a.gpus_per_node, 8);
  EXPECT_EQ(a.submit_ms, 1500);
  EXPECT_EQ(a.duration_ms, 3'600'000);
  EXPECT_THAT(a.gpu_types, ::testing::ElementsAre("h100", "h200"));
  EXPECT_EQ(a.time_limit_ms, 7'200'000);
  EXPECT_EQ(a.cpus_per_node, 32);
  EXPECT_EQ(a.memory_mib_per_node, 65536);
  EXPECT_EQ(a.priority_class, api::PriorityClass::kHigh);
  const TraceJob& b = t->jobs[1];
  EXPECT_EQ(b.nodes, 1);
  EXPECT_TRUE(b.gpu_types.empty());
  EXPECT_TRUE(b.account.empty());
  EXPECT_FALSE(b.time_limit_ms);
  EXPECT_EQ(t->gpu_type_column, 7);
  EXPECT_EQ(t->account_column, 2);
}

TEST(CsvTraceTest, BadInputNamesLineAndColumn) {
  const std::string h = "submit_s,duration_s,gpus\n";
  EXPECT_EQ(ErrorOf(h + "0,60,1\n10,-1,1\n", TraceFormat::kCsv),
            "t.csv: line 3, column 2 (duration_s): must be >= 0, got -1");
  EXPECT_EQ(ErrorOf(h + "soon,60,1\n", TraceFormat::kCsv),
            "t.csv: line 2, column 1 (submit_s): not a number of seconds: \"soon\"");
  EXPECT_EQ(ErrorOf(h + "0,60,65\n", TraceFormat::kCsv),
            "t.csv: line 2, column 3 (gpus): must be in 1..64, got 65");
  EXPECT_EQ(ErrorOf("submit_s,duration_s\n0,60\n", TraceFormat::kCsv),
            "t.csv: line 1, column 3 (gpus): missing column (the header has: submit_s, "
            "duration_s)");
  EXPECT_THAT(ErrorOf("submit_s,duration_s,gpu\n0,60,1\n", TraceFormat::kCsv),
              HasSubstr("t.csv: line 1, column 3 (gpu): unknown column"));
  EXPECT_THAT(ErrorOf("submit_s,duration_s,gpus,class\n0,60,1,urgent\n", TraceFormat::kCsv),
              HasSubstr("line 2, column 4 (class): one of: high, normal, preemptible"));
  EXPECT_EQ(ErrorOf("", TraceFormat::kCsv), "t.csv: line 1: empty file: a header line is required");
}

TEST(CsvTraceTest, QuotedFieldsAndCarriageReturns) {
  auto t = Read("submit_s,duration_s,gpus,user\r\n\"0\",60,1,\"bob\"\r\n", TraceFormat::kCsv);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->jobs.size(), 1u);
  EXPECT_EQ(t->jobs[0].user, "bob");
}

TEST(CsvTraceTest, UnknownGpuTypeIsRejectedAgainstTheClusterWithLineAndColumn) {
  auto t = Read("submit_s,duration_s,gpus,gpu_type\n0,60,1,h100\n5,60,1,a100\n", TraceFormat::kCsv);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  config::ClusterConfig cluster;
  cluster.sites.push_back({"s", {{"b", 1}}});
  cluster.nodes.push_back({.name = "n0",
                           .site = "s",
                           .block = "b",
                           .gpu_type = "h100",
                           .gpus = 8,
                           .cpus = 64,
                           .memory_mib = 1 << 20});
  auto prepared = PrepareReplay(cluster, nullptr, config::SchedulerConfig{}, *t, ReplayOptions{});
  ASSERT_FALSE(prepared.ok());
  EXPECT_THAT(prepared.status().ToString(),
              HasSubstr("t.csv: line 3, column 4 (gpu_type): unknown GPU type \"a100\""));
}

TEST(OpenbNodesTest, OneBlockPerModelWithLowerCasedTypes) {
  std::istringstream in(
      "sn,cpu_milli,memory_mib,gpu,model\n"
      "n0,64000,262144,2,P100\n"
      "n1,96000,393216,8,G2\n"
      "n2,64000,262144,2,P100\n");
  auto c = ReadOpenbNodes(in, "nodes.csv", config::DefaultGpuTypes());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->nodes.size(), 3u);
  ASSERT_EQ(c->sites.size(), 1u);
  ASSERT_EQ(c->sites[0].blocks.size(), 2u);
  EXPECT_EQ(c->sites[0].blocks[0].name, "p100");
  EXPECT_EQ(c->sites[0].blocks[0].node_count, 2u);
  // Nodes are grouped by block: n0, n2 (p100), then n1 (g2).
  EXPECT_EQ(c->nodes[1].name, "n2");
  EXPECT_EQ(c->nodes[2].cpus, 96);
  EXPECT_EQ(c->TotalGpus(), 12);  // 2 + 2 + 8
  ASSERT_EQ(c->gpu_types.size(), 2u);
  EXPECT_EQ(c->gpu_types[0].cost, 1.0);  // Not a known type: cost 1.
}

TEST(OpenbNodesTest, DuplicateNodeNamesLineAndColumn) {
  std::istringstream in("sn,cpu_milli,memory_mib,gpu,model\nn0,1000,1,1,T4\nn0,1000,1,1,T4\n");
  auto c = ReadOpenbNodes(in, "nodes.csv", {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().ToString(), "nodes.csv: line 3, column 1 (sn): node named twice: n0");
}

}  // namespace
}  // namespace gsched::sim

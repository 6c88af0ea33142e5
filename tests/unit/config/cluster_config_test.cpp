#include "config/cluster_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace gsched::config {
namespace {

using ::testing::HasSubstr;

TEST(ClusterConfigTest, ExpandsGroupsWithPlaceholders) {
  Result<ClusterConfig> c = ParseClusterConfig(R"(
sites:
  - name: s1
    blocks:
      - name: b0
        nodes:
          - {count: 3, name: "{site}-{block}-n{index:02}", gpu_type: h100, cpus: 64, memory: 1T,
             labels: {fabric: ib}}
          - {name: "{site}-login", gpu_type: rtx-pro-6000, gpus: 2, cpus: 16, memory: 65536}
      - name: b1
        nodes:
          - {count: 2, first_index: 7, name: "x{index}", gpu_type: b200, gpus: 4, cpus: 8,
             memory: 512G}
)",
                                               "c.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->nodes.size(), 6u);
  EXPECT_EQ(c->nodes[0].name, "s1-b0-n00");
  EXPECT_EQ(c->nodes[2].name, "s1-b0-n02");
  EXPECT_EQ(c->nodes[2].site, "s1");
  EXPECT_EQ(c->nodes[2].block, "b0");
  EXPECT_EQ(c->nodes[2].gpus, 8);  // Default.
  EXPECT_EQ(c->nodes[2].memory_mib, 1 << 20);
  EXPECT_EQ(c->nodes[2].labels.at("fabric"), "ib");
  EXPECT_EQ(c->nodes[3].name, "s1-login");
  EXPECT_EQ(c->nodes[3].memory_mib, 65536);
  EXPECT_EQ(c->nodes[4].name, "x7");
  EXPECT_EQ(c->nodes[5].name, "x8");
  EXPECT_EQ(c->nodes[5].block, "b1");
  ASSERT_EQ(c->sites.size(), 1u);
  ASSERT_EQ(c->sites[0].blocks.size(), 2u);
  EXPECT_EQ(c->sites[0].blocks[0].node_count, 4u);
  EXPECT_EQ(c->sites[0].blocks[1].node_count, 2u);
  // 3 x 8 + 2 + 2 x 4.
  EXPECT_EQ(c->TotalGpus(), 34);
  EXPECT_EQ(c->GpusByType().at("h100"), 24);
}

TEST(ClusterConfigTest, CustomGpuTypes) {
  Result<ClusterConfig> c = ParseClusterConfig(R"(
gpu_types: [{name: a100, cost: 0.8}]
sites: [{name: s, blocks: [{name: b, nodes: [{name: n, gpu_type: a100, cpus: 1, memory: 1G}]}]}]
)",
                                               "c.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->gpu_types.size(), 1u);
  EXPECT_EQ(c->nodes[0].gpu_type, "a100");
}

TEST(ClusterConfigTest, ExpandsSixThousandNodesQuickly) {
  // 250 blocks x 25 nodes = 6,250 nodes, written out without aliases.
  std::string text = "sites:\n";
  for (int s = 0; s < 5; ++s) {
    text += "  - name: s" + std::to_string(s) + "\n    blocks:\n";
    for (int b = 0; b < 50; ++b) {
      text += "      - {name: b" + std::to_string(b) +
              ", nodes: [{count: 25, name: \"{site}-{block}-{index:03}\", gpu_type: h100, cpus: "
              "64, memory: 1T}]}\n";
    }
  }
  auto start = std::chrono::steady_clock::now();
  Result<ClusterConfig> c = ParseClusterConfig(text, "big.yaml");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->nodes.size(), 6250u);
  EXPECT_EQ(c->TotalGpus(), 50000);
  // A loose bound (the target is < 100 ms in a release build; sanitizers are slower).
  EXPECT_LT(ms, 2000);
}

struct Rejection {
  std::string yaml;
  std::string field;
  std::string fragment;
};

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.yaml;
}

class ClusterConfigRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(ClusterConfigRejectionTest, NamesPathAndReason) {
  const Rejection& r = GetParam();
  Result<ClusterConfig> c = ParseClusterConfig(r.yaml, "cluster.yaml");
  ASSERT_FALSE(c.ok()) << r.yaml;
  EXPECT_EQ(c.status().field(), r.field) << c.status().message();
  EXPECT_THAT(c.status().message(), HasSubstr(r.fragment));
}

// One valid node group, with `%s` replaced per case.
std::string Group(const std::string& fields) {
  return "sites: [{name: s, blocks: [{name: b, nodes: [{" + fields + "}]}]}]\n";
}

const char* kOk = "name: n, gpu_type: h100, cpus: 8, memory: 64G";

INSTANTIATE_TEST_SUITE_P(
    Cases, ClusterConfigRejectionTest,
    ::testing::Values(
        Rejection{"", "sites", "sites: is required"},
        Rejection{"sites: []\n", "sites", "must list at least one site"},
        Rejection{"sites: {name: s}\n", "sites", "must be a list (got a mapping)"},
        Rejection{"sites: [{name: s}]\n", "sites[0].blocks", "is required"},
        Rejection{"sites: [{name: s, blocks: []}]\n", "sites[0].blocks",
                  "must list at least one block"},
        Rejection{"sites: [{name: s, blocks: [{name: b, nodes: []}]}]\n",
                  "sites[0].blocks[0].nodes", "must list at least one node"},
        Rejection{Group("gpu_type: h100, cpus: 8, memory: 64G"), "sites[0].blocks[0].nodes[0].name",
                  "is required"},
        Rejection{Group("name: n, cpus: 8, memory: 64G"), "sites[0].blocks[0].nodes[0].gpu_type",
                  "is required"},
        Rejection{Group("name: n, gpu_type: h100, memory: 64G"), "sites[0].blocks[0].nodes[0].cpus",
                  "is required"},
        Rejection{Group("name: n, gpu_type: h100, cpus: 8"), "sites[0].blocks[0].nodes[0].memory",
                  "is required"},
        Rejection{Group("name: n, gpu_type: a100, cpus: 8, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].gpu_type", "unknown GPU type 'a100'"},
        Rejection{Group("name: n, gpu_type: h10, cpus: 8, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].gpu_type", "did you mean 'h100'?"},
        Rejection{Group(std::string(kOk) + ", gpus: 65"), "sites[0].blocks[0].nodes[0].gpus",
                  "must be <= 64"},
        Rejection{Group(std::string(kOk) + ", gpus: -1"), "sites[0].blocks[0].nodes[0].gpus",
                  "must be >= 0"},
        Rejection{Group("name: n, gpu_type: h100, cpus: 0, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].cpus", "must be >= 1"},
        Rejection{Group("name: n, gpu_type: h100, cpus: 8, memory: 100T"),
                  "sites[0].blocks[0].nodes[0].memory", "must be <= 67108864 MiB"},
        Rejection{Group("name: n, gpu_type: h100, cpus: 8, memory: big"),
                  "sites[0].blocks[0].nodes[0].memory", "invalid size 'big'"},
        Rejection{Group(std::string(kOk) + ", count: 0"), "sites[0].blocks[0].nodes[0].count",
                  "must be >= 1"},
        Rejection{Group(std::string(kOk) + ", count: 2000000"), "sites[0].blocks[0].nodes[0].count",
                  "must be <= 1000000"},
        Rejection{Group(std::string(kOk) + ", count: 2"), "sites[0].blocks[0].nodes[0].name",
                  "must contain {index} when count > 1"},
        Rejection{Group("name: \"n{idx}\", gpu_type: h100, cpus: 8, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].name", "unknown placeholder '{idx}'"},
        Rejection{Group("name: \"n{index:0}\", gpu_type: h100, cpus: 8, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].name", "bad width"},
        Rejection{Group("name: \"n{index\", gpu_type: h100, cpus: 8, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].name", "unclosed '{'"},
        Rejection{Group("name: \"n 1\", gpu_type: h100, cpus: 8, memory: 64G"),
                  "sites[0].blocks[0].nodes[0].name", "invalid character ' '"},
        Rejection{Group(std::string(kOk) + ", colour: red"), "sites[0].blocks[0].nodes[0].colour",
                  "unknown key"},
        Rejection{Group(std::string(kOk) + ", cpu: 8"), "sites[0].blocks[0].nodes[0].cpu",
                  "did you mean 'cpus'?"},
        Rejection{"sites: [{name: s, blok: [], blocks: [{name: b, nodes: [{name: n, gpu_type: "
                  "h100, cpus: 8, memory: 1G}]}]}]\n",
                  "sites[0].blok", "did you mean 'blocks'?"},
        Rejection{"sites: [{name: S1, blocks: []}]\n", "sites[0].name", "invalid name 'S1'"}));

TEST(ClusterConfigTest, DuplicateNodeNamesNameBothPlaces) {
  Result<ClusterConfig> c = ParseClusterConfig(R"(
sites:
  - name: s
    blocks:
      - name: b0
        nodes: [{count: 4, name: "n{index}", gpu_type: h100, cpus: 8, memory: 1T}]
      - name: b1
        nodes: [{name: n2, gpu_type: h100, cpus: 8, memory: 1T}]
)",
                                               "c.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().field(), "sites[0].blocks[1].nodes[0].name");
  EXPECT_EQ(c.status().message(),
            "sites[0].blocks[1].nodes[0].name: duplicate node name 'n2' at "
            "sites[0].blocks[1].nodes[0].name; first defined at sites[0].blocks[0].nodes[0].name "
            "(index 2)");
}

TEST(ClusterConfigTest, DuplicateSitesAndBlocks) {
  Result<ClusterConfig> c = ParseClusterConfig(R"(
sites:
  - name: s
    blocks:
      - {name: b, nodes: [{name: n1, gpu_type: h100, cpus: 8, memory: 1T}]}
      - {name: b, nodes: [{name: n2, gpu_type: h100, cpus: 8, memory: 1T}]}
  - name: s
    blocks:
      - {name: b, nodes: [{name: n3, gpu_type: h100, cpus: 8, memory: 1T}]}
)",
                                               "c.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("sites[0].blocks[1].name: duplicate block 'b' in site 's' (also "
                        "sites[0].blocks[0])"));
  EXPECT_THAT(c.status().message(), HasSubstr("sites[1].name: duplicate site 's' (also sites[0])"));
}

TEST(ClusterConfigTest, ReportsSeveralErrorsTogether) {
  Result<ClusterConfig> c = ParseClusterConfig(R"(
sites:
  - name: s
    blocks:
      - name: b
        nodes:
          - {name: a, gpu_type: tpu, cpus: 8, memory: 1T}
          - {name: b, gpu_type: h100, cpus: -8, memory: 1T}
          - {name: c, gpu_type: h100, cpus: 8, memory: 1T, gpus: 100}
)",
                                               "c.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "sites[0].blocks[0].nodes[0].gpu_type: unknown GPU type 'tpu'\n"
            "sites[0].blocks[0].nodes[1].cpus: must be >= 1 (got -8)\n"
            "sites[0].blocks[0].nodes[2].gpus: must be <= 64 (got 100)");
}

}  // namespace
}  // namespace gsched::config

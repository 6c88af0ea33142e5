#include "worker/gpu_inventory.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace gsched::worker {
namespace {

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(GSCHED_SOURCE_DIR) + "/tests/data/worker/" + name);
  EXPECT_TRUE(in) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(GpuTypeFromName, KnownAndUnknownNames) {
  EXPECT_EQ(GpuTypeFromName("NVIDIA H100 80GB HBM3"), "h100");
  EXPECT_EQ(GpuTypeFromName("NVIDIA H100 PCIe"), "h100");
  EXPECT_EQ(GpuTypeFromName("NVIDIA B200"), "b200");
  EXPECT_EQ(GpuTypeFromName("NVIDIA H200"), "h200");
  EXPECT_EQ(GpuTypeFromName("NVIDIA RTX PRO 6000 Blackwell Server Edition"), "rtx-pro-6000");
  EXPECT_EQ(GpuTypeFromName("NVIDIA A100-SXM4-80GB"), "a100");
  EXPECT_EQ(GpuTypeFromName("NVIDIA L40S"), "l40s");
  EXPECT_EQ(GpuTypeFromName("NVIDIA L4"), "l4");
  // Unknown: lowercased, "nvidia " dropped, other characters folded to '-'.
  EXPECT_EQ(GpuTypeFromName("NVIDIA GeForce RTX 4090"), "geforce-rtx-4090");
  EXPECT_EQ(GpuTypeFromName("  Tesla T4 (rev 2) "), "tesla-t4-rev-2");
}

TEST(ParseGpuQuery, H100SxmBox) {
  auto inv = ParseGpuQuery(ReadData("h100_sxm_query.csv"));
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  ASSERT_EQ(inv->gpus.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(inv->gpus[i].index, i);
    EXPECT_EQ(inv->gpus[i].type, "h100");
    EXPECT_EQ(inv->gpus[i].memory_mib, 81559);
    EXPECT_TRUE(inv->gpus[i].uuid.starts_with("GPU-"));
  }
  EXPECT_EQ(inv->pci_bus_ids.at(0), "00000000:18:00.0");
}

TEST(ParseTopologyMatrix, NvSwitchAllPairs) {
  auto pairs = ParseTopologyMatrix(ReadData("h100_sxm_topo.txt"));
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  // 8 GPUs all-to-all: 8 * 7 / 2 = 28 pairs.
  ASSERT_EQ(pairs->size(), 28u);
  EXPECT_EQ(pairs->front(), std::make_pair(0, 1));
  EXPECT_EQ(pairs->back(), std::make_pair(6, 7));
}

TEST(ParseTopologyMatrix, PcieBoxHasNoNvlink) {
  auto inv = ParseGpuQuery(ReadData("pcie_l40s_query.csv"));
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->gpus.size(), 4u);
  EXPECT_EQ(inv->gpus[0].type, "l40s");
  auto pairs = ParseTopologyMatrix(ReadData("pcie_l40s_topo.txt"));
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  EXPECT_TRUE(pairs->empty());
}

TEST(ParseTopologyMatrix, NvlinkBridgePairs) {
  std::string text =
      "\tGPU0\tGPU1\tGPU2\tGPU3\tCPU Affinity\n"
      "GPU0\t X \tNV4\tSYS\tSYS\t0-15\n"
      "GPU1\tNV4\t X \tSYS\tSYS\t0-15\n"
      "GPU2\tSYS\tSYS\t X \tNV4\t16-31\n"
      "GPU3\tSYS\tSYS\tNV4\t X \t16-31\n";
  auto pairs = ParseTopologyMatrix(text);
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  EXPECT_EQ(*pairs, (std::vector<std::pair<int32_t, int32_t>>{{0, 1}, {2, 3}}));
}

TEST(ParseMalformed, RejectedWithClearError) {
  auto q = ParseGpuQuery(ReadData("malformed_query.csv"));
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("line 2"), std::string::npos) << q.status().message();
  EXPECT_NE(q.status().message().find("expected 5"), std::string::npos);

  auto t = ParseTopologyMatrix(ReadData("malformed_topo.txt"));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("BOGUS"), std::string::npos) << t.status().message();

  EXPECT_FALSE(ParseGpuQuery("").ok());
  EXPECT_FALSE(ParseGpuQuery("x, GPU-1, NVIDIA H100, 100, 0:0").ok());
  EXPECT_FALSE(ParseGpuQuery("0, GPU-1, NVIDIA H100, lots, 0:0").ok());
  EXPECT_FALSE(ParseGpuQuery("0, GPU-1, NVIDIA H100, 1, a\n0, GPU-2, NVIDIA H100, 1, b").ok());
  EXPECT_FALSE(ParseTopologyMatrix("no matrix here").ok());
  EXPECT_FALSE(ParseTopologyMatrix("\tGPU0\tGPU1\nGPU0\tX\tNV2\n").ok());  // A row missing.
}

TEST(FakeInventory, Topologies) {
  config::FakeGpuConfig fake;
  fake.count = 4;
  fake.type = "b200";
  fake.memory_mib = 184320;
  fake.nvlink = config::NvlinkTopology::kPairs;
  auto inv = MakeFakeInventory(fake, "n1");
  ASSERT_EQ(inv.gpus.size(), 4u);
  EXPECT_EQ(inv.gpus[3].uuid, "GPU-fake-n1-3");
  EXPECT_EQ(inv.gpus[3].type, "b200");
  EXPECT_EQ(inv.nvlink_pairs, (std::vector<std::pair<int32_t, int32_t>>{{0, 1}, {2, 3}}));
  fake.nvlink = config::NvlinkTopology::kAll;
  EXPECT_EQ(MakeFakeInventory(fake, "n1").nvlink_pairs.size(), 6u);  // 4 * 3 / 2.
  fake.nvlink = config::NvlinkTopology::kNone;
  EXPECT_TRUE(MakeFakeInventory(fake, "n1").nvlink_pairs.empty());
}

TEST(FaultFile, DrivesFakeHealth) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("gsched_fault_" + std::to_string(getpid()));
  fs::create_directories(dir);
  config::GpuConfig gpus;
  gpus.discovery = config::GpuDiscovery::kFake;
  gpus.fake.count = 4;
  gpus.fake.fault_file = (dir / "faults").string();
  auto inv = MakeFakeInventory(gpus.fake, "n1");

  // No file yet: all healthy.
  auto health = CheckGpuHealth(gpus, inv);
  ASSERT_TRUE(health.ok());
  for (const auto& e : *health)
    EXPECT_EQ(e.health, api::GpuHealth::kHealthy);

  std::ofstream(gpus.fake.fault_file) << "# injected\n3 xid 79\n1 gone\n2 ecc 5\n";
  health = CheckGpuHealth(gpus, inv);
  ASSERT_TRUE(health.ok()) << health.status().ToString();
  EXPECT_EQ((*health)[0].health, api::GpuHealth::kHealthy);
  EXPECT_EQ((*health)[1].health, api::GpuHealth::kUnhealthy);
  EXPECT_EQ((*health)[1].message, "GPU gone");
  EXPECT_EQ((*health)[2].health, api::GpuHealth::kUnhealthy);
  EXPECT_EQ((*health)[3].xid, 79);

  std::ofstream(gpus.fake.fault_file) << "3 xid 79\n3 ok\n";  // The last line wins.
  health = CheckGpuHealth(gpus, inv);
  ASSERT_TRUE(health.ok());
  EXPECT_EQ((*health)[3].health, api::GpuHealth::kHealthy);

  std::ofstream(gpus.fake.fault_file) << "3 melted\n";
  health = CheckGpuHealth(gpus, inv);
  ASSERT_FALSE(health.ok());
  EXPECT_NE(health.status().message().find("line 1"), std::string::npos);
  fs::remove_all(dir);
}

TEST(HealthQuery, MissingGpuIsGone) {
  config::FakeGpuConfig fake;
  fake.count = 3;
  auto inv = MakeFakeInventory(fake, "n");
  auto observed = ParseHealthQuery("0, 0\n1, [N/A]\n");
  ASSERT_TRUE(observed.ok());
  auto health = EvaluateHealth(inv, *observed, /*present_by_default=*/false);
  EXPECT_EQ(health[0].health, api::GpuHealth::kHealthy);
  EXPECT_EQ(health[1].health, api::GpuHealth::kHealthy);
  EXPECT_EQ(health[2].health, api::GpuHealth::kUnhealthy);
  EXPECT_NE(health[2].message.find("gone"), std::string::npos);
  EXPECT_FALSE(ParseHealthQuery("0, many\n").ok());
}

}  // namespace
}  // namespace gsched::worker

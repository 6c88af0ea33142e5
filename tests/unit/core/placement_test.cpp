#include "scheduler/core/placement.h"

#include <gtest/gtest.h>

#include "tests/testutil/builders.h"

namespace gsched::core {
namespace {

using testutil::ClusterBuilder;
using testutil::kT0;
using testutil::MakeJob;
using testutil::MakeNode;

const Timestamp kEnd = kT0 + Seconds(3600);

Shape Gpus(int32_t per_node, int32_t nodes = 1, api::Topology t = api::Topology::kAny) {
  Shape s;
  s.gpus_per_node = per_node;
  s.nodes = nodes;
  s.topology = t;
  return s;
}

TEST(PlacementTest, BestFitTakesTheNodeWithFewestGpusLeft) {
  // Free GPUs: n0 = 8, n1 = 8 - 5 = 3, n2 = 8 - 6 = 2.
  // A 2-GPU job: leftovers n0 6, n1 1, n2 0 -> n2.
  // A 3-GPU job: n1 (0 left) beats n0 (5 left); n2 cannot.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0"))
                         .Add(MakeNode("n1"))
                         .Add(MakeNode("n2"))
                         .AddRunning(MakeJob(10).On("n1", 5))
                         .AddRunning(MakeJob(11).On("n2", 6))
                         .Build();
  NodePool pool(s);
  auto p = pool.Find(Gpus(2), 0, kEnd);
  ASSERT_TRUE(p);
  EXPECT_EQ(s.nodes[p->nodes[0].node].name, "n2");
  EXPECT_EQ(p->nodes[0].gpus, 0b1100'0000u);  // GPUs 6 and 7 are the free ones.
  p = pool.Find(Gpus(3), 0, kEnd);
  ASSERT_TRUE(p);
  EXPECT_EQ(s.nodes[p->nodes[0].node].name, "n1");
}

TEST(PlacementTest, AmongEquallyTightNodesTheFullestBlockWins) {
  // b1: c0, c1 empty (16 free). b0: a0 with 4 used, a1 empty (4 + 8 = 12 free).
  // An 8-GPU job fits exactly on c0, c1 or a1 (0 left each); a1's block has 12 < 16 free, so
  // it goes there and block b1 stays whole.
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("c0").Block("b1"))
                         .Add(MakeNode("c1").Block("b1"))
                         .Add(MakeNode("a0").Block("b0"))
                         .Add(MakeNode("a1").Block("b0"))
                         .AddRunning(MakeJob(10).On("a0", 4))
                         .Build();
  NodePool pool(s);
  auto p = pool.Find(Gpus(8), 0, kEnd);
  ASSERT_TRUE(p);
  EXPECT_EQ(s.nodes[p->nodes[0].node].name, "a1");
}

TEST(PlacementTest, CommitUpdatesFreeStateAndCpusMemoryMustFit) {
  const Snapshot s = ClusterBuilder().Add(MakeNode("n0").Cpus(16).MemoryMiB(1000)).Build();
  NodePool pool(s);
  Shape shape = Gpus(4);
  shape.cpus_per_node = 10;
  shape.memory_mib_per_node = 600;
  auto p = pool.Find(shape, 0, kEnd);
  ASSERT_TRUE(p);
  pool.Commit(*p);
  // 8 - 4 = 4 GPUs left, but 16 - 10 = 6 CPUs < 10: the second copy does not fit.
  EXPECT_EQ(pool.FreeGpus(0), 4);
  EXPECT_EQ(pool.FreeCpus(0), 6);
  EXPECT_EQ(pool.FreeMemory(0), 400);
  EXPECT_FALSE(pool.Find(shape, 0, kEnd));
  EXPECT_TRUE(pool.Find(Gpus(4), 0, kEnd));
}

TEST(PlacementTest, SkipsUnhealthyGpusAndNodesThatAreNotUp) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("n0").UnhealthyGpu(0).UnhealthyGpu(1))
                         .Add(MakeNode("n1").State(api::NodeState::kDraining))
                         .Build();
  NodePool pool(s);
  // n0 has 8 - 2 = 6 healthy GPUs; n1 takes nothing new.
  EXPECT_FALSE(pool.Find(Gpus(7), 0, kEnd));
  auto p = pool.Find(Gpus(6), 0, kEnd);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->nodes[0].gpus & 0b11u, 0u);
}

TEST(PlacementTest, GangGoesToTheTightestBlock) {
  // Block b0: 4 empty nodes; block b1: 2 empty nodes. A 2-node gang takes b1 (2 candidates
  // beats 4), keeping b0 whole for a bigger gang.
  ClusterBuilder c;
  for (int i = 0; i < 4; ++i)
    c.Add(MakeNode("a" + std::to_string(i)).Block("b0"));
  for (int i = 0; i < 2; ++i)
    c.Add(MakeNode("b" + std::to_string(i)).Block("b1"));
  const Snapshot s = c.Build();
  NodePool pool(s);
  auto p = pool.Find(Gpus(8, 2), 0, kEnd);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->nodes.size(), 2u);
  EXPECT_EQ(s.blocks[s.nodes[p->nodes[0].node].block].name, "b1");
  EXPECT_EQ(s.blocks[s.nodes[p->nodes[1].node].block].name, "b1");
  pool.Commit(*p);
  // 4 nodes remain, all in b0.
  EXPECT_TRUE(pool.Find(Gpus(8, 4, api::Topology::kBlock), 0, kEnd));
}

TEST(PlacementTest, TopologyBlockIsAllOrNothing) {
  // Two blocks of 2 nodes: a 3-node gang fits across blocks (any), not inside one (block).
  ClusterBuilder c;
  for (int i = 0; i < 4; ++i)
    c.Add(MakeNode("n" + std::to_string(i)).Block(i < 2 ? "b0" : "b1"));
  const Snapshot s = c.Build();
  NodePool pool(s);
  EXPECT_FALSE(pool.Find(Gpus(8, 3, api::Topology::kBlock), 0, kEnd));
  EXPECT_TRUE(pool.Find(Gpus(8, 3, api::Topology::kSite), 0, kEnd));
  EXPECT_TRUE(pool.Find(Gpus(8, 3, api::Topology::kAny), 0, kEnd));
}

TEST(PlacementTest, OnlyTheRequestedGpuType) {
  const Snapshot s = ClusterBuilder()
                         .GpuType("h100", 1.0)
                         .GpuType("b200", 2.0)
                         .Add(MakeNode("h").Type("h100"))
                         .Add(MakeNode("b").Type("b200"))
                         .Build();
  NodePool pool(s);
  auto p = pool.Find(Gpus(8), 1, kEnd);
  ASSERT_TRUE(p);
  EXPECT_EQ(s.nodes[p->nodes[0].node].name, "b");
  EXPECT_EQ(pool.FreeOfType(0), 8);
}

TEST(PlacementTest, PrefersNvlinkConnectedGpus) {
  // Links: 0-1, 2-3, 4-5, 6-7 and 3-4. GPUs 0 and 2 are busy.
  // Free: 1, 3, 4, 5, 6, 7. For 2 GPUs the lowest connected pair among free ones: 3-4.
  const GpuMask free = 0b1111'1010;
  std::vector<GpuMask> links(8, 0);
  auto link = [&](int a, int b) {
    links[a] |= GpuMask{1} << b;
    links[b] |= GpuMask{1} << a;
  };
  link(0, 1);
  link(2, 3);
  link(4, 5);
  link(6, 7);
  link(3, 4);
  EXPECT_EQ(ChooseGpus(free, 2, links), 0b0001'1000u);
  // 3 GPUs: 3-4-5 has 2 links, better than any other triple.
  EXPECT_EQ(ChooseGpus(free, 3, links), 0b0011'1000u);
  // Without link information: the lowest free indices 1 and 3.
  EXPECT_EQ(ChooseGpus(free, 2, {}), 0b0000'1010u);
}

TEST(PlacementTest, ReservedGpusOnlyForJobsEndingBeforeTheReservation) {
  const Snapshot s = ClusterBuilder().Add(MakeNode("n0")).Build();
  NodePool pool(s);
  // 6 of 8 GPUs held from t0 + 2h for job 99: usable 8 - 6 = 2.
  pool.Reserve(0, 6, kT0 + Seconds(7200), JobId(99));
  EXPECT_EQ(pool.UsableGpus(0), 2);
  EXPECT_TRUE(pool.Find(Gpus(2), 0, kT0 + Seconds(36000)));
  // 4 GPUs: only when the job is over by t0 + 2h.
  EXPECT_FALSE(pool.Find(Gpus(4), 0, kT0 + Seconds(7201)));
  EXPECT_TRUE(pool.Find(Gpus(4), 0, kT0 + Seconds(7200)));
  EXPECT_TRUE(pool.Find(Gpus(4), 0, kT0 + Seconds(36000), /*respect_reservations=*/false));
}

TEST(PlacementTest, LabelsFilterNodes) {
  const Snapshot s = ClusterBuilder()
                         .Add(MakeNode("plain"))
                         .Add(MakeNode("ib").Label("infiniband"))
                         .Add(MakeJob(1).Label("infiniband"))
                         .Build();
  NodePool pool(s);
  auto p = pool.Find(ShapeOf(s.pending[0]), 0, kEnd);
  ASSERT_TRUE(p);
  EXPECT_EQ(s.nodes[p->nodes[0].node].name, "ib");
}

}  // namespace
}  // namespace gsched::core

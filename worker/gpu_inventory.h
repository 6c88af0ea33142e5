// GPU inventory and health of one worker node: parsing `nvidia-smi` output (query CSV, `topo -m`
// matrix, health query), the `fake` inventory of config for development, simulation and CI, and
// fault injection through the fake inventory's `fault_file`.
//
// Parsing functions are pure: they take the text a command printed and return values or a
// `Status` naming the offending line. Running the command is `RunNvidiaSmi`'s job, kept apart so
// that tests feed recorded outputs.
//
// Threading: stateless.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/worker_config.h"
#include "scheduler/api/types.h"
#include "scheduler/api/worker_messages.h"
#include "scheduler/common/status.h"
#include "worker/command.h"

namespace gsched::worker {

struct GpuInventory {
  std::vector<api::Gpu> gpus;
  // Unordered pairs (a < b) of GPU indices joined by NVLink, sorted.
  std::vector<std::pair<int32_t, int32_t>> nvlink_pairs;
  // PCI bus ids by GPU index, when known (nvidia-smi discovery).
  std::map<int32_t, std::string> pci_bus_ids;
};

// Maps an `nvidia-smi` product name to a gsched GPU type: "NVIDIA H100 80GB HBM3" -> "h100",
// "NVIDIA B200" -> "b200", "NVIDIA RTX PRO 6000 Blackwell Server Edition" -> "rtx-pro-6000".
// Unknown names become the lowercased name with "nvidia " dropped and every run of characters
// other than [a-z0-9] replaced by one '-'.
std::string GpuTypeFromName(std::string_view product_name);

// Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id
// --format=csv,noheader,nounits`. Every line must have 5 fields, an integer index and memory.
Result<GpuInventory> ParseGpuQuery(std::string_view csv);

// Parses the matrix of `nvidia-smi topo -m` and returns the NVLink pairs among GPUs: a cell "NV#"
// (NV1..NV18) joins the pair; X, PIX, PXB, PHB, NODE, SYS and SOC do not.
Result<std::vector<std::pair<int32_t, int32_t>>> ParseTopologyMatrix(std::string_view text);

// The fake inventory of `config`: `count` GPUs of `type` with UUIDs "GPU-fake-<node>-<i>".
GpuInventory MakeFakeInventory(const config::FakeGpuConfig& config, std::string_view node);

// The health of one GPU as observed by a check.
struct GpuObservation {
  int32_t index = 0;
  bool present = true;
  std::optional<int32_t> xid;
  int64_t ecc_uncorrected = 0;
};

// Parses a fault file: one line per GPU, "3 xid 79", "3 gone", "3 ecc 2" or "3 ok"; '#' starts a
// comment; the last line about a GPU wins. A bad line is an error naming its line number.
Result<std::map<int32_t, GpuObservation>> ParseFaultFile(std::string_view text);

// Parses `nvidia-smi --query-gpu=index,ecc.errors.uncorrected.volatile.total
// --format=csv,noheader,nounits` ("[N/A]" counts as 0).
Result<std::map<int32_t, GpuObservation>> ParseHealthQuery(std::string_view csv);

// Health of every GPU of `inventory` given the observations: a GPU missing from `observed`
// (`present_by_default` false, the nvidia-smi case) or marked gone, with an XID or uncorrected ECC
// errors is unhealthy, with a message saying why.
std::vector<api::GpuHealthEntry> EvaluateHealth(const GpuInventory& inventory,
                                                const std::map<int32_t, GpuObservation>& observed,
                                                bool present_by_default);

// Discovers the real inventory with `nvidia_smi` (query + topo).
Result<GpuInventory> DiscoverNvidiaGpus(const std::string& nvidia_smi);

// One health check: the fault file for the fake inventory, nvidia-smi otherwise.
Result<std::vector<api::GpuHealthEntry>> CheckGpuHealth(const config::GpuConfig& config,
                                                        const GpuInventory& inventory);

}  // namespace gsched::worker

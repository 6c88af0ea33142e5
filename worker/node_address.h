// The address a node tells the scheduler it can be reached at (`hello.address`, the gang's
// `MASTER_ADDR` when the node is rank 0).
#pragma once

#include <string>

#include "scheduler/common/status.h"

namespace gsched::worker {

// The local address this host would use to reach the scheduler at `scheduler_url`: the address of
// the interface on the route to it, as the kernel chooses (a UDP socket is connected, which sends
// nothing). On a cluster, that is the node's address on the network the scheduler sees.
Result<std::string> AddressTowards(const std::string& scheduler_url);

}  // namespace gsched::worker

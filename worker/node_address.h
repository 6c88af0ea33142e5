// The address a node tells the scheduler it can be reached at (`hello.address`, the gang's
// `MASTER_ADDR` when the node is rank 0).
#pragma once

#include <string>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched::worker {

// The local address this host would use to reach the scheduler at `scheduler_url`: the address of
// the interface on the route to it, as the kernel chooses (a UDP socket is connected, which sends
// nothing). On a cluster, that is the node's address on the network the scheduler sees.
Result<std::string> AddressTowards(const std::string& scheduler_url);
// The same towards the first of several schedulers (a high-availability group) that has a route;
// the last error when none has.
Result<std::string> AddressTowards(const std::vector<std::string>& scheduler_urls);

}  // namespace gsched::worker

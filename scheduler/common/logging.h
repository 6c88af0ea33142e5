// Logging set-up: one call at the start of each binary. Code logs through spdlog's default logger;
// libraries never configure it. Threading: call `SetupLogging` before starting threads.
#pragma once

#include <string_view>

#include "scheduler/common/status.h"

namespace gsched {

// `level` is one of trace, debug, info, warn, error, off. Logs go to stderr with a UTC timestamp,
// the level and the program's name.
Status SetupLogging(std::string_view program, std::string_view level);

}  // namespace gsched

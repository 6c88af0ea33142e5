// `RunCli`: the whole `gsched` command line in one function, so that tests run it in-process with
// their own streams, environment and clock; `main` only calls it. CLI11 is included in cli.cpp
// and nowhere else.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "client/commands.h"

namespace gsched::client {

// `args` excludes the program name. Returns the exit code (see commands.h).
int RunCli(std::vector<std::string> args, std::ostream& out, std::ostream& err, const Env& env);

// The environment of this process, for `Env::vars`.
EnvVars ProcessEnvironment();

}  // namespace gsched::client

// `gsched-worker`: the worker agent (DESIGN.md section 6). `gsched-worker --shim ...` is the
// per-job supervisor shim (runtime.h) and is handled before anything else is set up.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "worker/runtime.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--shim")
    return gsched::worker::RunShim(std::vector<std::string>(argv + 2, argv + argc));
  CLI::App app("gsched worker agent");
  CLI11_PARSE(app, argc, argv);
  return 0;
}

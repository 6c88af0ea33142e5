// The `gsched` CLI. Everything is in `RunCli` (cli.h) so that tests can run it in-process.
#include <iostream>

#include "client/cli.h"

int main(int argc, char** argv) {
  gsched::client::Env env;
  env.vars = gsched::client::ProcessEnvironment();
  std::vector<std::string> args(argv + 1, argv + argc);
  return gsched::client::RunCli(std::move(args), std::cout, std::cerr, env);
}

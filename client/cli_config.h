// Where the CLI finds its server and token, in order of precedence:
//   1. flags: `--server URL`, `--token TOKEN`, `--token-file FILE`, `--config FILE`;
//   2. environment: `GSCHED_SERVER`, `GSCHED_TOKEN` (the token itself), `GSCHED_TOKEN_FILE`,
//      `GSCHED_CONFIG` (the config file);
//   3. the config file, `$XDG_CONFIG_HOME/gsched/config.yaml` or else
//      `$HOME/.config/gsched/config.yaml`:
//
//        server: https://gsched.example.org:8443  # or several: a list, or "URL,URL"
//        token_file: ~/.config/gsched/token   # relative paths are relative to this file
//        ca_file: /etc/ssl/certs/gsched-ca.pem
//        image: /images/pytorch-24.10          # default image for `gsched submit`
//        timeout: 30s
//        partitions:                            # `#SBATCH --partition` -> GPU types
//          gpu: [h100, h200]
//          a100q: a100
//
// `--server`, `GSCHED_SERVER` and `server:` take one URL or the URLs of every scheduler of a
// high-availability group, comma-separated (`server:` also as a YAML sequence); requests go to the
// leader among them (api_client.h).
//
// A missing default config file is fine; a missing file named by `--config` or `GSCHED_CONFIG`,
// or a bad one, is an error (exit code 2). The environment is passed in (tests set `HOME`).
//
// Threading: stateless.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"

namespace gsched::client {

struct ConfigFlags {
  std::optional<std::string> server;
  std::optional<std::string> token;
  std::optional<std::string> token_file;
  std::optional<std::string> ca_file;
  std::optional<std::string> config;
};

struct CliConfig {
  std::string server;                // As given ("URL" or "URL,URL"); empty: not configured.
  std::vector<std::string> servers;  // Its URLs, in order (not validated yet).
  std::string token;                 // Empty: none.
  std::string ca_file;
  std::string image;  // Default image for `submit`.
  Duration timeout = Seconds(30);
  std::map<std::string, std::vector<std::string>> partitions;
  std::string config_path;    // The file that was read, or empty.
  std::string server_source;  // "--server", "GSCHED_SERVER", the config path: for messages.
};

using EnvVars = std::map<std::string, std::string>;

// The default config file path from `XDG_CONFIG_HOME` or `HOME`; empty when neither is set.
std::string DefaultConfigPath(const EnvVars& env);

Result<CliConfig> ResolveConfig(const ConfigFlags& flags, const EnvVars& env);

}  // namespace gsched::client

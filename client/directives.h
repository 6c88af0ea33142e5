// Submission options of `gsched submit`, from flags or from a job script's `#GSCHED` and `#SBATCH`
// lines, and how they become a `JobSpec`.
//
// One table of gsched options (`GschedOptionTable`) defines both the `submit` flags and what a
// `#GSCHED` line accepts, so the two cannot drift apart. `#SBATCH` lines are read with a second
// table that maps Slurm's spelling onto the same `SubmitOptions`.
//
// Decisions (also in `gsched submit --help`):
//   - The script's text is shipped in the spec, because the submit host's file is not visible
//   inside
//     the job's image: `command = [INTERPRETER..., "-c", SCRIPT_TEXT, SCRIPT_NAME, ARGS...]`, where
//     the interpreter comes from the shebang (`#!/bin/bash`, `#!/usr/bin/env bash`) and is
//     `/bin/sh` without one. Only shell interpreters are accepted (`-c` means "run this text" for
//     them); a Python shebang is an error that says to submit `-- python3 train.py` instead.
//   - `--time UNLIMITED` / `INFINITE` is rejected: backfill needs an end time. Leaving `--time` out
//     gives the priority class's default.
//   - A gsched `--time` takes a unit or colon form ("4h", "90m", "1-12:00:00"); a bare number is
//     rejected as ambiguous (Slurm reads minutes, `ParseDuration` seconds). `#SBATCH --time` keeps
//     Slurm's meaning: a bare number is minutes.
//   - `--qos`: high -> high; normal, standard -> normal; low, scavenger, standby, preempt,
//     preemptible -> preemptible; any other value is an error.
//   - `--output` / `--error` paths are not used (the worker captures stdout and stderr; read them
//     with `gsched logs`): a warning says so.
//   - `--signal=[B:|R:]SIG@SECS` sets `checkpoint_signal` and `grace_period_s` (<= 3600).
//   - Directives end at the first line that is neither blank nor a comment, as in Slurm.
//
// Threading: stateless.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/common/status.h"

namespace gsched::client {

// Each field is set only when an option set it, so that flags can override a script.
struct SubmitOptions {
  std::optional<std::string> name;
  std::optional<std::string> account;
  std::optional<std::string> image;
  std::optional<std::string> workdir;
  std::optional<int32_t> nodes;
  std::optional<int32_t> gpus_per_node;
  std::optional<std::vector<std::string>> gpu_type;
  std::optional<int32_t> cpus_per_node;
  std::optional<int64_t> memory_mib_per_node;
  std::optional<int64_t> time_limit_s;
  std::optional<api::PriorityClass> priority_class;
  std::optional<api::Topology> topology;
  std::optional<std::string> array;
  std::optional<std::vector<api::Dependency>> depends_on;
  std::optional<std::string> checkpoint_signal;
  std::optional<int32_t> grace_period_s;
  std::optional<bool> requeue;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> labels;
};

// `over`'s set fields replace `base`'s; `env` and `labels` merge key by key with `over` winning.
SubmitOptions MergeOptions(SubmitOptions base, const SubmitOptions& over);

// What the parser needs from outside: the CLI config's partition map and the submit environment
// (for `--export=VAR`).
struct DirectiveContext {
  std::map<std::string, std::vector<std::string>> partitions;
  std::function<std::optional<std::string>(const std::string&)> getenv;
};

// One option of `gsched submit` / `#GSCHED`.
struct GschedOption {
  std::string_view long_name;  // "--gpus"
  char short_name;             // 'e', or 0
  bool takes_value;
  bool repeatable;
  std::string_view value_name;  // "N", "DURATION", ...
  std::string_view help;
};
std::span<const GschedOption> GschedOptionTable();

// Applies one gsched option (`--gpus`, "8") to `options`. `value` is ignored for flags.
Status ApplyGschedOption(std::string_view long_name, std::string_view value,
                         const DirectiveContext& context, SubmitOptions& options);

struct ParsedScript {
  SubmitOptions options;
  std::vector<std::string> warnings;  // "job.sh:7: #SBATCH --mail-user is not supported; ignored"
  // Shebang interpreter argv: {"/bin/bash"} or {"/usr/bin/env", "bash"}; {"/bin/sh"} without one.
  std::vector<std::string> interpreter;
};

// Parses the directives of a script named `source_name` (for messages). Bad values are errors
// "SOURCE:LINE: --time: invalid duration '1-25:00'".
Result<ParsedScript> ParseScript(std::string_view text, std::string_view source_name,
                                 const DirectiveContext& context);

// The `command` that runs `script_text` inside the job: see the header comment.
std::vector<std::string> ScriptCommand(const ParsedScript& parsed, std::string_view script_text,
                                       std::string_view script_name,
                                       const std::vector<std::string>& args);

// Builds the spec from options on top of the spec defaults. `command` must be set by the caller.
api::JobSpec BuildJobSpec(const SubmitOptions& options, std::vector<std::string> command);

// Splits a directive's arguments like a shell would for simple cases: whitespace separates,
// single and double quotes group, a word starting with `#` ends the line.
Result<std::vector<std::string>> SplitDirectiveWords(std::string_view text);

}  // namespace gsched::client

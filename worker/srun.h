// `srun` inside a job (DESIGN.md section 6): a POSIX shell script the worker writes to
// `work_dir/bin/srun` (root's, read-only for jobs) and puts first on every job's PATH - mounted
// read-only at `/gsched-bin` in containers, the host directory itself for `process` jobs. It needs
// only a POSIX shell in the image.
//
// `srun [--ntasks-per-node=N | -n N] [--gpus-per-task=G] [--] COMMAND...` runs COMMAND on the node
// where it is called, once per task: `--ntasks-per-node` (default `$SLURM_NTASKS_PER_NODE`, else
// 1), or `-n` tasks divided over the job's nodes (the first `n % nodes` nodes take one more).
// Each task gets SLURM_PROCID / RANK (global), SLURM_LOCALID / LOCAL_RANK (on this node),
// SLURM_NTASKS, and with `--gpus-per-task` its own slice of the node's GPUs in
// CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES. It waits for every task and exits with the
// first failure in task order (ending the tasks still running once it sees it). Options it cannot
// honour (other nodes, other resources) are refused with a message, never silently ignored; a few
// that change nothing here (`--mpi`, `--label`, `--unbuffered`, `--export`, `--cpu-bind`) are
// accepted.
//
// Unlike Slurm, the batch script itself runs once on every node of the gang, so `srun` starts
// only this node's tasks.
#pragma once

#include <string>
#include <string_view>

#include "scheduler/common/status.h"

namespace gsched::worker {

// Where jobs in containers find it.
inline constexpr std::string_view kSrunMountPoint = "/gsched-bin";

// The script.
std::string_view SrunScript();

// Writes the script to `dir/srun` (mode 0755; `dir` made 0755): the worker does it at start, so
// that the launcher always matches the worker.
Status InstallSrun(const std::string& dir);

}  // namespace gsched::worker

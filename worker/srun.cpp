#include "worker/srun.h"

#include <filesystem>

#include "worker/job_files.h"

namespace gsched::worker {

Status InstallSrun(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
  RETURN_IF_ERROR(MakeDirectory(dir, 0755));
  return WriteFileAtomic(dir + "/srun", SrunScript(), 0755);
}

std::string_view SrunScript() {
  return R"SRUN(#!/bin/sh
# srun for gsched jobs: runs COMMAND once per task on this node (the batch script itself runs
# once on every node of the job). Written by gsched-worker; see `srun --help`.
set -u
prog=srun
# Only the shell itself: images may have nothing else.
default_ifs=$IFS
usage() {
  echo "usage: srun [--ntasks-per-node=N | -n N] [--gpus-per-task=G] [--] COMMAND [ARGS...]"
  echo "Runs COMMAND once per task on this node. Tasks get SLURM_PROCID/RANK, SLURM_LOCALID/"
  echo "LOCAL_RANK, SLURM_NTASKS, and with --gpus-per-task their own GPUs. In gsched the batch"
  echo "script runs on every node of the job, so srun starts this node's tasks only."
}
die() { echo "$prog: $*" >&2; exit 2; }
is_count() { case "$1" in ''|*[!0-9]*) return 1 ;; *) [ "$1" -gt 0 ] ;; esac; }

# Defaults from the job's #SBATCH --ntasks-per-node / --ntasks; flags override them.
per_node=${SLURM_NTASKS_PER_NODE:-}
ntasks=${SLURM_NTASKS:-}
gpus_per_task=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --ntasks-per-node=*) per_node=${1#*=} ;;
    --ntasks-per-node) [ $# -ge 2 ] || die "$1 needs a value"; shift; per_node=$1 ;;
    --ntasks=*) ntasks=${1#*=}; per_node= ;;
    -n|--ntasks) [ $# -ge 2 ] || die "$1 needs a value"; shift; ntasks=$1; per_node= ;;
    -n*) ntasks=${1#-n}; per_node= ;;
    --gpus-per-task=*) gpus_per_task=${1#*=} ;;
    --gpus-per-task) [ $# -ge 2 ] || die "$1 needs a value"; shift; gpus_per_task=$1 ;;
    -N|--nodes)
      [ $# -ge 2 ] || die "$1 needs a value"; shift
      [ "$1" = "${SLURM_NNODES:-1}" ] || die "the job has ${SLURM_NNODES:-1} node(s): a step cannot use $1" ;;
    --nodes=*)
      [ "${1#*=}" = "${SLURM_NNODES:-1}" ] || die "the job has ${SLURM_NNODES:-1} node(s): a step cannot use ${1#*=}" ;;
    --mpi=*|--export=*|--cpu-bind=*|--cpu_bind=*|-l|--label|-u|--unbuffered|--kill-on-bad-exit|--kill-on-bad-exit=*) ;;
    --) shift; break ;;
    -*) die "option $1 is not supported inside gsched jobs (supported: --ntasks-per-node, -n/--ntasks, --gpus-per-task)" ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || { usage >&2; exit 2; }

nodes=${SLURM_NNODES:-1}
node=${SLURM_NODEID:-0}
if [ -n "$per_node" ]; then
  is_count "$per_node" || die "--ntasks-per-node must be a positive number, not '$per_node'"
  first=$((node * per_node))
  total=$((nodes * per_node))
elif [ -n "$ntasks" ]; then
  is_count "$ntasks" || die "-n must be a positive number, not '$ntasks'"
  base=$((ntasks / nodes))
  extra=$((ntasks % nodes))
  if [ "$node" -lt "$extra" ]; then
    per_node=$((base + 1))
    first=$((node * (base + 1)))
  else
    per_node=$base
    first=$((extra * (base + 1) + (node - extra) * base))
  fi
  total=$ntasks
else
  per_node=1
  first=$node
  total=$nodes
fi
if [ -n "$gpus_per_task" ]; then
  is_count "$gpus_per_task" || die "--gpus-per-task must be a positive number, not '$gpus_per_task'"
  have=0
  IFS=,
  for g in ${CUDA_VISIBLE_DEVICES:-}; do have=$((have + 1)); done
  IFS=$default_ifs
  [ $((per_node * gpus_per_task)) -le "$have" ] ||
    die "$per_node task(s) x $gpus_per_task GPU(s) need more than this node's $have GPU(s)"
fi
[ "$per_node" -gt 0 ] || exit 0

# The GPUs of local task $1: its slice of CUDA_VISIBLE_DEVICES.
gpus_of() {
  from=$(($1 * gpus_per_task))
  k=0
  out=
  IFS=,
  for g in ${CUDA_VISIBLE_DEVICES:-}; do
    if [ "$k" -ge "$from" ] && [ "$k" -lt $((from + gpus_per_task)) ]; then
      out=${out:+$out,}$g
    fi
    k=$((k + 1))
  done
  IFS=$default_ifs
  printf '%s' "$out"
}

pids=
i=0
while [ "$i" -lt "$per_node" ]; do
  (
    SLURM_PROCID=$((first + i)); RANK=$SLURM_PROCID
    SLURM_LOCALID=$i; LOCAL_RANK=$i
    SLURM_NTASKS=$total; SLURM_STEP_NUM_TASKS=$total; SLURM_NTASKS_PER_NODE=$per_node
    LOCAL_WORLD_SIZE=$per_node
    export SLURM_PROCID RANK SLURM_LOCALID LOCAL_RANK SLURM_NTASKS SLURM_STEP_NUM_TASKS \
      SLURM_NTASKS_PER_NODE LOCAL_WORLD_SIZE
    if [ -n "$gpus_per_task" ]; then
      CUDA_VISIBLE_DEVICES=$(gpus_of "$i")
      NVIDIA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES
      export CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES
    fi
    exec "$@"
  ) &
  pids="$pids $!"
  i=$((i + 1))
done

status=0
for p in $pids; do
  wait "$p"
  s=$?
  if [ "$s" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$s
    echo "$prog: a task exited with status $s; ending the others" >&2
    for q in $pids; do kill "$q" 2>/dev/null; done
  fi
done
exit "$status"
)SRUN";
}

}  // namespace gsched::worker

#!/usr/bin/env bash
# The contended fair-share workload of README's simulator section: 51,000 synthetic jobs over
# about a day on 5,000 H100 GPUs (offered load 2.18 x the cluster), every even-numbered job of the
# `heavy` account and the others spread over light-1..7 in turn. Writes the trace to $1 (default
# contended.csv); replay it with
#   gsched-sim --cluster sim/examples/cluster-5k.yaml --accounts sim/examples/accounts-contended.yaml \
#              --trace contended.csv --policy fairshare|fifo|sjf-oracle --out DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-contended.csv}
sim=${GSCHED_SIM:-build/bin/gsched-sim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$sim" --cluster sim/examples/cluster-5k.yaml --synthetic 51000 --load 2.18 --seed 1 \
  --write-trace "$tmp/raw.csv" --no-replay --out "$tmp/run"
# Columns: submit_s,duration_s,gpus,nodes,gpu_type,account,user,time_limit_s,class
awk -F, -v OFS=, 'NR == 1 { print; next }
  { k = NR - 2; $6 = (k % 2 == 0) ? "heavy" : "light-" (int(k / 2) % 7 + 1); print }' \
  "$tmp/raw.csv" >"$out"
echo "wrote $out"

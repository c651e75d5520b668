#!/usr/bin/env bash
# On the GPU host: the fully sharded path at a world of one (NCCL communicator, parameters
# gathered per block and freed, gradients reduce-scattered) against the unsharded trainer, in one
# sitting. For each variant and round it trains experiments/gpu-125m.json for `steps` steps:
#   none   plain `moda train` (the unsharded trainer)
#   zero3  `mpirun -np 1 moda train --set parallel.sharding=full` (MPI bootstrap + NCCL)
#   zero2  the same with parallel.reshard_after_forward=false (no re-gather in backward)
# and prints, per run, the median tokens/s over the logged steps after the first, and the
# largest relative difference of the logged losses from the unsharded run's.
#   bash tools/gpu-sharded-world1-bench.sh BUILD_DIR [steps] [rounds] > table.txt
# Needs runs/demo/data (carried).
set -uo pipefail
build=${1:-build-gpu} steps=${2:-40} rounds=${3:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() {  # run NAME VARIANT none|zero3|zero2
  local name=$1 v=$2 mode=$3 launch=() sets=()
  if [ "$mode" != none ]; then
    launch=(mpirun -np 1 --bind-to none)
    sets=(--set parallel.sharding=full --set parallel.reshard_after_forward=$([ "$mode" = zero3 ] && echo true || echo false))
  fi
  rm -rf "runs/w1-$name"
  "${launch[@]}" "$build/moda" train --config experiments/gpu-125m.json --set model.variant="$v" \
    --set train.steps="$steps" --set train.eval_every=0 --set train.log_every=5 "${sets[@]}" \
    --run-dir "runs/w1-$name" > "runs/w1-$name.log" 2>&1 || { echo "run $name failed:"; tail -5 "runs/w1-$name.log"; }
}
summary() {  # summary NAME BASE_NAME
  python3 - "runs/w1-$1/metrics.jsonl" "runs/w1-$2/metrics.jsonl" "$1" <<'PY'
import json, statistics, sys
def rows(p): return [j for j in map(json.loads, open(p)) if "tokens_per_s" in j]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
tps = statistics.median(r["tokens_per_s"] for r in a[1:])
diff = max(abs(x["loss"] - y["loss"]) / abs(y["loss"]) for x, y in zip(a, b))
mem = a[-1].get("peak_reserved_gib", 0)
print(f"{sys.argv[3]:<28} tokens/s {tps:>10.0f}  max rel loss diff vs none {diff:.2e}  "
      f"peak reserved {mem:.1f} GiB  sharding {a[-1].get('sharding')}")
PY
}
for r in $(seq 1 "$rounds"); do
  for v in sequence depth_kv_ffn; do
    for mode in none zero3 zero2; do run "$mode-$v-$r" "$v" "$mode"; done
    for mode in none zero3 zero2; do summary "$mode-$v-$r" "none-$v-$r"; done
  done
done

#!/usr/bin/env bash
# On the GPU host: tokens/s of two builds in one sitting, e.g. before and after a refactor.
#   bash tools/gpu-ab-train-bench.sh BASE_BUILD_DIR NEW_BUILD_DIR [steps] [rounds]
# Each round trains experiments/gpu-125m.json for `steps` steps per variant with the base binary,
# then the new one (alternating, so drift in clocks or temperature hits both), and prints the
# tokens/s of the last logged step of each run. Needs runs/demo/data (carried).
set -uo pipefail
base=$1 new=$2 steps=${3:-40} rounds=${4:-2}
for r in $(seq 1 "$rounds"); do
  for v in sequence depth_kv_ffn; do
    for which in base new; do
      dir=$([ "$which" = base ] && echo "$base" || echo "$new")
      rm -rf "runs/ab-$which-$v"
      line=$("$dir/moda" train --config experiments/gpu-125m.json --set model.variant=$v --set train.steps=$steps \
        --set train.eval_every=0 --set train.log_every=10 --run-dir "runs/ab-$which-$v" 2>&1 | grep -E "step .*/" | tail -1)
      tps=$(echo "$line" | sed -E 's/.*\| ([0-9]+) tok\/s.*/\1/')
      echo "round $r variant $v build $which tokens_per_s $tps"
    done
  done
done

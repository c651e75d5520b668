#!/usr/bin/env bash
# On the GPU host: trains experiments/gpu-125m.json for a few dozen steps per variant and prints
# tokens/s, MFU and peak memory (docs/benchmarks-training.md). Needs runs/demo/data (carried).
# Usage: [EXTRA="--set train.micro_batch=32"] bash tools/gpu-train-bench.sh [steps] [variants...]
set -uo pipefail
steps=${1:-60}; shift || true
variants=${*:-sequence depth_kv_ffn}
for v in $variants; do
  rm -rf "runs/bench-$v"
  echo "== $v"
  build-gpu/moda train --config experiments/gpu-125m.json --set model.variant=$v --set train.steps=$steps \
    --set train.eval_every=0 --set train.log_every=10 ${EXTRA:-} --run-dir "runs/bench-$v" 2>&1 \
    | grep -E "step .*/|peak|model|eval at|error" | tail -6
done

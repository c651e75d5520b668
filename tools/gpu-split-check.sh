#!/usr/bin/env bash
# GPU sitting 2026-12-03 b: build, attention l0 tests (split cuDNN + depth), depth_kv_ffn training moda vs auto.
set -uo pipefail
source tools/gpu-host-env.sh
b=/tmp/build-gpu
bash tools/gpu-host-build.sh $b moda moda_tests_gpu 2>&1 | tail -3
timeout 150 $b/tests/moda_tests_gpu "attention l0*" 2>&1 | tail -30
for mode in moda auto; do
  rm -rf /tmp/mt
  timeout 100 $b/moda train --config experiments/gpu-125m.json --set model.variant=depth_kv_ffn --set train.steps=30 \
    --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" --set train.attention_l0=$mode \
    --run-dir /tmp/mt 2>&1 | grep -E "step +30/|attention L=|error|rror" | cut -c26-300 | sed "s/^/$mode /"
  cp /tmp/mt/metrics.jsonl $OUT/split-dkf-$mode.jsonl 2>/dev/null
done

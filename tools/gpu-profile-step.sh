#!/usr/bin/env bash
# On the GPU host: per-kernel GPU time of a few training steps of experiments/gpu-125m.json, read
# with Nsight Compute (only the duration metric, so the replay cost stays small), summed by kernel
# name. Comparing the sum with the step time from `moda train` shows how much is host overhead.
# Usage: bash tools/gpu-profile-step.sh [variant] [skip-kernels] [count]
set -uo pipefail
variant=${1:-sequence}; skip=${2:-4000}; count=${3:-2500}
rm -rf runs/profile
ncu --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip "$skip" --launch-count "$count" \
  build-gpu/moda train --config experiments/gpu-125m.json --set model.variant="$variant" --set train.steps=4 \
  --set train.eval_every=0 --set train.checkpoint_every=0 --run-dir runs/profile > runs/profile.csv 2> runs/profile.err
python3 tools/ncu_summary.py runs/profile.csv

#!/usr/bin/env bash
# On the GPU host: per-kernel GPU time of ONE training step (step 3 of 4: warmed up, plans and
# autotuning done) of experiments/gpu-125m.json or another config, read with Nsight Compute (only
# the duration metric, so the replay cost stays small) and summed by kernel name. The trainer
# marks each step with an NVTX range "step N" (core/nvtx.h), which selects exactly its kernels.
# Comparing the sum with the step time from `moda train` shows how much is host overhead.
# Usage: [MODA=build-gpu/moda] [CONFIG=experiments/gpu-125m.json] [EXTRA="--set K=V ..."]
#        bash tools/gpu-profile-step.sh [variant] [step]
set -uo pipefail
variant=${1:-sequence}; step=${2:-3}
moda=${MODA:-build-gpu/moda}; config=${CONFIG:-experiments/gpu-125m.json}
rm -rf runs/profile
ncu --clock-control none --metrics gpu__time_duration.sum --csv --nvtx --nvtx-include "step $step/" \
  "$moda" train --config "$config" --set model.variant="$variant" --set train.steps=$((step + 1)) ${EXTRA:-} \
  --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" --run-dir runs/profile > runs/profile.csv 2> runs/profile.err
python3 tools/ncu_summary.py runs/profile.csv

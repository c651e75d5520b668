#!/usr/bin/env bash
# MoDA attention benchmark on the GPU host: our kernels (`moda bench attention --json`) and torch's
# flash SDPA in one combined table (bench/attention_baseline.py). Usage:
#   source tools/gpu-host-env.sh && bash tools/gpu-host-build.sh build-gpu moda
#   bash bench/run_attention_bench.sh [build-gpu/moda] [--cases all|table2|lm] [--iters 10]
set -euo pipefail
moda=${1:-build-gpu/moda}; shift || true
exec python3 "$(dirname "$0")/attention_baseline.py" --moda "$moda" "$@"

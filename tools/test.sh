#!/usr/bin/env bash
# Sets up, builds and runs the tests that need no GPU (CTest label `cpu`). On a machine with a GPU,
# `ctest --test-dir build -L gpu` runs the CPU-vs-CUDA tests as well.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
ctest --test-dir build -L cpu --output-on-failure -j "$(nproc)"

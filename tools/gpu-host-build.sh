#!/usr/bin/env bash
# Build moda on the GPU host (Ubuntu 24.04, CUDA 13, 16 cores) with Debian 12's packages carried
# in .deps/ (tools/fetch-gpu-deps.sh makes it). Usage:
#   source tools/gpu-host-env.sh && bash tools/gpu-host-build.sh [build-dir] [targets...]
#   build-gpu/tests/moda_tests_gpu "[attention]"; build-gpu/moda bench ops
set -uo pipefail
source "$(dirname "$0")/gpu-host-env.sh"
build=${1:-build-gpu}; shift || true
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/tmp/deps/usr \
  -DCMAKE_CUDA_ARCHITECTURES=90a > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
targets=(); for t in "$@"; do targets+=(--target "$t"); done
if ! cmake --build "$build" -j 16 "${targets[@]}" > "$build.log" 2>&1; then
  grep -E "error|Error|undefined reference" -A4 "$build.log" | head -120
  echo "BUILD FAILED (full log: $build.log)"; exit 1
fi
echo "build ok: $build"

#!/usr/bin/env bash
# Build moda on the GPU host (Ubuntu 24.04, g++ 13, CUDA 13, 16 cores) with Debian 12's packages
# carried in .deps/ (tools/fetch-gpu-deps.sh makes it). With no targets it builds EVERY target:
# `moda`, `moda_tests_cpu`, `moda_tests_gpu` and the layer link checks, and fails unless the three
# programs exist afterwards (g++ 13 rejects code that Debian's g++ 12 accepts, so build them all).
# Usage:
#   source tools/gpu-host-env.sh && bash tools/gpu-host-build.sh [build-dir] [targets...]
#   ctest --test-dir build-gpu -L gpu; ctest --test-dir build-gpu -L cpu; build-gpu/moda bench ops
set -uo pipefail
source "$(dirname "$0")/gpu-host-env.sh"
build=${1:-build-gpu}
shift || true
# Catch2 2 from .deps (the host's own Catch2 is v3); find_package(Catch2 2) in tests/ insists.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/tmp/deps/usr \
  -DCMAKE_CUDA_ARCHITECTURES=90a ${MODA_CMAKE_ARGS:-} > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
grep "moda:" "$build.configure.log"
targets=()
for t in "$@"; do targets+=(--target "$t"); done
if ! cmake --build "$build" -j "$(nproc)" "${targets[@]}" > "$build.log" 2>&1; then
  grep -E "error|Error|undefined reference" -A4 "$build.log" | head -120
  echo "BUILD FAILED (full log: $build.log)"
  exit 1
fi
if [ $# -eq 0 ]; then
  for program in moda tests/moda_tests_cpu tests/moda_tests_gpu; do
    [ -x "$build/$program" ] || { echo "BUILD INCOMPLETE: $build/$program missing (is CUDA found?)"; exit 1; }
  done
fi
echo "build ok: $build"

#!/usr/bin/env bash
# Configures and builds moda into build/ (the program lands at build/moda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${MODA_CMAKE_ARGS:-} > build.configure.log 2>&1 \
  || { cat build.configure.log; exit 1; }
grep "moda:" build.configure.log || true
cmake --build build -j "$jobs"

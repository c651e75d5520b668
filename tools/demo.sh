#!/usr/bin/env bash
# The main job on a built-in default. Until the trainer lands: build and run the op benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
build/moda bench ops

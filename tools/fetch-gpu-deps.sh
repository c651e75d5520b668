#!/usr/bin/env bash
# Downloads the Debian 12 packages the GPU host lacks (it has no network) into .deps/, which
# `run` carries and tools/gpu-host-env.sh unpacks there. Run here once per checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps && cd .deps
apt-get download nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 catch2 \
  libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev libopenblas0 libgfortran5 libssl-dev libssl3

#!/usr/bin/env bash
# Installs what moda needs to build on Debian 12 (and Ubuntu). The CUDA toolkit is optional: when
# /usr/local/cuda/bin/nvcc exists the CUDA backend is built too.
set -euo pipefail
# fortunes and jargon-text: the demo corpus (tools/make_demo_corpus.sh), which the CLI test
# tests/cli/sweep_tiny.sh builds. python3-torch: tools/moda_torch.py, which tests/cli/torch_bridge.sh
# holds against moda (torch 1.13 on Debian 12, for /usr/bin/python3).
pkgs=(cmake ninja-build g++ make git clang-format catch2 libspdlog-dev nlohmann-json3-dev libopenblas-dev libssl-dev libopenmpi-dev
      openmpi-bin python3 python3-torch iproute2 fortunes jargon-text)  # iproute2: `ip netns` (tests/cli/mpi_two_hosts.sh); fortunes, jargon-text: the demo corpus
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

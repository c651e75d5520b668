#!/usr/bin/env bash
# GPU-host checks of work built without GPU time (2026-12-02 session), in parts that each fit one
# 10-minute command; run after `source tools/gpu-host-env.sh; bash tools/gpu-host-build.sh
# /tmp/build-gpu` (carry .deps; part `tests` also needs runs/demo/data). Results go to $OUT.
#   tests     every gpu test (new: "decode cuda*" offset kernel and cached decoding vs the full
#             forward, "nn cuda: activation checkpointing*"), then the CPU decode/generate tests
#   generate  moda bench generate, 125M config, batch 1 and 32, prompt 128, 128 new tokens (issue 16)
#   torch     tests/cli/torch_bridge.sh under the host's torch 2.11 (issue 16: torch 2.x, GPU host)
#   ckpt      activation checkpointing none vs block: tokens/s and peak memory, 125M and the 700M
#             shape (issue 15)
#   baseline  bench/torch_train_baseline.py (torch.compile, flash SDPA / FlexAttention) for the 125M
#             config, sequence and depth_kv_ffn, then `moda train` on the same config (issue 15);
#             needs runs/demo/data (carried)
set -uo pipefail
source tools/gpu-host-env.sh
b=/tmp/build-gpu
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
case "${1:-}" in
tests)
  ctest --test-dir $b -L gpu -j2 --timeout 300 --output-on-failure 2>&1 | tail -30
  $b/tests/moda_tests_gpu "decode cuda*" -s 2>&1 | grep -E "rel|err|passed|failed" | tail -20
  ctest --test-dir $b -R "decode|generate|sampling|utf8" 2>&1 | tail -3
  ;;
generate)
  $b/moda bench generate --config experiments/gpu-125m.json --device cuda --batch 1,32 --prompt-len 128 \
    --new-tokens 128 --json | tee $OUT/generate-h200.json
  ;;
torch)
  MODA_TORCH_PYTHON=/opt/torch/.venv/bin/python3 timeout 560 bash tests/cli/torch_bridge.sh $b/moda "$PWD" 2>&1 | tail -20
  ;;
ckpt)
  M700=(--set model.vocab_size=100278 --set model.d_model=1024 --set model.n_layers=36 --set model.n_heads=16
        --set model.n_kv_heads=8 --set model.head_dim=64 --set model.ffn_hidden=4096 --set model.norm=reordered
        --set model.max_seq_len=4096 --set data.seq_len=4096 --set train.global_batch=8 --set train.micro_batch=8)
  for size in 125m 700m; do
    for ac in none block; do
      extra=(); [ $size = 700m ] && extra=("${M700[@]}")
      rm -rf /tmp/ac
      timeout 200 $b/moda train --config experiments/gpu-125m.json "${extra[@]}" --set train.steps=20 \
        --set train.eval_every=0 --set train.log_every=10 --set train.checkpoint_every=0 --set "data.val={}" \
        --set train.activation_checkpointing=$ac --run-dir /tmp/ac > /tmp/ac.log 2>&1 || echo "FAILED $size $ac"
      echo "== $size activation_checkpointing=$ac"; grep -E "step +20/|peak GPU memory" /tmp/ac.log | cut -c26-250
      cp /tmp/ac/metrics.jsonl $OUT/ckpt-$size-$ac.jsonl 2>/dev/null
    done
  done
  ;;
baseline)
  for v in sequence depth_kv_ffn; do
    timeout 250 /opt/torch/.venv/bin/python3 bench/torch_train_baseline.py --config experiments/gpu-125m.json \
      --moda $b/moda --set model.variant=$v --steps 30 --warmup 10 --json $OUT/torch-125m-$v.json 2>&1 | tail -2
    rm -rf /tmp/mt
    timeout 120 $b/moda train --config experiments/gpu-125m.json --set model.variant=$v --set train.steps=40 \
      --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" --run-dir /tmp/mt 2>&1 \
      | grep -E "step +40/" | cut -c26-250
  done
  ;;
*) echo "usage: $0 tests|generate|torch|ckpt|baseline" >&2; exit 2 ;;
esac

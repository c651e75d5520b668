#!/usr/bin/env bash
# GPU-host checks of work built without GPU time (2026-12-02/03 sessions), in parts that each fit one
# 10-minute command; run after `source tools/gpu-host-env.sh; bash tools/gpu-host-build.sh
# /tmp/build-gpu` (carry .deps; part `tests` also needs runs/demo/data). Results go to $OUT.
#   tests     every gpu test, then the CPU decode/generate tests (2026-12-03: all 66 gpu test cases
#             pass, prebuilt binaries)
#   l0        the cuDNN attention path (issue 14): the wrapper's tests, train.attention_l0 in every
#             mode ("attention l0*"), then `moda train` 40 steps of the 125M `sequence` config with
#             attention_l0 = moda, auto, cudnn (tokens/s; auto logs its per-shape choice)
#   generate  moda bench generate, 125M config, batch 1 and 32, prompt 128, 128 new tokens (issue 16)
#   decode-profile  per-kernel GPU time of 16 decode steps at batch 32 (Nsight Compute): batch 32
#             took 26.8 ms per step (8x batch 1) on 2026-12-02; is it the kernels or the host?
#   attention bench/attention_baseline.py: our kernels beside torch's flash AND cuDNN SDPA (issue 14's
#             second baseline column), table + JSON with date/GPU/driver/versions
#   gemm      the 125M training GEMMs with cuBLASLt's first pick (MODA_GEMM_AUTOTUNE=0) and autotuned,
#             then `moda train` 40 steps of both variants each way (issue 15); needs runs/demo/data
#   profile   per-kernel GPU time of one training step (Nsight Compute, NVTX "step 3"): 125M sequence and
#             depth_kv_ffn, and the Table 6 48-layer post-norm shape (T 4096, 8 sequences) both
#             ways (issue 15: where the time goes); needs runs/demo/data
#   torch     tests/cli/torch_bridge.sh under the host's torch 2.11 (issue 16: torch 2.x, GPU host)
#   ckpt      activation checkpointing none vs block: tokens/s and peak memory, 125M and the 700M
#             shape (issue 15)
#   baseline  bench/torch_train_baseline.py (torch.compile, flash SDPA / FlexAttention) for the 125M
#             config, sequence and depth_kv_ffn, then `moda train` on the same config (issue 15);
#             needs runs/demo/data (carried); ~310 s
#   shapes    `moda train` 20 steps of both variants at the paper's shapes: Table 6 (48 layers, width
#             384, post-norm, T 4096) and the Table 3 700M model (issue 15's ratios and MFU); ~250 s
set -uo pipefail
source tools/gpu-host-env.sh
b=${MODA_BUILD:-/tmp/build-gpu}  # prebuilt.tar.xz (tools/pack-prebuilt.sh) needs no build
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
case "${1:-}" in
tests)
  $b/tests/moda_tests_gpu 2>&1 | tail -30  # every gpu test (ctest -L gpu runs the same binary)
  $b/tests/moda_tests_gpu "decode cuda*" -s 2>&1 | grep -E "rel|err|passed|failed" | tail -20
  [ -d $b/CMakeFiles ] && ctest --test-dir $b -R "decode|generate|sampling|utf8" 2>&1 | tail -3
  ;;
generate)
  $b/moda bench generate --config experiments/gpu-125m.json --device cuda --batch 1,32 --prompt-len 128 \
    --new-tokens 128 --json | tee $OUT/generate-h200.json
  ;;
decode-profile)
  # The prefill and warm-up come first; skip them by launch count is fragile, so profile a short
  # run whole and compare its kernel sum with the wall time printed by the bench.
  ncu --clock-control none --metrics gpu__time_duration.sum --csv $b/moda bench generate \
    --config experiments/gpu-125m.json --device cuda --batch 32 --prompt-len 128 --new-tokens 16 \
    > $OUT/decode-ncu.csv 2> $OUT/decode-ncu.err
  python3 tools/ncu_summary.py $OUT/decode-ncu.csv
  $b/moda bench generate --config experiments/gpu-125m.json --device cuda --batch 32 --prompt-len 128 --new-tokens 16
  ;;
l0)
  $b/tests/moda_tests_gpu "[cudnn]" 2>&1 | tail -12
  $b/tests/moda_tests_gpu "attention l0*" 2>&1 | tail -12
  for mode in moda auto cudnn; do
    rm -rf /tmp/mt
    timeout 150 $b/moda train --config experiments/gpu-125m.json --set model.variant=sequence --set train.steps=40 \
      --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" --set train.attention_l0=$mode \
      --run-dir /tmp/mt 2>&1 | grep -E "step +40/|attention L=0|error" | cut -c26-300 | sed "s/^/attention_l0=$mode /"
    cp /tmp/mt/metrics.jsonl $OUT/l0-$mode.jsonl 2>/dev/null  # the raw records for bench/results/
  done
  ;;
attention)
  /opt/torch/.venv/bin/python3 bench/attention_baseline.py --moda $b/moda --json-out $OUT/attention-h200.json
  ;;
gemm)
  for tune in 0 1; do
    echo "== MODA_GEMM_AUTOTUNE=$tune"
    MODA_GEMM_AUTOTUNE=$tune $b/moda bench ops --ops gemm --iters 20 2>&1 | tee $OUT/gemm-autotune-$tune.txt
  done
  for tune in 0 1; do
    for v in sequence depth_kv_ffn; do
      rm -rf /tmp/mt
      MODA_GEMM_AUTOTUNE=$tune timeout 120 $b/moda train --config experiments/gpu-125m.json --set model.variant=$v \
        --set train.steps=40 --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" \
        --run-dir /tmp/mt 2>&1 | grep -E "step +40/" | cut -c26-250 | sed "s/^/autotune=$tune $v /"
    done
  done
  ;;
profile)
  T6=(--set model.d_model=384 --set model.n_layers=48 --set model.n_heads=6 --set model.n_kv_heads=2
      --set model.ffn_hidden=1536 --set model.norm=post --set model.qk_norm=false --set model.bias=true
      --set model.max_seq_len=4096 --set data.seq_len=4096 --set train.global_batch=8 --set train.micro_batch=8)
  for v in sequence depth_kv_ffn; do
    echo "== 125M $v"; MODA=$b/moda timeout 140 bash tools/gpu-profile-step.sh $v | tee $OUT/profile-125m-$v.txt | head -25
    echo "== Table 6 48 layers post $v"
    MODA=$b/moda EXTRA="${T6[*]}" timeout 140 bash tools/gpu-profile-step.sh $v | tee $OUT/profile-t6-48-$v.txt | head -25
  done
  ;;
torch)
  MODA_TORCH_PYTHON=/opt/torch/.venv/bin/python3 timeout 560 bash tests/cli/torch_bridge.sh $b/moda "$PWD" 2>&1 \
    | tee $OUT/torch-bridge.log | tail -20  # 1.5-3.5 min on 2 cores here; the log survives a time-out
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
    timeout 170 /opt/torch/.venv/bin/python3 bench/torch_train_baseline.py --config experiments/gpu-125m.json \
      --moda $b/moda --set model.variant=$v --steps 30 --warmup 10 --json $OUT/torch-125m-$v.json 2>&1 | tail -2
    rm -rf /tmp/mt
    timeout 100 $b/moda train --config experiments/gpu-125m.json --set model.variant=$v --set train.steps=40 \
      --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" --run-dir /tmp/mt 2>&1 \
      | grep -E "step +40/" | cut -c26-250
    cp /tmp/mt/metrics.jsonl $OUT/moda-125m-$v.jsonl 2>/dev/null
  done
  ;;
shapes)
  T6=(--set model.d_model=384 --set model.n_layers=48 --set model.n_heads=6 --set model.n_kv_heads=2
      --set model.ffn_hidden=1536 --set model.norm=post --set model.qk_norm=false --set model.bias=true
      --set model.max_seq_len=4096 --set data.seq_len=4096 --set train.global_batch=8 --set train.micro_batch=8)
  M700=(--set model.vocab_size=100278 --set model.d_model=1024 --set model.n_layers=36 --set model.n_heads=16
        --set model.n_kv_heads=8 --set model.head_dim=64 --set model.ffn_hidden=4096 --set model.norm=reordered
        --set model.max_seq_len=4096 --set data.seq_len=4096 --set train.global_batch=8 --set train.micro_batch=8)
  for shape in T6 M700; do
    for v in sequence depth_kv_ffn; do
      rm -rf /tmp/mt
      [ $shape = T6 ] && extra=("${T6[@]}") || extra=("${M700[@]}")
      timeout 75 $b/moda train --config experiments/gpu-125m.json "${extra[@]}" --set model.variant=$v \
        --set train.steps=20 --set train.log_every=10 --set train.eval_every=0 --set train.checkpoint_every=0 \
        --set "data.val={}" --run-dir /tmp/mt > $OUT/$shape-$v.log 2>&1
      grep -E "step +20/|rror" $OUT/$shape-$v.log | cut -c26-250 | sed "s/^/$shape $v /"
      cp /tmp/mt/metrics.jsonl $OUT/$shape-$v.jsonl 2>/dev/null
    done
  done
  ;;
*) echo "usage: $0 tests|l0|generate|decode-profile|attention|gemm|profile|torch|ckpt|baseline|shapes" >&2; exit 2 ;;
esac

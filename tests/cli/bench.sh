#!/usr/bin/env bash
# `moda bench ops` on the CPU at 1 % of the default sizes (a second or two): a markdown table on
# stdout with one timed row per op, --ops filters; `moda bench attention` without a GPU fails
# cleanly (status 1, message on stderr, nothing on stdout).
source "$(dirname "$0")/lib.sh"
short=(--device cpu --scale 0.01 --iters 1 --warmup 0)

run bench ops "${short[@]}"
expect_rc 0 "bench ops"
expect_stderr_empty "bench ops"
expect_in out "| op | dtype | shape | MB moved | time (ms) | GB/s | of copy | TFLOP/s |" "bench ops"
grep -q "failed" "$WORK/out" && fail "bench ops: an op failed"
# Rows after the header and its |---| line; the time column must be a positive number.
rows=$(grep '^| ' "$WORK/out" | tail -n +2 | grep -v '^|---')
for op in "cast f32->bf16" axpy sum "rmsnorm fwd" "rmsnorm bwd" "swiglu fwd" "swiglu bwd" "rope fwd" "softmax fwd" \
  adamw "cross_entropy fwd" gemm; do
  row=$(grep -F "| $op |" <<< "$rows") || fail "bench ops: no row for '$op'"
  ms=$(awk -F'|' '{gsub(/ /, "", $6); print $6}' <<< "$row")
  awk -v ms="$ms" 'BEGIN { exit !(ms + 0 > 0) }' || fail "bench ops: '$op' time '$ms' is not a positive number"
done

run bench ops "${short[@]}" --ops rmsnorm
expect_rc 0 "bench ops --ops rmsnorm"
[ "$(grep -c '^| rmsnorm' "$WORK/out")" -eq 2 ] || fail "bench ops --ops rmsnorm: expected the 2 rmsnorm rows"
[ "$(grep '^| ' "$WORK/out" | grep -v -e '^| op ' -e '^|---' -c)" -eq 2 ] || fail "bench ops --ops rmsnorm: other rows"

if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
  run bench attention --iters 1 --warmup 0 --only 0
  expect_rc 1 "bench attention without a GPU"
  expect_stdout_empty "bench attention without a GPU"
  expect_in err "bench attention needs a" "bench attention without a GPU"
fi
echo "ok: bench"

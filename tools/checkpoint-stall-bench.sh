#!/usr/bin/env bash
# bash tools/checkpoint-stall-bench.sh MODA_BINARY SOURCE_DIR: the checkpoint stall with
# train.async_checkpoint true and false (docs/reliability.md, section 5b), on the CPU, for the tiny
# model of the CLI tests and a model of the gpu-125m.json shape (118M parameters, 1 x 16 tokens
# per step) on the tiny data. Prints each checkpoint's record from metrics.jsonl.
# Environment: STEPS (6), EVERY (checkpoint_every, 2), GB (global batch, 1), NOTINY=1 skips the
# tiny model, LAUNCH="mpirun ... -np 2" runs the 118M model over ranks. Used for the table in
# docs/reliability.md: STEPS=24 EVERY=12, and NOTINY=1 GB=2 STEPS=12 EVERY=6 LAUNCH=...
source "$2/tests/cli/lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
report() {
  python3 - "$WORK/$1/metrics.jsonl" "$1" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"checkpoint"' in l]
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
for r in recs:
    c = r["checkpoint"]
    print(f"{sys.argv[2]}: step {r['step']}: stall {c['stall_s']:.4f} s (snapshot {c['snapshot_s']:.4f}, commit {c['commit_s']:.4f}), write {c['write_s']:.4f} s, committed after step {c['committed_after_step']}")
PY
}
[ -n "${NOTINY:-}" ] || for mode in true false; do
  "$MODA" train --config "$cfg" "${TINY_SETS[@]}" --set train.steps=8 --set train.checkpoint_every=2 --set train.async_checkpoint=$mode --run-dir "$WORK/tiny-$mode" > /dev/null 2> "$WORK/err-tiny-$mode" || { cat "$WORK/err-tiny-$mode"; exit 1; }
  report tiny-$mode
done
BIG=("${TINY_SETS[@]}" --set model.vocab_size=50304 --set model.d_model=768 --set model.n_layers=12 --set model.n_heads=12 --set model.n_kv_heads=4 --set model.ffn_hidden=2048 --set model.variant=depth_kv_ffn --set model.qk_norm=true --set train.global_batch=${GB:-1} --set train.micro_batch=1)
for mode in true false; do
  ${LAUNCH:-} "$MODA" train --config "$cfg" "${BIG[@]}" --set train.steps=${STEPS:-6} --set train.checkpoint_every=${EVERY:-2} --set train.keep_checkpoints=1 --set "data.val={}" --set train.async_checkpoint=$mode --run-dir "$WORK/big-$mode" > /dev/null 2> "$WORK/err-big-$mode" || { cat "$WORK/err-big-$mode"; exit 1; }
  grep -E "parameters|checkpoint|step " "$WORK/err-big-$mode" | head -20
  report big-$mode
done

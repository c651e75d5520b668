#!/usr/bin/env bash
# The bridge to PyTorch (docs/interop.md): for every variant x norm placement, a tiny model trained
# a few steps is exported with `moda checkpoint export`, and tools/moda_torch.py, written from
# docs/model.md's conventions, must give the same logits on the same tokens as `moda eval
# --dump-logits` (max |difference| / max |logit| < 1e-4, f32) and the same validation loss as `moda
# eval` (relative 1e-4) over a set of two shards. The combinations also cover tied / untied heads,
# QK-norm on / off, biases on / off, depth biases apart from the others, head_dim != d_model /
# n_heads, GQA, a non-default rope_theta, a norm_eps large enough (1e-3) that putting it outside the
# square root shows (7e-3 in the logits; 1e-4 at 1e-5), and built-but-unused last-layer depth
# projections. Then export's errors, --force and --dtype bf16.
#
# Needs a Python with torch: $MODA_TORCH_PYTHON if set, else the first of `python3` on PATH and
# /usr/bin/python3 (Debian's python3-torch, installed by tools/setup.sh) that imports it. None is
# a failure, not a skip: CI installs it.
source "$(dirname "$0")/lib.sh"

TORCH_PY=""
for py in ${MODA_TORCH_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$py" > /dev/null && "$py" -c "import torch" 2> /dev/null; then TORCH_PY=$py; break; fi
done
[ -n "$TORCH_PY" ] || fail "no Python that imports torch (tried ${MODA_TORCH_PYTHON:-} python3 /usr/bin/python3):" \
  "install python3-torch (tools/setup.sh) or set MODA_TORCH_PYTHON"
echo "torch: $("$TORCH_PY" -c 'import sys, torch; print(sys.executable, torch.__version__)')"

cfg="$SRC/experiments/tiny-cpu.json"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
val=("$WORK"/data/data/apache_val_*.bin "$WORK"/data/data/gpl_val_*.bin)  # one set of two shards, glob order

# compare NAME: moda's and torch's first-batch logits and the set's loss.
compare() {
  "$TORCH_PY" - "$WORK/$1" "$SRC/tools" <<'PY' || fail "$1: torch and moda differ"
import json, sys
sys.path.insert(0, sys.argv[2])
from moda_torch import read_safetensors
d = sys.argv[1]
m, t = read_safetensors(f"{d}/moda_logits.safetensors"), read_safetensors(f"{d}/torch_logits.safetensors")
assert (m["ids"] == t["ids"]).all() and (m["targets"] == t["targets"]).all(), "the two dumps hold different tokens"
scale = float(m["logits"].abs().max())
rel_logits = float((m["logits"] - t["logits"]).abs().max()) / scale
moda_loss = json.load(open(f"{d}/moda_eval.json"))["sets"]["val"]
torch_loss = json.load(open(f"{d}/torch_eval.json"))
assert moda_loss["tokens"] == torch_loss["tokens"], (moda_loss, torch_loss)
rel_loss = abs(moda_loss["loss"] - torch_loss["loss"]) / moda_loss["loss"]
print(f"{d.split('/')[-1]:58s} logits max rel diff {rel_logits:.2e} (max |logit| {scale:.2f})  "
      f"loss moda {moda_loss['loss']:.6f} torch {torch_loss['loss']:.6f} rel {rel_loss:.1e}")
assert rel_logits < 1e-4 and rel_loss < 1e-4
# loglikelihood (what a harness adapter calls, docs/interop.md) = moda's log-softmax at those places
import torch
from moda_torch import MoDAModel
ids = m["ids"][0].long().tolist()
mine = MoDAModel.from_pretrained(f"{d}/export").loglikelihood(ids[:5], ids[5:9])
logp = torch.log_softmax(m["logits"][0].double(), dim=-1)
theirs = float(sum(logp[p, ids[p + 1]] for p in range(4, 8)))
assert abs(mine - theirs) < 1e-4 * abs(theirs), (mine, theirs)
PY
}

k=0
for variant in sequence depth_kv depth_kv_ffn depth_kv_ffn_attn; do
  for norm in pre post reordered; do
    qk=$([ $((k % 2)) -eq 0 ] && echo true || echo false)
    bias=$([ $((k / 2 % 2)) -eq 1 ] && echo true || echo false)
    depth_bias=$([ "$bias" = true ] && [ "$k" -ge 8 ] && echo false || echo "$bias")
    tied=$([ $(((k / 3 + k % 3) % 3)) -ne 0 ] && echo true || echo false)
    last=$([ "$k" -eq 11 ] && echo true || echo false)  # depth_proj_last_layer (depth projections only)
    name="$variant-$norm-qk_$qk-bias_$bias-depthbias_$depth_bias-tied_$tied"
    dir="$WORK/$name"
    run train --config "$cfg" "${TINY_SETS[@]}" --run-dir "$dir/run" --set "model.variant=\"$variant\"" \
      --set "model.norm=\"$norm\"" --set model.qk_norm=$qk --set model.bias=$bias --set model.depth_kv_bias=$depth_bias \
      --set model.tie_embeddings=$tied --set model.depth_proj_last_layer=$last --set model.n_layers=3 \
      --set model.n_heads=4 --set model.n_kv_heads=2 --set model.head_dim=12 --set model.rope_theta=500 \
      --set model.norm_eps=1e-3 --set train.steps=8 --set optim.lr=3e-2 --set train.eval_max_batches=1
    expect_rc 0 "$name: train"
    run checkpoint export --checkpoint "$dir/run" --tokenizer "$WORK/data/tokenizer.json" --out "$dir/export"
    expect_rc 0 "$name: checkpoint export"
    run eval --device cpu --checkpoint "$dir/run" --data "val=$WORK/data/data/*_val_*.bin" --json \
      --dump-logits "$dir/moda_logits.safetensors"
    expect_rc 0 "$name: eval --dump-logits"
    cp "$WORK/out" "$dir/moda_eval.json"
    "$TORCH_PY" "$SRC/tools/moda_torch.py" "$dir/export" --tokens "${val[@]}" --json \
      --dump-logits "$dir/torch_logits.safetensors" > "$dir/torch_eval.json" 2> "$WORK/err" ||
      fail "$name: tools/moda_torch.py failed"
    compare "$name"
    k=$((k + 1))
  done
done

# Export's refusals and replacement, on the last run.
last_run="$dir/run"
run checkpoint export --checkpoint "$last_run" --tokenizer "$WORK/data/tokenizer.json" --out "$dir/export"
expect_rc 1 "export into a non-empty folder"
expect_in err "$dir/export' is a folder that is not empty; give --force" "export into a non-empty folder"
run checkpoint export --checkpoint "$last_run" --tokenizer "$WORK/data/tokenizer.json" --out "$dir" --force
expect_rc 1 "export --force over the checkpoint"
expect_in err "holds the checkpoint" "export --force over the checkpoint"
run checkpoint export --checkpoint "$last_run" --tokenizer "$WORK/no-such.json" --out "$WORK/x"
expect_rc 1 "export with a missing tokenizer"
expect_in err "$WORK/no-such.json" "export with a missing tokenizer"
[ ! -e "$WORK/x" ] || fail "a failed export left $WORK/x"
run checkpoint export --checkpoint "$last_run" --tokenizer "$WORK/data/tokenizer.json" --out "$WORK/x" --dtype f16
expect_rc 2 "export --dtype f16"
expect_in err "--dtype must be f32 or bf16" "export --dtype f16"
run checkpoint export --checkpoint "$last_run" --tokenizer "$WORK/data/tokenizer.json" --out "$dir/export" \
  --dtype bf16 --force
expect_rc 0 "export --dtype bf16 --force"
ls "$dir" | grep -q '\.\(tmp\|old\)\.' && fail "export left a temporary folder in $dir"
# The bf16 export holds the f32 weights rounded to bf16, under the same names; config.json says so.
run checkpoint export --checkpoint "$last_run" --tokenizer "$WORK/data/tokenizer.json" --out "$WORK/f32"
expect_rc 0 "export f32"
"$TORCH_PY" - "$dir/export" "$WORK/f32" "$SRC/tools" <<'PY' || fail "the bf16 export is not the f32 one rounded"
import json, sys
import torch
sys.path.insert(0, sys.argv[3])
from moda_torch import read_safetensors, MoDAModel
b, f = read_safetensors(f"{sys.argv[1]}/model.safetensors"), read_safetensors(f"{sys.argv[2]}/model.safetensors")
assert b.keys() == f.keys() and all(t.dtype == torch.bfloat16 for t in b.values())
assert all(torch.equal(b[n], f[n].to(torch.bfloat16)) for n in b), "bf16 weights differ from the rounded f32 ones"
assert json.load(open(f"{sys.argv[1]}/config.json"))["dtype"] == "bf16"
assert open(f"{sys.argv[1]}/tokenizer.json").read() == open(f"{sys.argv[2]}/tokenizer.json").read()
MoDAModel.from_pretrained(sys.argv[1])  # loads (as f32)
PY

# The PyTorch training baseline (bench/torch_train_baseline.py, issue 15) builds the same model as
# moda (its parameter count must equal `moda params`), trains on moda's shards and lowers the loss;
# on the CPU it runs eagerly with the reference attention.
for variant in sequence depth_kv_ffn_attn; do
  "$TORCH_PY" "$SRC/bench/torch_train_baseline.py" --config "$cfg" "${TINY_SETS[@]}" --set model.variant=$variant \
    --set optim.lr=0.03 --moda "$MODA" --device cpu --steps 8 --warmup 1 --json "$WORK/baseline.json" \
    > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; fail "torch_train_baseline.py ($variant)"; }
  "$TORCH_PY" - "$WORK/baseline.json" <<'PY' || fail "torch_train_baseline.py ($variant): $(cat "$WORK/out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["tokens_per_s"] > 0 and r["loss_last"] < r["loss_first"], r
PY
done
echo "ok: torch bridge, 12 variant x norm combinations; the training baseline runs"

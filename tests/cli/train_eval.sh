#!/usr/bin/env bash
# `moda train` with --set overrides on a tiny model (3 steps, a few seconds), bad --set values
# refused naming the field, then `moda eval --json` on the checkpoint that run wrote.
source "$(dirname "$0")/lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"

# Bad --set values: refused before anything is written, the message names the field.
bad_set() {  # bad_set FIELD_NAMED ASSIGNMENT
  run train --config "$cfg" "${TINY_SETS[@]}" --set "$2" --run-dir "$WORK/bad"
  expect_fail "train --set '$2'"
  expect_stdout_empty "train --set '$2'"
  expect_in err "$1" "train --set '$2'"
  [ ! -e "$WORK/bad" ] || fail "train --set '$2' created the run folder"
}
bad_set "stepz" train.stepz=3                   # unknown key
bad_set "train.steps" 'train.steps=three'       # not JSON: taken as a string, wrong type for an integer
bad_set "train.steps" 'train.steps="3"'         # a JSON string where an integer belongs
bad_set "model.qk_norm" 'model.qk_norm=1'       # an integer where a boolean belongs
bad_set "data.seq_len" 'data.seq_len=[16]'      # an array where an integer belongs
bad_set "optim.lr" 'optim.lr=-1'                # a number that breaks the field's rule
bad_set "train.collective_timeout_s" 'train.collective_timeout_s=0'  # must be > 0
bad_set "train.steps" 'train.steps'             # no '='
bad_set "n_layers" 'model.n_layers={"x": 1}'    # an object where an integer belongs

# A valid run: 3 steps of global batch 4 x 16 tokens, then a final evaluation and checkpoint.
run train --config "$cfg" "${TINY_SETS[@]}" --run-dir "$WORK/run"
expect_rc 0 "train"
expect_in out "validation after 3 steps" "train (its final table is data: stdout)"
expect_in err "step      3/3" "train (progress lines are logs: stderr)"
grep -q "step " "$WORK/out" && fail "train: progress lines on stdout"
[ -f "$WORK/run/checkpoints/latest" ] || fail "train wrote no checkpoints/latest"
python3 - "$WORK/run" <<'PY' || fail "train: config.json / metrics.jsonl do not reflect the --set values"
import json, sys
run = sys.argv[1]
c = json.load(open(f"{run}/config.json"))
assert c["data"]["seq_len"] == 16 and c["train"]["steps"] == 3 and c["train"]["global_batch"] == 4
assert c["model"]["d_model"] == 32 and c["model"]["n_layers"] == 2 and c["model"]["vocab_size"] == 320
assert c["model"]["variant"] == "depth_kv_ffn"  # untouched fields keep the file's value
steps = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"loss"' in l and '"eval"' not in l]
assert [s["step"] for s in steps] == [1, 2, 3], steps
assert [s["tokens"] for s in steps] == [64, 128, 192], [s["tokens"] for s in steps]  # step * 4 * 16
PY

# eval --json on that checkpoint: schema, ppl = exp(loss), the average weighted by tokens, every
# target of each shard counted, and the same numbers as the run's own final evaluation.
run eval --device cpu --checkpoint "$WORK/run" --data "gpl=$WORK/data/data/gpl_val_*.bin" \
  "apache=$WORK/data/data/apache_val_*.bin" --json
expect_rc 0 "eval --json"
python3 - "$WORK/out" "$WORK/run/metrics.jsonl" "$WORK/data/data" <<'PY' || fail "eval --json: schema or values wrong"
import glob, json, math, os, struct, sys
out = open(sys.argv[1]).read()
j = json.loads(out)
assert set(j) >= {"sets", "average"}, j.keys()
assert set(j["sets"]) == {"gpl", "apache"}, j["sets"].keys()
for name, s in list(j["sets"].items()) + [("average", j["average"])]:
    assert set(s) >= {"loss", "ppl", "tokens"}, (name, s)
    assert s["tokens"] > 0 and math.isfinite(s["loss"]), (name, s)
    assert abs(s["ppl"] - math.exp(s["loss"])) < 1e-6 * s["ppl"], (name, s)
    assert abs(s["loss"] - math.log(320)) < 0.5, (name, s["loss"])  # 3 steps: still near uniform
sets = j["sets"].values()
assert j["average"]["tokens"] == sum(s["tokens"] for s in sets)
weighted = sum(s["loss"] * s["tokens"] for s in sets) / j["average"]["tokens"]
assert abs(j["average"]["loss"] - weighted) < 1e-9, (j["average"]["loss"], weighted)
# llm.c shard: 256 int32 header (magic, version, token count), then the tokens. Each set is
# evaluated whole: every token but the first of a shard is a target.
for name in ["gpl", "apache"]:
    (path,) = glob.glob(os.path.join(sys.argv[3], f"{name}_val_*.bin"))
    count = struct.unpack("<3i", open(path, "rb").read(12))[2]
    assert j["sets"][name]["tokens"] == count - 1, (name, j["sets"][name]["tokens"], count)
final = [json.loads(l) for l in open(sys.argv[2]) if '"eval"' in l][-1]["eval"]
for name in ["gpl", "apache"]:
    assert abs(final["sets"][name]["loss"] - j["sets"][name]["loss"]) < 1e-5, (name, final, j)
PY
echo "ok: train --set, eval --json"

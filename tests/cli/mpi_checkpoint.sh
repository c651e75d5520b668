#!/usr/bin/env bash
# Sharded checkpoints through mpirun (CPU, MPI): a run of 2 ranks stopped after step 2 resumes at
# 2 ranks bit-identically; resharded 2 -> 3 -> 1 -> 2 ranks, the state consolidated after each
# resharding equals the saved one bit for bit and training continues with the uninterrupted
# run's losses (to 1e-5); `moda checkpoint consolidate` output loads in `moda eval` (so does the
# sharded folder; `checkpoint export` of both writes the same weights) and `moda train --resume` continues it; `moda checkpoint info` verifies; corrupt, truncated, missing shards, a
# manifest that lies, another model's config and another global batch are errors naming the
# file or field, and nothing is overwritten.
source "$(dirname "$0")/lib.sh"
mpi_test_env
cfg="$SRC/experiments/tiny-cpu.json"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=4 --set train.global_batch=12 --set train.micro_batch=2
  --set train.checkpoint_every=2)

train_np() {  # train_np N RUN EXPECTED_RC EXTRA_ARGS...: N ranks (1: no mpirun)
  local np=$1 run=$2 want=$3; shift 3
  RC=0
  if [ "$np" -eq 1 ]; then
    "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/$run" "$@" > "$WORK/out" 2> "$WORK/err" || RC=$?
  else
    timeout 120 "${MPIRUN[@]}" -np "$np" "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/$run" "$@" \
      > "$WORK/out" 2> "$WORK/err" || RC=$?
  fi
  [ "$RC" -ne 124 ] || fail "$np ranks, $run: hung"
  if [ "$want" = fail ]; then expect_fail "$np ranks, $run $*"; else expect_rc "$want" "$np ranks, $run $*"; fi
}

losses() {  # losses RUN_A RUN_B TOLERANCE [N]: B's N records (steps, final evaluation) agree with A's
  python3 - "$WORK/$1" "$WORK/$2" "$3" "${4:-5}" <<'PY' || fail "losses of $1 and $2 differ"
import json, sys
def records(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        if "checkpoint" in j:  # save timings, not losses
            continue
        out[(j["step"], "eval" in j)] = j["loss"] if "loss" in j else j["eval"]["average"]["loss"]
    return out
a, b, tol, n = records(sys.argv[1]), records(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
assert len(a) == 5 and len(b) == n and set(b) <= set(a), (sorted(a), sorted(b))  # 4 steps + final evaluation
worst = max(abs(a[k] - b[k]) / abs(a[k]) for k in b)
print(f"{sys.argv[2].split('/')[-1]} vs {sys.argv[1].split('/')[-1]}: max relative loss difference {worst:.2e}")
assert worst <= tol, (a, b)
PY
}

same_tensors() {  # same_tensors FILE_A FILE_B: every tensor of A is in B with the same bytes
  python3 - "$1" "$2" <<'PY' || fail "tensors of $1 differ from $2"
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n]); header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
bad = [k for k in a if k not in b or a[k] != b[k]]
assert a and not bad, bad[:5]
PY
}

world_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["world_size"])' "$1/manifest.json"; }

consolidate() {  # consolidate CHECKPOINT OUT_RUN
  run checkpoint consolidate --checkpoint "$1" --out "$2"
  expect_rc 0 "checkpoint consolidate $1"
}

snapshot() { (cd "$WORK/$1/checkpoints" && find . -type f | sort | xargs sha256sum); }

# --- the same world size: bit-identical ----------------------------------------------------
train_np 2 ref2 0                    # uninterrupted: checkpoints at steps 2 and 4
train_np 2 part2 0 --stop-after 2    # stopped after step 2
ck2="$WORK/part2/checkpoints/step-2"
[ "$(cat "$WORK/part2/checkpoints/latest")" = step-2 ] || fail "latest is not step-2"
[ -f "$ck2/rank-00001-of-00002.safetensors" ] && [ ! -e "$ck2/model.safetensors" ] || fail "not a sharded folder"
[ -z "$(find "$WORK/part2/checkpoints" -name '*.tmp.*')" ] || fail "temporaries left behind"
for run in same22 re23 bad; do cp -r "$WORK/part2" "$WORK/$run"; done
train_np 2 same22 0 --resume
losses ref2 same22 0

# --- SIGTERM to every rank (as Slurm preempts): the step finishes, the sharded checkpoint is
# written on the same step by both ranks, exit status 0 ---------------------------------------
"${MPIRUN[@]}" -np 2 "$MODA" train --config "$cfg" "${SETS[@]}" --set train.steps=1000000 \
  --set train.checkpoint_every=0 --set train.log_every=1 --run-dir "$WORK/sig" > "$WORK/out" 2> "$WORK/err" &
launcher=$!
for _ in $(seq 300); do [ -s "$WORK/sig/metrics.jsonl" ] && break; sleep 0.1; done
[ -s "$WORK/sig/metrics.jsonl" ] || { kill -9 "$launcher"; fail "SIGTERM test: no step logged within 30 s"; }
kill -TERM $(pgrep -P "$launcher")  # the ranks, not mpirun (Open MPI's mpirun exits 1 after forwarding)
RC=0
wait "$launcher" || RC=$?
expect_rc 0 "2 ranks stopped by SIGTERM"
expect_in err "stopped by signal 15 after step" "SIGTERM: the stop is logged"
sig_ck="$WORK/sig/checkpoints/$(cat "$WORK/sig/checkpoints/latest")"
[ "$(world_of "$sig_ck")" = 2 ] || fail "SIGTERM: no sharded checkpoint"
run checkpoint info "$sig_ck"
expect_rc 0 "checkpoint info of the SIGTERM checkpoint"
sig_step=${sig_ck##*step-}
train_np 2 sig 0 --set train.steps=1000000 --set train.checkpoint_every=0 --resume --stop-after $((sig_step + 1))
[ "$(cat "$WORK/sig/checkpoints/latest")" = "step-$((sig_step + 1))" ] || fail "SIGTERM: the resumed run did not go on"

# --- 2 -> 3 -> 1 -> 2 ranks: resharded state equals the saved one, training continues ----------
consolidate "$ck2" "$WORK/c2"
c2="$WORK/c2/checkpoints/step-2"
train_np 3 re23 0 --resume --stop-after 2  # rewrites step-2 at 3 ranks, trains nothing
[ "$(world_of "$WORK/re23/checkpoints/step-2")" = 3 ] || fail "2 -> 3: step-2 not rewritten at 3 ranks"
consolidate "$WORK/re23" "$WORK/c3"
for f in model.safetensors optimizer.safetensors; do
  cmp "$c2/$f" "$WORK/c3/checkpoints/step-2/$f" || fail "2 -> 3: consolidated $f differs from the saved state"
done
# `checkpoint export` reads a sharded checkpoint through the same consolidation: the same weights
# file as from the consolidated one-rank copy (tests/cli/torch_bridge.sh checks the contents).
run checkpoint export --checkpoint "$ck2" --tokenizer "$WORK/data/tokenizer.json" --out "$WORK/export-sharded"
expect_rc 0 "checkpoint export of the sharded $ck2"
run checkpoint export --checkpoint "$c2" --tokenizer "$WORK/data/tokenizer.json" --out "$WORK/export-one"
expect_rc 0 "checkpoint export of the consolidated $c2"
cmp "$WORK/export-sharded/model.safetensors" "$WORK/export-one/model.safetensors" ||
  fail "export of the sharded checkpoint differs from the export of its consolidated copy"
cp -r "$WORK/re23" "$WORK/re31"
train_np 3 re23 0 --resume
losses ref2 re23 1e-5

train_np 1 re31 0 --resume --stop-after 2  # one rank: the one-rank layout, from 3 ranks' shards
[ -f "$WORK/re31/checkpoints/step-2/model.safetensors" ] || fail "3 -> 1: no one-rank checkpoint written"
same_tensors "$WORK/re31/checkpoints/step-2/model.safetensors" "$c2/model.safetensors"
same_tensors "$WORK/re31/checkpoints/step-2/optimizer.safetensors" "$c2/optimizer.safetensors"
cp -r "$WORK/re31" "$WORK/re12"
train_np 1 re31 0 --resume
losses ref2 re31 1e-5

train_np 2 re12 0 --resume --stop-after 2  # from the one-rank checkpoint back to 2 ranks
consolidate "$WORK/re12" "$WORK/c12"
for f in model.safetensors optimizer.safetensors state.json; do
  cmp "$c2/$f" "$WORK/c12/checkpoints/step-2/$f" || fail "1 -> 2: consolidated $f differs from the saved state"
done
train_np 2 re12 0 --resume
losses ref2 re12 1e-5

# --- consolidate, eval and info ---------------------------------------------------------------
evaluate() {  # evaluate CHECKPOINT: the --json report on stdout
  run eval --checkpoint "$1" --data "gpl=$WORK/data/data/gpl_val_*.bin" --json
  expect_rc 0 "eval $1"
  cat "$WORK/out"
}
[ "$(evaluate "$WORK/c2")" = "$(evaluate "$ck2")" ] || fail "eval of the consolidated and the sharded checkpoint differ"
run checkpoint info "$WORK/part2"
expect_rc 0 "checkpoint info"
expect_in out "sharded over 2 ranks" "info: layout"
expect_in out "step        2" "info: step"
expect_in out "verified    every file matches manifest.json" "info: verdict"
run checkpoint info "$WORK/c2"
expect_rc 0 "checkpoint info of a one-rank checkpoint"
expect_in out "layout      one rank" "info: one-rank layout"
train_np 1 c2 0 --resume  # the consolidated run folder trains on: steps 3 and 4, the final evaluation
losses ref2 c2 1e-5 3
run checkpoint consolidate --checkpoint "$ck2" --out "$WORK/c2"
expect_rc 1 "consolidate into a run folder that exists"
expect_in err "is not an empty folder" "consolidate refuses to overwrite"

# --- corruption: an error naming the file, nothing overwritten ---------------------------------
bad="$WORK/bad/checkpoints/step-2"
shard1="$bad/rank-00001-of-00002.safetensors"
corrupt_case() {  # corrupt_case WHAT TEXT_ON_STDERR: info, resume and consolidate all refuse
  local what=$1 text=$2 before
  before=$(snapshot bad)
  run checkpoint info "$bad"
  expect_rc 1 "info, $what"
  expect_in err "$text" "info names the problem, $what"
  train_np 2 bad fail --resume
  expect_in err "$text" "resume names the problem, $what"
  run checkpoint consolidate --checkpoint "$bad" --out "$WORK/never"
  expect_rc 1 "consolidate, $what"
  [ ! -e "$WORK/never" ] || fail "consolidate of a bad checkpoint created its --out, $what"
  [ "$before" = "$(snapshot bad)" ] || fail "the bad checkpoint was changed, $what"
  rm -rf "$WORK/bad" && cp -r "$WORK/part2" "$WORK/bad"
}
printf '\x55' | dd of="$shard1" bs=1 seek=200 conv=notrunc status=none  # a flipped byte, same size
corrupt_case "altered shard" "$shard1"
truncate -s -100 "$shard1"
corrupt_case "truncated shard" "$shard1"
rm "$shard1"
corrupt_case "missing shard" "$shard1 is missing"
python3 - "$bad/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["files"]["rank-00000-of-00002.safetensors"]["sha256"] = "0" * 64
json.dump(m, open(sys.argv[1], "w"))
PY
corrupt_case "manifest hash that does not match" "$bad/rank-00000-of-00002.safetensors"

# A manifest whose layout is not this model's, and a run whose model config changed.
python3 - "$bad/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["groups"][1]["params"][0]["shape"] = [1, 2]
json.dump(m, open(sys.argv[1], "w"))
PY
train_np 2 bad fail --resume
param=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["groups"][1]["params"][0]["name"])' \
  "$bad/manifest.json")
expect_in err "manifest.json: group 'blocks.0': parameter '$param' [1, 2]" "layout mismatch names the parameter"
rm -rf "$WORK/bad" && cp -r "$WORK/part2" "$WORK/bad"
before=$(snapshot bad)
train_np 3 bad fail --resume --set model.d_model=48
expect_in err "model.d_model: checkpoint 32, now 48" "another model config is refused, naming the field"
[ "$before" = "$(snapshot bad)" ] || fail "a refused resume changed the checkpoint"
# Another global batch would not continue the data order: refused by name (docs/distributed.md).
train_np 2 bad fail --resume --set train.global_batch=24
expect_in err "train.global_batch: checkpoint 12, now 24" "a changed global batch is refused, naming the field"
[ "$before" = "$(snapshot bad)" ] || fail "a refused resume changed the checkpoint"
echo "ok: sharded checkpoints resume, reshard, consolidate and refuse corruption"

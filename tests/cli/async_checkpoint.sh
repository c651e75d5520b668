#!/usr/bin/env bash
# Checkpoint writes that overlap training (train.async_checkpoint, docs/reliability.md): the files
# an asynchronous save writes are the bytes a synchronous one writes, for one rank and, when
# mpirun is installed, for 2 ranks (sharded); state.json and the manifest differ only in the
# config's train.async_checkpoint (and the hash of state.json). A run stopped after an
# asynchronous save resumes bit-identically (same losses, same final checkpoint bytes). Every
# checkpoint logs its stall and write time and records them in metrics.jsonl.
source "$(dirname "$0")/lib.sh"
mpi_test_env
cfg="$SRC/experiments/tiny-cpu.json"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=6 --set train.global_batch=8 --set train.micro_batch=2
  --set train.checkpoint_every=2 --set train.keep_checkpoints=0 --set train.eval_every=4)

train_np() {  # train_np N RUN ARGS...: N ranks (1: no mpirun); must exit 0
  local np=$1 run=$2
  shift 2
  RC=0
  if [ "$np" -eq 1 ]; then
    "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/$run" "$@" > "$WORK/out" 2> "$WORK/err" || RC=$?
  else
    timeout 120 "${MPIRUN[@]}" -np "$np" "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/$run" "$@" \
      > "$WORK/out" 2> "$WORK/err" || RC=$?
  fi
  expect_rc 0 "$np ranks, $run $*"
}

# same_checkpoints RUN_A RUN_B: the same step folders; every tensor file byte-identical; state.json
# and manifest.json equal once train.async_checkpoint and the hash of state.json are set aside.
same_checkpoints() {
  python3 - "$WORK/$1/checkpoints" "$WORK/$2/checkpoints" <<'PY' || fail "checkpoints of $1 and $2 differ"
import json, os, sys
a, b = sys.argv[1], sys.argv[2]
steps = sorted(d for d in os.listdir(a) if d.startswith("step-"))
assert steps == sorted(d for d in os.listdir(b) if d.startswith("step-")), (os.listdir(a), os.listdir(b))
assert steps and open(f"{a}/latest").read() == open(f"{b}/latest").read()
def scrub(doc):
    if "config" in doc:
        doc["config"]["train"].pop("async_checkpoint")
    if "state" in doc:
        doc["state"]["config"]["train"].pop("async_checkpoint")
    doc.get("files", {}).pop("state.json", None)
    return doc
for step in steps:
    files = sorted(os.listdir(f"{a}/{step}"))
    assert files == sorted(os.listdir(f"{b}/{step}")), (step, files)
    for f in files:
        x, y = f"{a}/{step}/{f}", f"{b}/{step}/{f}"
        if f.endswith(".safetensors"):
            assert open(x, "rb").read() == open(y, "rb").read(), f"{step}/{f}: bytes differ"
        else:
            assert scrub(json.load(open(x))) == scrub(json.load(open(y))), f"{step}/{f} differs"
print(f"{len(steps)} checkpoints identical")
PY
}

# timings RUN N: N checkpoint records with stall_s and write_s, the log says so too.
timings() {
  python3 - "$WORK/$1/metrics.jsonl" "$2" "$3" <<'PY' || fail "$1: checkpoint timings missing from metrics.jsonl"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"checkpoint"' in l]
assert len(recs) == int(sys.argv[2]), recs
for r in recs:
    c = r["checkpoint"]
    assert c["async"] == (sys.argv[3] == "true") and c["stall_s"] >= 0 and c["write_s"] > 0, r
    assert c["committed_after_step"] >= r["step"], r
print(" ".join(f"step {r['step']}: stall {r['checkpoint']['stall_s']:.4f} s, write {r['checkpoint']['write_s']:.4f} s"
               for r in recs))
PY
}

losses() {  # losses RUN_A RUN_B: every training loss and evaluation of B equals A's (bit for bit)
  python3 - "$WORK/$1" "$WORK/$2" <<'PY' || fail "losses of $1 and $2 differ"
import json, sys
def records(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        if "checkpoint" in j:
            continue
        out[(j["step"], "eval" in j)] = j["loss"] if "loss" in j else j["eval"]["average"]["loss"]
    return out
a, b = records(sys.argv[1]), records(sys.argv[2])
assert a == b, (a, b)
PY
}

# --- one rank ------------------------------------------------------------------------------
train_np 1 sync1 --set train.async_checkpoint=false
expect_in err "s stall (written synchronously in" "sync: the log"
timings sync1 3 false
train_np 1 async1
expect_in err "s stall, written in" "async: the log"
timings async1 3 true
same_checkpoints sync1 async1
# Stopped after step 3 (asynchronous saves of steps 2 and 3), resumed: bit-identical.
train_np 1 part1 --stop-after 3
[ "$(cat "$WORK/part1/checkpoints/latest")" = step-3 ] || fail "--stop-after 3: latest is not step-3"
train_np 1 part1 --resume
losses async1 part1
python3 - "$WORK/async1/checkpoints/step-6" "$WORK/part1/checkpoints/step-6" <<'PY' || fail "resume: step-6 differs"
import os, sys
for f in os.listdir(sys.argv[1]):
    if f.endswith(".safetensors"):
        assert open(f"{sys.argv[1]}/{f}", "rb").read() == open(f"{sys.argv[2]}/{f}", "rb").read(), f
PY
[ -z "$(find "$WORK" -name '*.tmp.*')" ] || fail "temporaries left behind"

# --- two ranks (sharded) ---------------------------------------------------------------------
if command -v mpirun > /dev/null; then
  train_np 2 sync2 --set train.async_checkpoint=false
  train_np 2 async2
  expect_in err "s stall, written in" "2 ranks, async: the log"
  timings async2 3 true
  same_checkpoints sync2 async2
  train_np 2 part2 --stop-after 3
  train_np 2 part2 --resume
  losses async2 part2
  [ -z "$(find "$WORK" -name '*.tmp.*')" ] || fail "temporaries left behind (2 ranks)"
  echo "ok: 2 ranks"
else
  echo "note: no mpirun, the 2-rank part is skipped"
fi
echo "ok: asynchronous checkpoints are byte-identical to synchronous ones and resume bit-identically"

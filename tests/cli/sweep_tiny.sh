#!/usr/bin/env bash
# `moda sweep` end to end on experiments/sweeps/tiny-cpu.json (2 variants x 2 seeds, 6 steps each
# on the demo corpus, which is built here from Debian's fortunes, jargon-text and licence texts):
# bad manifests refused before anything trains, naming the manifest field; a dry run; a run
# stopped by SIGTERM mid-way and completed by a second run (resuming the stopped points); a third
# run that skips every point; a point that fails (its run folder locked by another process)
# reported while the sweep goes on, then retried through --launcher; status; report files.
# About 30 s on 2 cores.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
manifest="$SRC/experiments/sweeps/tiny-cpu.json"
out=runs/sweeps/tiny-cpu
MODA="$MODA" bash "$SRC/tools/make_demo_corpus.sh" runs/demo > corpus.log 2>&1 || { cat corpus.log >&2; fail "make_demo_corpus.sh"; }

# --- manifests refused before any training, the message naming the manifest field ---------------
bad_manifest() {  # bad_manifest EXPECTED_TEXT PYTHON_EDIT (edits dict m)
  python3 - "$manifest" "$SRC/experiments/tiny-cpu.json" "$WORK/bad.json" "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["base"] = sys.argv[2]
m["output"] = "runs/sweeps/bad"
exec(sys.argv[4])
json.dump(m, open(sys.argv[3], "w"))
PY
  run sweep run "$WORK/bad.json"
  expect_rc 1 "sweep run with $2"
  expect_in err "$1" "sweep run with $2"
  [ ! -e runs/sweeps/bad ] || fail "sweep run with $2: created the sweep folder"
}
bad_manifest "manifest: unknown field 'grdi'" 'm["grdi"] = {}'
bad_manifest "manifest.grid.model.nrom[0]" 'm["grid"]["model.nrom"] = ["pre"]'
bad_manifest "unknown field 'nrom'" 'm["grid"]["model.nrom"] = ["pre"]'
bad_manifest "manifest.grid.model.variant: the list of values is empty" 'm["grid"]["model.variant"] = []'
bad_manifest "unknown field 'stepz'" 'm["set"]["train.stepz"] = 3'
bad_manifest "manifest.report.contrast: 'model.norm' is not a grid axis" 'm["report"]["contrast"] = "model.norm"'
run sweep run
expect_rc 2 "sweep run without a manifest"

# --- dry run: the four points, nothing written ------------------------------------------------
run sweep run "$manifest" --dry-run
expect_rc 0 "sweep run --dry-run"
[ "$(grep -c 'not started' "$WORK/out")" -eq 4 ] || fail "dry run: expected 4 points not started"
expect_in out "depth_kv_ffn-s2" "dry run lists the points by name"
[ ! -e "$out" ] || fail "dry run wrote $out"

# --- a run stopped by SIGTERM once the first checkpoints exist, then completed -------------------
"$MODA" sweep run "$manifest" --parallel 2 > run1.out 2> run1.err &
sweep_pid=$!
for _ in $(seq 600); do
  compgen -G "$out/runs/*/checkpoints/step-2" > /dev/null && break
  sleep 0.1
done
run sweep status "$manifest"  # from another terminal, while the sweep trains
expect_in out "running (pid " "status during the run"
kill -TERM "$sweep_pid"
rc=0
wait "$sweep_pid" || rc=$?
[ "$rc" -eq 1 ] || { cat run1.err >&2; fail "stopped sweep: exit status $rc, expected 1"; }
grep -q "stopping [12] running point" run1.err || { cat run1.err >&2; fail "stopped sweep: no 'stopping' message"; }
run sweep status "$manifest"
expect_rc 0 "status after the stop"
partial=$(grep -c "partial (step [0-9] of 6)" "$WORK/out" || true)
[ "$partial" -ge 1 ] || fail "status after the stop: no partial point"
[ "$(grep -c "not started" "$WORK/out")" -eq 2 ] || fail "status after the stop: the last 2 points should not have started"
# On a loaded machine one of the first two points may reach its last step before the stop: it is
# done then, and the second run skips it.
finished=$(grep -cE " done$" "$WORK/out" || true)

run sweep run "$manifest" --parallel 2
expect_rc 0 "second run (completes the sweep)"
[ "$(grep -c "resume .* from step" "$WORK/err")" -eq "$partial" ] || fail "second run: expected $partial resumed point(s)"
[ "$(grep -c "done already: skipped" "$WORK/err")" -eq "$finished" ] || fail "second run: expected $finished skipped point(s)"
[ "$(grep -c " done in " "$WORK/err")" -eq $((4 - finished)) ] || fail "second run: expected $((4 - finished)) points to finish"
python3 - "$out/runs" <<'PY' || fail "after resuming: metrics or attempt records wrong"
import glob, json, os, sys
for run in sorted(glob.glob(os.path.join(sys.argv[1], "*"))):
    recs = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    steps = [r["step"] for r in recs if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6], (run, steps)  # a resumed run repeats and skips nothing
    assert any("eval" in r and r["step"] == 6 for r in recs), run
    attempts = json.load(open(f"{run}/sweep_attempts.json"))["attempts"]
    assert attempts[-1]["exit_code"] == 0, (run, attempts)
    # A point stopped cleanly (exit 0, after its checkpoint) was resumed, not started again.
    if len(attempts) == 2 and attempts[0]["exit_code"] == 0:
        assert attempts[1]["resumed"], (run, attempts)
PY

# --- a third run skips every point ------------------------------------------------------------
before=$(cat "$out"/runs/*/sweep_attempts.json | md5sum)
run sweep run "$manifest"
expect_rc 0 "third run"
[ "$(grep -c "done already: skipped" "$WORK/err")" -eq 4 ] || fail "third run: expected 4 skipped points"
[ "$(cat "$out"/runs/*/sweep_attempts.json | md5sum)" = "$before" ] || fail "third run started a point"

# --- a failing point is reported, the others go on, the sweep exits 1; then it is retried -------
rm -rf "$out/runs/sequence-s2" "$out/runs/depth_kv_ffn-s1"
mkdir -p "$out/runs/sequence-s2"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close(); time.sleep(120)' \
  "$out/runs/sequence-s2/.lock" locked &
lock_pid=$!
for _ in $(seq 100); do [ -e locked ] && break; sleep 0.1; done
run sweep run "$manifest"
kill "$lock_pid"
expect_rc 1 "run with a locked point"
expect_in err "sequence-s2 failed: exit status 1" "run with a locked point"
expect_in err "depth_kv_ffn-s1 done in" "run with a locked point: the other point still trains"
run sweep status "$manifest"
expect_in out "failed (exit 1)" "status of a failed point"
# The retry goes through a launcher: its words come before the program's own path.
run sweep run "$manifest" --launcher "env MODA_SWEEP_TEST=1"
expect_rc 0 "run after the lock is gone (through a launcher)"
grep -q "^=== moda sweep .*: env MODA_SWEEP_TEST=1 $MODA train --config " "$out/runs/sequence-s2/train.log" ||
  fail "launcher: train.log does not show 'env MODA_SWEEP_TEST=1 $MODA train ...'"

# --- --only: a subset of the points, filters on one key are alternatives, errors name the choices --
run sweep status "$manifest" --only model.variant=sequence seed=1 seed=2
expect_rc 0 "status --only"
expect_in out "2 of 2 points done" "status --only model.variant=sequence"
grep -q "depth_kv_ffn-s" "$WORK/out" && fail "status --only model.variant=sequence lists a depth_kv_ffn point"
run sweep run "$manifest" --only seed=2 model.variant=depth_kv_ffn
expect_rc 0 "run --only (one done point)"
[ "$(grep -c "done already: skipped" "$WORK/err")" -eq 1 ] || fail "run --only: expected exactly 1 point"
run sweep run "$manifest" --only variant=sequence
expect_rc 1 "run --only with a key that is no axis"
expect_in err "'variant' is not an axis of sweep tiny-cpu (axes: model.variant, seed)" "run --only variant=..."
run sweep status "$manifest" --only seed=3
expect_rc 1 "status --only with a value no point has"
expect_in err "no point has seed = 3 (values: 1, 2)" "status --only seed=3"

# --- report ---------------------------------------------------------------------------------
run sweep report "$manifest"
expect_rc 0 "report"
expect_in out "$out/results.csv" "report prints the files written"
python3 - "$out" <<'PY' || fail "report: results files wrong"
import csv, json, math, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
assert len(rows) == 4, len(rows)
for r in rows:
    assert r["state"] == "done", r
    assert math.isfinite(float(r["val_loss"])) and float(r["val_loss"]) > 0, r
    assert abs(float(r["val_ppl"]) - math.exp(float(r["val_loss"]))) < 1e-3 * float(r["val_ppl"]), r
    assert r["val_loss/licenses"] == r["val_loss"], r  # one reported set: the average is that set
    assert int(r["tokens"]) == 6 * 8 * 64 and int(r["params"]) > 0, r
    assert float(r["wall_s"]) > 0 and float(r["tokens_per_s"]) > 0, r
j = json.load(open(f"{out}/results.json"))
assert [g["axes"]["model.variant"] for g in j["groups"]] == ["sequence", "depth_kv_ffn"], j["groups"]
for g in j["groups"]:
    v = g["metrics"]["val_loss"]
    assert v["n"] == 2 and v["std"] is not None and v["min"] <= v["mean"] <= v["max"], g
    vals = [float(r["val_loss"]) for r in rows if r["model.variant"] == g["axes"]["model.variant"]]
    assert abs(v["mean"] - sum(vals) / 2) < 1e-4 and abs(v["std"] - abs(vals[0] - vals[1]) / math.sqrt(2)) < 1e-4
# The contrast: depth_kv_ffn minus sequence, paired by seed, against the per-point values.
(c,) = j["contrasts"]
assert (c["axis"], c["value"], c["baseline"], c["pairs"]) == ("model.variant", "depth_kv_ffn", "sequence", 2), c
by = {(r["model.variant"], r["seed"]): float(r["val_loss"]) for r in rows}
d = [by[("depth_kv_ffn", s)] - by[("sequence", s)] for s in ("1", "2")]
dv = c["deltas"]["val_loss"]
assert dv["n"] == 2 and abs(dv["mean"] - sum(d) / 2) < 3e-4 and abs(dv["std"] - abs(d[0] - d[1]) / math.sqrt(2)) < 3e-4, (dv, d)  # CSV: 4 digits
assert c["deltas"]["val_loss/licenses"]["n"] == 2, c
md = open(f"{out}/results.md").read()
assert "## Mean ± spread over seeds" in md and " ± " in md, md
assert "## model.variant against sequence, paired by seed" in md, md
PY
if "${MODA_PYTHON:-python3}" -c "import matplotlib" 2> /dev/null; then
  for f in loss_curves.png val_ppl.png contrast.png; do [ -s "$out/$f" ] || fail "report: $f missing though matplotlib is installed"; done
else
  grep -q "No plots: matplotlib is not installed" "$out/results.md" || fail "report: results.md does not say why there are no plots"
fi
# --- the manifest edited after the points trained: stale, neither skipped as done nor trained over --
python3 - "$manifest" "$WORK/edited.json" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))
m["base"] = os.path.join(os.path.dirname(sys.argv[1]), m["base"])
m["set"]["optim.lr"] = 0.5
json.dump(m, open(sys.argv[2], "w"))
PY
before=$(cat "$out"/runs/*/sweep_attempts.json | md5sum)
run sweep status "$WORK/edited.json"
[ "$(grep -c "stale: trained with another config (optim.lr: run 0.003, manifest 0.5)" "$WORK/out")" -eq 4 ] ||
  { cat "$WORK/out" >&2; fail "status after editing the manifest: expected 4 stale points naming optim.lr"; }
run sweep run "$WORK/edited.json"
expect_rc 1 "run of the edited manifest"
expect_in err "move the folder away" "run of the edited manifest"
[ "$(cat "$out"/runs/*/sweep_attempts.json | md5sum)" = "$before" ] || fail "run of the edited manifest trained a point"
echo "ok: sweep run (stop, resume, skip, failure, stale), status, report"

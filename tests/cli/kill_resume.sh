#!/usr/bin/env bash
# kill -9 of the whole training job at random moments, 10 times, with a checkpoint every step:
# after each kill checkpoints/latest names a complete checkpoint, and the next `--resume` loads it
# (SHA-256 verified), continues from its step and trains on; a last resume runs to a clean end and
# metrics.jsonl holds every step once. The job is "${LAUNCH[@]}" moda train: one rank here.
# With sharded checkpoints, LAUNCH=(mpirun ... -np 2) runs the same trials over two ranks
# (kill_job kills mpirun's children, the ranks, and mpirun itself).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
LAUNCH=()
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=1000000 --set train.checkpoint_every=1 --set train.eval_every=0)
run_dir="$WORK/run"
seed=${MODA_FAULT_SEED:-$$}
RANDOM=$seed
echo "random kill moments from seed $seed (MODA_FAULT_SEED=$seed repeats them)"

kill_job() {  # kill -9 of every process of the job at once: the ranks (children of mpirun) and it
  local kids
  kids=$(pgrep -P "$JOB_PID" || true)
  kill -9 $kids "$JOB_PID"
  wait "$JOB_PID" 2> /dev/null || true
  JOB_PID=""
}

latest_step() {  # the step of the checkpoint checkpoints/latest names; fails unless it is complete
  local name
  name=$(cat "$run_dir/checkpoints/latest") || fail "no checkpoints/latest"
  [ -f "$run_dir/checkpoints/$name/manifest.json" ] || fail "checkpoints/latest names $name, which has no manifest"
  echo "${name#step-}"
}

leftovers=0
for trial in $(seq 10); do
  before=$(last_logged_step "$run_dir")
  resumed_from=0
  [ -f "$run_dir/checkpoints/latest" ] && resumed_from=$(latest_step)
  : > "$WORK/err"
  start_job "$run_dir" --config "$cfg" "${SETS[@]}" --resume
  # The kill comes 1 to 3 steps past anything logged before, plus 0-90 ms: within a step, a
  # save, a rename or a prune. Any moment is a valid one; that is the point.
  wait_for_step "$run_dir" $((before + 1 + RANDOM % 3))
  sleep "0.0$((RANDOM % 10))"
  kill_job
  if [ "$resumed_from" -gt 0 ]; then
    expect_in err "step-$resumed_from at step $resumed_from" "trial $trial: resume from step $resumed_from"
  fi
  now=0  # a kill before the first save leaves no checkpoint; once there was one, latest must stay
  if [ -f "$run_dir/checkpoints/latest" ]; then
    now=$(latest_step)
  else
    [ "$resumed_from" -eq 0 ] || fail "trial $trial: checkpoints/latest is gone"
  fi
  [ "$now" -ge "$resumed_from" ] || fail "trial $trial: latest went back from step $resumed_from to $now"
  [ "$now" -le "$(last_logged_step "$run_dir")" ] || fail "trial $trial: latest step $now was never logged"
  if compgen -G "$run_dir/checkpoints/*.tmp.*" > /dev/null; then leftovers=$((leftovers + 1)); fi
  echo "trial $trial: resumed from step $resumed_from, killed after step $(last_logged_step "$run_dir"), latest step $now"
done

# The last resume trains two more steps and stops cleanly; every step 1..N is logged exactly once.
final=$(($(latest_step) + 2))
RC=0
"${LAUNCH[@]}" "$MODA" train --config "$cfg" "${SETS[@]}" --resume --stop-after "$final" --run-dir "$run_dir" \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 0 "the final resume"
[ "$(latest_step)" -eq "$final" ] || fail "the final resume did not checkpoint step $final"
if compgen -G "$run_dir/checkpoints/*.tmp.*" > /dev/null; then fail "temporaries of killed saves outlived a save"; fi
python3 - "$run_dir/metrics.jsonl" "$final" <<'PY' || fail "metrics.jsonl does not hold each step once"
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if '"loss"' in l]
assert steps == list(range(1, int(sys.argv[2]) + 1)), steps
PY
echo "ok: 10 kills -9 at random moments, $leftovers left a temporary folder; latest always loaded and resumed"

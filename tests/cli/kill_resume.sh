#!/usr/bin/env bash
# kill -9 of the whole training job at random moments, 10 times, with a checkpoint every step:
# after each kill checkpoints/latest names a complete checkpoint that `moda checkpoint info`
# verifies (every SHA-256) and `moda eval` loads, and the next `--resume` loads it, continues
# from its step and trains on; a last resume runs to a clean end and metrics.jsonl holds every
# step once.
# Called as: kill_resume.sh MODA_BINARY SOURCE_DIR [RANKS]. RANKS 1 (the default): the job is
# `moda train`, one process. RANKS 2: the job is `mpirun -np 2 moda train` (sharded checkpoints);
# kill_job kills mpirun and its children, the ranks, at once; one copy of the run after the
# trials is also resumed by one rank (resharding 2 -> 1) and trains a step.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
ranks=${3:-1}
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=1000000 --set train.checkpoint_every=1 --set train.eval_every=0)
if [ "$ranks" -eq 1 ]; then
  LAUNCH=()
else
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"  # Open MPI's own leaks (mpi_train.sh)
  LAUNCH=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -np "$ranks")
  # Global batch 4 = 2 ranks x micro-batch 2 (micro_batch cannot change on resume, so the one-rank
  # resume below accumulates two micro-batches of 2).
  SETS+=(--set train.micro_batch=2)
fi
run_dir="$WORK/run"
seed=${MODA_FAULT_SEED:-$$}
RANDOM=$seed
echo "random kill moments from seed $seed (MODA_FAULT_SEED=$seed repeats them), $ranks rank(s)"

kill_job() {  # kill -9 of every process of the job at once: the ranks (children of mpirun) and it
  local kids shm
  shm=$(job_shm)
  kids=$(pgrep -P "$JOB_PID" || true)
  kill -9 $kids "$JOB_PID"
  wait "$JOB_PID" 2> /dev/null || true
  # The ranks, orphaned, may take a moment to go (one in fsync ends only when the write does);
  # while rank 0 exists its step-N.tmp.<pid> counts as in use and no save removes it.
  for _ in $(seq 600); do
    local left=0 k
    for k in $kids; do alive "$k" && left=1; done
    [ "$left" -eq 0 ] && break
    sleep 0.05
  done
  remove_job_shm $shm
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
  # (counted before the checks below: reading the checkpoints removes leftovers of dead processes)
  if compgen -G "$run_dir/checkpoints/*.tmp.*" > /dev/null; then leftovers=$((leftovers + 1)); fi
  if [ "$now" -gt 0 ]; then  # what latest names verifies and loads
    run checkpoint info "$run_dir/checkpoints/step-$now"
    expect_rc 0 "trial $trial: checkpoint info of step-$now"
    expect_in out "verified    every file matches manifest.json" "trial $trial: step-$now verified"
    run eval --checkpoint "$run_dir" --data "gpl=$WORK/data/data/gpl_val_*.bin" --device cpu --json
    expect_rc 0 "trial $trial: moda eval of $run_dir (latest: step-$now)"
  fi
  echo "trial $trial: resumed from step $resumed_from, killed after step $(last_logged_step "$run_dir"), latest step $now"
done

# Resharding: a copy of the run resumed by one rank (no mpirun) trains one step from it.
if [ "$ranks" -gt 1 ]; then
  cp -r "$run_dir" "$WORK/one"
  from=$(latest_step)
  run train --config "$cfg" "${SETS[@]}" --resume --stop-after $((from + 1)) --run-dir "$WORK/one"
  expect_rc 0 "one rank resuming the $ranks-rank checkpoint step-$from"
  expect_in err "step-$from at step $from (saved by $ranks rank(s), now 1" "one rank resumes step-$from"
  [ "$(cat "$WORK/one/checkpoints/latest")" = "step-$((from + 1))" ] || fail "the one-rank resume did not checkpoint step $((from + 1))"
  [ -f "$WORK/one/checkpoints/step-$((from + 1))/model.safetensors" ] || fail "step-$((from + 1)) is not in the one-rank layout"
  echo "one rank resumed the $ranks-rank step-$from and trained step $((from + 1))"
fi

# The same run folder without --resume is refused before the model is built (no "compute dtype"
# line, which the model's construction logs): a mistake costs a second, not a model's build.
run train --config "$cfg" "${SETS[@]}" --stop-after 1 --run-dir "$run_dir"
expect_rc 1 "train into a run folder with checkpoints, without --resume"
expect_in err "already holds checkpoints" "the refusal names the checkpoints"
! grep -q "compute dtype" "$WORK/err" || fail "the refused run built its model first"

# The last resume trains two more steps and stops cleanly; every step 1..N is logged exactly once.
final=$(($(latest_step) + 2))
RC=0
"${LAUNCH[@]}" "$MODA" train --config "$cfg" "${SETS[@]}" --resume --stop-after "$final" --run-dir "$run_dir" \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 0 "the final resume"
[ "$(latest_step)" -eq "$final" ] || fail "the final resume did not checkpoint step $final"
if compgen -G "$run_dir/checkpoints/*.tmp.*" > /dev/null; then
  for t in "$run_dir"/checkpoints/*.tmp.*; do
    echo "left: ${t##*/} (process ${t##*.}: $(ps -o stat=,args= -p "${t##*.}" || echo gone))" >&2
  done
  fail "temporaries of killed saves outlived a save"
fi
python3 - "$run_dir/metrics.jsonl" "$final" <<'PY' || fail "metrics.jsonl does not hold each step once"
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if '"loss"' in l]
assert steps == list(range(1, int(sys.argv[2]) + 1)), steps
PY
echo "ok: 10 kills -9 of $ranks rank(s) at random moments, $leftovers left a temporary folder; latest always verified, loaded and resumed"

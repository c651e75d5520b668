#!/usr/bin/env bash
# Rank faults end in a message, not a hang (docs/distributed.md, "Faults"), `mpirun -np 2` on CPUs:
#  1. kill -9 of rank 1 mid-run, after a checkpoint: the job exits non-zero within 30 s and
#     mpirun names the rank; `--resume` at 2 ranks continues from the last complete checkpoint,
#     finishes, and its losses after the resume point equal an uninterrupted run's (to 1e-5).
#  2. SIGSTOP of rank 1 (a hung rank) with train.collective_timeout_s=3: rank 0 reports its
#     collective timed out, naming rank, collective and step, and the job exits non-zero within 30 s.
#  3. (moda_tests_cpu's hidden cases, test_collective_faults.cpp) a barrier that rank 1 skips
#     times out on rank 0 with the report; a broadcast from an invalid root is an MPI error that
#     the error handler reports naming the collective and step; both jobs end non-zero.
# Called as: mpi_faults.sh MODA_BINARY SOURCE_DIR MODA_TESTS_CPU_BINARY
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"  # as mpi_train.sh: Open MPI's own leaks
LAUNCH=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -np 2)
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
# Long enough never to finish by itself; global batch 4 = 2 ranks x micro-batch 2.
SETS=("${TINY_SETS[@]}" --set train.steps=1000000 --set train.micro_batch=2)

# 1. A rank dies after a checkpoint (every 2 steps): step 5 logged means step-2 is complete and
# step-4 complete or in the making when rank 1 is killed.
start_job "$WORK/killed" --config "$cfg" "${SETS[@]}" --set train.checkpoint_every=2
wait_for_step "$WORK/killed" 5
shm=$(job_shm)
rank1=$(rank_pid 1)
kill -9 "$rank1"
wait_job_ended 30
remove_job_shm $shm  # the killed rank's segment
expect_fail "mpirun after kill -9 of rank 1"
expect_in err "exited on signal 9" "mpirun names the killed rank"
echo "kill -9 of rank 1: job ended in ${ELAPSED} ms with status $RC"

# 1b. `--resume` at 2 ranks continues from the last complete checkpoint (step R: the kill lands
# a few steps after step 5 is logged, more on a loaded machine) and finishes at step R + 4; its
# losses after R are those of a run that was never interrupted (to 1e-5).
resumed=$(cat "$WORK/killed/checkpoints/latest") || fail "no checkpoints/latest after the kill"
[ -f "$WORK/killed/checkpoints/$resumed/manifest.json" ] || fail "latest names $resumed, which has no manifest"
from=${resumed#step-}
end=$((from + 4))
mpi_train() {  # mpi_train RUN ARGS...: moda train at 2 ranks, to the end; fails unless status 0
  RC=0
  : > "$WORK/err"
  timeout 120 "${LAUNCH[@]}" "$MODA" train --config "$cfg" "${SETS[@]}" --set train.checkpoint_every=2 \
    --run-dir "$1" "${@:2}" > "$WORK/out" 2> "$WORK/err" || RC=$?
  expect_rc 0 "mpirun -np 2 moda train --run-dir $*"
}
mpi_train "$WORK/killed" --resume --stop-after $end
expect_in err "resumed from $WORK/killed/checkpoints/$resumed at step $from" "the resume after the rank fault"
[ "$(cat "$WORK/killed/checkpoints/latest")" = "step-$end" ] || fail "the resume after the rank fault did not reach step $end"
mpi_train "$WORK/whole" --stop-after $end
python3 - "$WORK/whole/metrics.jsonl" "$WORK/killed/metrics.jsonl" "$from" "$end" <<'PY' || fail "the resumed run's losses differ from the uninterrupted run's"
import json, sys
def losses(path):
    return {j["step"]: j["loss"] for j in map(json.loads, open(path)) if "loss" in j}
whole, resumed, start, end = losses(sys.argv[1]), losses(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert sorted(whole) == sorted(resumed) == list(range(1, end + 1)), (sorted(whole), sorted(resumed))
worst = max(abs(resumed[s] - whole[s]) / abs(whole[s]) for s in range(start + 1, end + 1))
print(f"resumed from step {start}: steps {start + 1}-{end} differ from the uninterrupted run by {worst:.1e} relative at most")
assert worst <= 1e-5, (whole, resumed)
PY

# 2. A rank hangs: stopped, it holds its sockets open, so only the timeout can end the wait.
: > "$WORK/err"
# The timeout also covers the collectives of start-up: on a loaded machine (ctest -j, other
# builds) one rank may get there more than 3 s after the other, and rank 0 then times out before
# step 3, which is no test of the stop. Then the job runs again with a timeout 3 times as long
# (3, 9, 27 s); the stop and the report are checked on the run that reached step 3.
timeout_s=3
until { rm -rf "$WORK/stopped"; : > "$WORK/err"
  start_job "$WORK/stopped" --config "$cfg" "${SETS[@]}" --set train.collective_timeout_s=$timeout_s
  reach_step "$WORK/stopped" 3; }; do
  wait "$JOB_PID" || true
  JOB_PID=""
  grep -q "timed out after .* (train.collective_timeout_s = $timeout_s)" "$WORK/err" && [ "$timeout_s" -lt 27 ] ||
    fail "the job with collective_timeout_s=$timeout_s ended before logging step 3"
  echo "a collective timed out before step 3 with collective_timeout_s=$timeout_s" \
    "($(grep -m1 -o 'collective [a-z_]* timed out after [^(]*' "$WORK/err")); again with $((timeout_s * 3))"
  timeout_s=$((timeout_s * 3))
done
STOPPED_PID=$(rank_pid 1)
kill -STOP "$STOPPED_PID"
wait_job_ended $((timeout_s + 27))
expect_fail "mpirun after SIGSTOP of rank 1"
# The report: rank 0 waited at least the timeout (and, however loaded the machine, less than 5 s more).
report=$(grep -m1 -oE '\[error\] rank 0 of 2: collective [a-z_]+ timed out after [0-9]+\.[0-9] s at step [0-9]+ \(train\.collective_timeout_s = [0-9]+\)' \
  "$WORK/err") || fail "no timeout report from rank 0 naming the collective and step"
waited=$(sed -E 's/.* after ([0-9.]+) s .*/\1/' <<< "$report")
awk -v w="$waited" -v t="$timeout_s" 'BEGIN { exit !(w >= t && w < t + 5) }' ||
  fail "rank 0 reports a wait of $waited s with collective_timeout_s = $timeout_s"
[[ "$report" == *"(train.collective_timeout_s = $timeout_s)" ]] || fail "the report names another timeout: $report"
# The stopped rank is gone too (MPI_Abort kills the whole job, stopped processes included).
for _ in $(seq 200); do alive "$STOPPED_PID" || break; sleep 0.05; done
alive "$STOPPED_PID" && fail "the stopped rank $STOPPED_PID outlived the job"
STOPPED_PID=""
echo "SIGSTOP of rank 1: $(grep -m1 -o 'collective .* at step [0-9]*' "$WORK/err"); job ended in ${ELAPSED} ms"

# 4. Preemption: SIGTERM to every rank process (as Slurm signals a job's tasks), not to mpirun.
# Every rank finishes the step in progress (the ranks agree on the stop in a collective), the
# sharded checkpoint of that step is written and verifies, mpirun exits 0; --resume goes on.
start_job "$WORK/term" --config "$cfg" "${SETS[@]}"
wait_for_step "$WORK/term" 2
rank0=$(rank_pid 0)  # an assignment: a failing rank_pid ends the script (set -e) with its message
rank1=$(rank_pid 1)
kill -TERM "$rank0" "$rank1"
wait_job_ended 60
expect_rc 0 "mpirun after SIGTERM to both ranks"
term_ms=$ELAPSED
expect_in err "stopped by signal 15 after step" "SIGTERM to the ranks: the stop is logged"
stopped=$(sed -nE 's/.*stopped by signal 15 after step ([0-9]+);.*/\1/p' "$WORK/err" | sort -u)
[ "$(wc -l <<< "$stopped")" -eq 1 ] || fail "the ranks stopped after different steps: $stopped"
[ "$(cat "$WORK/term/checkpoints/latest")" = "step-$stopped" ] || fail "SIGTERM: no checkpoint of step $stopped"
[ "$(last_logged_step "$WORK/term")" -eq "$stopped" ] || fail "SIGTERM: steps were logged past the stop"
run checkpoint info "$WORK/term/checkpoints/step-$stopped"
expect_rc 0 "checkpoint info after SIGTERM"
expect_in out "sharded over 2 ranks" "SIGTERM: both ranks' shards"
expect_in out "verified    every file matches manifest.json" "SIGTERM: the checkpoint verifies"
mpi_train "$WORK/term" --resume --stop-after $((stopped + 1))
expect_in err "step-$stopped at step $stopped" "resume after SIGTERM"
echo "SIGTERM to both ranks: stopped after step $stopped, checkpoint written, mpirun exited 0 in ${term_ms} ms"

# 4b. SIGTERM to mpirun alone (Open MPI 4.1): mpirun does not forward it; it waits
# odls_base_sigkill_timeout, sends the ranks SIGTERM, waits as long again, SIGKILLs and exits 1
# whatever the ranks did. Whether the checkpoint is written is not reliable (about 1 try in 5
# of the tiny model with a 3 s wait wrote none: docs/distributed.md), so it is reported, not
# required; what is required: the job ends, and a checkpoint that latest names verifies.
LAUNCH=("${LAUNCH[@]:0:${#LAUNCH[@]}-2}" --mca odls_base_sigkill_timeout 3 -np 2)
start_job "$WORK/mpirun_term" --config "$cfg" "${SETS[@]}"
wait_for_step "$WORK/mpirun_term" 2
kill -TERM "$JOB_PID"
wait_job_ended 60
mpirun_rc=$RC
latest="none written"
if [ -f "$WORK/mpirun_term/checkpoints/latest" ]; then
  latest=$(cat "$WORK/mpirun_term/checkpoints/latest")
  run checkpoint info "$WORK/mpirun_term/checkpoints/$latest"
  expect_rc 0 "checkpoint info after SIGTERM to mpirun"
  latest="$latest written and verified"
fi
echo "SIGTERM to mpirun alone: checkpoint $latest; mpirun exited $mpirun_rc in ${ELAPSED} ms"
LAUNCH=("${LAUNCH[@]:0:${#LAUNCH[@]}-4}" -np 2)

# 3. The communicator alone, from the test binary (spdlog's default logger writes to stdout there).
TESTS=$(realpath "${3:?usage: $0 MODA_BINARY SOURCE_DIR MODA_TESTS_CPU_BINARY}")
unit_fault() {  # unit_fault TAG REGEX: the hidden case TAG under mpirun -np 2 fails the job, printing REGEX (ERE)
  RC=0
  timeout 60 "${LAUNCH[@]}" "$TESTS" "[$1]" > "$WORK/out" 2>&1 || RC=$?
  expect_fail "$1"
  [ "$RC" -ne 124 ] || fail "$1: the job hung (killed after 60 s)"
  grep -qE -- "$2" "$WORK/out" || fail "$1: no line matches '$2'"
}
# The wait printed is measured: at least the 1 s timeout, a little more on a loaded machine.
unit_fault mpi_fault_timeout 'rank 0 of 2: collective barrier timed out after [1-5]\.[0-9] s at step 5 \(train\.collective_timeout_s = 1\)'
unit_fault mpi_fault_error "MPI error in broadcast at step 7: MPI_ERR_ROOT"
echo "ok: a dead or hung rank ends the job with a message"

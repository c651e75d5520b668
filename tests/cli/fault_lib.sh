# shellcheck shell=bash disable=SC2034  # RC and ELAPSED are read by the sourcing scripts
# Helpers for the fault tests (sourced after lib.sh): start a training job in the background, wait
# for a step by polling metrics.jsonl (never a fixed sleep: a slow CI machine only makes the wait
# longer), find a rank's process, kill or stop it and time how long the job takes to end.

JOB_PID=""
STOPPED_PID=""
# On any exit: wake and kill what this script started, by pid, so nothing is left behind.
cleanup_jobs() {
  if [ -n "$STOPPED_PID" ]; then kill -CONT "$STOPPED_PID" 2> /dev/null || true; fi
  if [ -n "$JOB_PID" ]; then
    local kids
    kids=$(pgrep -P "$JOB_PID" || true)
    kill -9 $kids "$JOB_PID" 2> /dev/null || true
    wait "$JOB_PID" 2> /dev/null || true
  fi
}

trap 'cleanup_jobs; rm -rf "$WORK"' EXIT

# alive PID: the process runs (a child that ended but was not waited for yet is a zombie: not alive).
alive() {
  local state
  state=$(cut -d' ' -f3 "/proc/$1/stat" 2> /dev/null) || return 1
  [ "$state" != Z ]
}

# start_job RUN_DIR ARGS...: "${LAUNCH[@]}" moda train ARGS --run-dir RUN_DIR in the background;
# stdout/stderr in $WORK/out, $WORK/err (appended), its pid in JOB_PID.
start_job() {
  local run=$1
  shift
  "${LAUNCH[@]}" "$MODA" train "$@" --run-dir "$run" >> "$WORK/out" 2>> "$WORK/err" &
  JOB_PID=$!
}

# last_logged_step RUN_DIR: the largest training step in metrics.jsonl (0 when none).
last_logged_step() {
  local f=$1/metrics.jsonl
  [ -f "$f" ] || { echo 0; return; }
  { grep -o '"step":[0-9]*,"tokens"' "$f" || true; } | sed 's/[^0-9]//g' | sort -n | tail -1 | sed 's/^$/0/'
}

# reach_step RUN_DIR STEP: polls until training step STEP is logged (every step is: log_every 1);
# status 1 when the job ends first. Fails after 120 s without the step (a hang detector: the
# wait ends as soon as the step is logged, so a slow machine only makes it longer).
reach_step() {
  local run=$1 step=$2 start=$SECONDS
  until grep -q "\"step\":$step,\"tokens\"" "$run/metrics.jsonl" 2> /dev/null; do
    alive "$JOB_PID" || return 1
    [ $((SECONDS - start)) -lt 120 ] || fail "no step $step logged within 120 s"
    sleep 0.05
  done
}

# wait_for_step RUN_DIR STEP: reach_step, failing when the job ends first.
wait_for_step() {
  reach_step "$1" "$2" || fail "the job ended before logging step $2"
}

# rank_pid N: the pid of rank N of the mpirun job JOB_PID (its children carry OMPI_COMM_WORLD_RANK).
rank_pid() {
  local child
  for child in $(pgrep -P "$JOB_PID"); do
    # grep -z reads the NUL-separated list itself: a pipe `tr | grep -q` fails under pipefail
    # whenever grep's early exit kills tr with SIGPIPE (a flake of cli_mpi_faults under load).
    if grep -qxz "OMPI_COMM_WORLD_RANK=$1" "/proc/$child/environ" 2> /dev/null; then
      echo "$child"
      return
    fi
  done
  fail "no process of rank $1 under mpirun (pid $JOB_PID)"
}

# job_shm: the shared-memory files the processes of JOB_PID have mapped (Open MPI's
# /dev/shm/vader_segment.*). A process killed by SIGKILL cannot remove its own, and mpirun killed
# the same way cannot either: these are removed by remove_job_shm after such a kill, so that
# repeated kills do not pile up files in /dev/shm. Only this job's files: others' are in use.
job_shm() {
  local pid
  for pid in $(pgrep -P "$JOB_PID") "$JOB_PID"; do
    grep -o '/dev/shm/vader_segment[^ ]*' "/proc/$pid/maps" 2> /dev/null || true
  done | sort -u
}
remove_job_shm() {  # remove_job_shm FILES...: once the job has ended
  [ $# -eq 0 ] || rm -f -- "$@"
}

# wait_job_ended LIMIT_S: waits for JOB_PID; its status in RC, the seconds it took in ELAPSED.
# Fails when it runs longer than LIMIT_S (then it is killed by the exit trap).
wait_job_ended() {
  local limit=$1 start_ns
  start_ns=$(date +%s%N)
  while alive "$JOB_PID"; do
    ELAPSED=$((($(date +%s%N) - start_ns) / 1000000))
    [ "$ELAPSED" -lt $((limit * 1000)) ] || fail "the job still runs ${limit} s after the fault: it hangs"
    sleep 0.05
  done
  RC=0
  wait "$JOB_PID" || RC=$?
  ELAPSED=$((($(date +%s%N) - start_ns) / 1000000))
  JOB_PID=""
}

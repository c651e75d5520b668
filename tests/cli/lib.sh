# Helpers for the CLI smoke tests (sourced). Each test script is called as
#   bash tests/cli/<name>.sh MODA_BINARY SOURCE_DIR
# and exits non-zero with a message on the first failed check.
set -euo pipefail

MODA=$(realpath "${1:?usage: $0 MODA_BINARY SOURCE_DIR}")
SRC=$(realpath "${2:?usage: $0 MODA_BINARY SOURCE_DIR}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/moda-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK/out" "$WORK/err"; do
    [ -s "$f" ] && { echo "--- ${f##*/} (first 20 lines):" >&2; head -20 "$f" >&2; }
  done
  exit 1
}

# run ARGS...: runs moda with stdout in $WORK/out, stderr in $WORK/err and the status in $RC.
run() {
  RC=0
  "$MODA" "$@" > "$WORK/out" 2> "$WORK/err" || RC=$?
}

expect_rc() {  # expect_rc N WHAT
  [ "$RC" -eq "$1" ] || fail "$2: exit status $RC, expected $1"
}

expect_fail() {  # expect_fail WHAT: any non-zero status
  [ "$RC" -ne 0 ] || fail "$1: exit status 0, expected a failure"
}

expect_stdout_empty() { [ ! -s "$WORK/out" ] || fail "$1: stdout is not empty"; }
expect_stderr_empty() { [ ! -s "$WORK/err" ] || fail "$1: stderr is not empty"; }

expect_in() {  # expect_in out|err TEXT WHAT: fixed-string match
  grep -qF -- "$2" "$WORK/$1" || fail "$3: '$2' not found on std$1"
}

# make_tiny_data DIR: a tokenizer (vocabulary 320) and train/val shards from two licence texts in
# DIR (tokenizer.json, data/gpl_{train,val}_*.bin, data/apache_{train,val}_*.bin). About a second.
make_tiny_data() {
  local dir=$1
  mkdir -p "$dir/data"
  "$MODA" tokenize train --input /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 \
    --vocab-size 320 --out "$dir/tokenizer.json" 2> "$WORK/err" || fail "make_tiny_data: tokenize train"
  "$MODA" tokenize encode --tokenizer "$dir/tokenizer.json" --input /usr/share/common-licenses/GPL-3 \
    --out "$dir/data/gpl" --val-fraction 0.2 2> "$WORK/err" || fail "make_tiny_data: tokenize encode GPL-3"
  "$MODA" tokenize encode --tokenizer "$dir/tokenizer.json" --input /usr/share/common-licenses/Apache-2.0 \
    --out "$dir/data/apache" --val-fraction 0.5 2> "$WORK/err" || fail "make_tiny_data: tokenize encode Apache-2.0"
}

# The --set overrides that make experiments/tiny-cpu.json a model of a few thousand parameters
# reading the data of make_tiny_data DIR, trained for 3 steps: a run takes well under a second.
tiny_sets() {
  local dir=$1
  TINY_SETS=(--set "data.train=[\"$dir/data/gpl_train_*.bin\"]"
    --set "data.val={\"gpl\": \"$dir/data/gpl_val_*.bin\", \"apache\": \"$dir/data/apache_val_*.bin\"}"
    --set data.seq_len=16 --set model.max_seq_len=16 --set model.vocab_size=320 --set model.d_model=32
    --set model.n_layers=2 --set model.n_heads=2 --set model.n_kv_heads=1 --set model.ffn_hidden=64
    --set train.steps=3 --set train.global_batch=4 --set train.micro_batch=4 --set train.log_every=1
    --set train.eval_max_batches=2 --set train.device=cpu --set optim.warmup_steps=1)
}

# mpi_test_env: for multi-rank tests. Open MPI as root (CI); no LeakSanitizer for the ranks in
# sanitizer builds (Open MPI's MCA components, unloaded at MPI_Finalize, keep allocations LSan
# reports as leaks of unknown modules, with no name to suppress; leak checking of moda's own code
# is done by every other test, memory errors are still caught); MPIRUN with one BLAS thread per
# rank on an oversubscribed machine.
mpi_test_env() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  MPIRUN=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
}

compare_losses() {  # compare_losses RUN_A RUN_B (under $WORK): every logged loss and the final eval within 1e-5 relative
  python3 - "$WORK/$1" "$WORK/$2" <<'PY' || fail "losses of $1 and $2 differ"
import json, sys
def losses(run):
    out = []
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        if "checkpoint" in j:  # save timings, not losses
            continue
        out.append(j["loss"] if "loss" in j else j["eval"]["average"]["loss"])
    return out
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == len(b) == 5, (len(a), len(b))  # 4 steps + the final evaluation
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{sys.argv[1].split('/')[-1]} vs {sys.argv[2].split('/')[-1]}: max relative difference {worst:.2e}")
assert worst < 1e-5, (a, b)
PY
}

#!/usr/bin/env bash
# Multi-rank training on CPUs through Open MPI (the MPI communicator, sharded optimiser state):
# with one global batch, `mpirun -np 2` and `-np 3` (uneven padding of every flat group) log the
# same losses as one rank, to float rounding, for depth_kv_ffn pre-norm and sequence post-norm,
# with gradient accumulation (micro-batch 2 < per-rank batch); the final evaluation, dealt over
# the ranks, agrees too. Ranks whose configs differ stop together with a message naming them.
source "$(dirname "$0")/lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
# In a sanitizer build: Open MPI's MCA components, unloaded at MPI_Finalize, keep allocations
# that LeakSanitizer reports as leaks of unknown modules (no name to suppress). Leak checking of
# moda's own code is done by every other test; memory errors are still caught here.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPIRUN=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=4 --set train.global_batch=12 --set train.micro_batch=2)

train_np() {  # train_np N NAME EXTRA_SETS...
  local np=$1 name=$2; shift 2
  RC=0
  "${MPIRUN[@]}" -np "$np" "$MODA" train --config "$cfg" "${SETS[@]}" "$@" --run-dir "$WORK/$name" \
    > "$WORK/out" 2> "$WORK/err" || RC=$?
  expect_rc 0 "mpirun -np $np moda train ($name)"
}

compare() {  # compare RUN_A RUN_B: every logged loss and the final eval within 1e-5 relative
  python3 - "$WORK/$1" "$WORK/$2" <<'PY' || fail "losses of $1 and $2 differ"
import json, sys
def losses(run):
    out = []
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        out.append(j["loss"] if "loss" in j else j["eval"]["average"]["loss"])
    return out
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == len(b) == 5, (len(a), len(b))  # 4 steps + the final evaluation
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{sys.argv[1].split('/')[-1]} vs {sys.argv[2].split('/')[-1]}: max relative difference {worst:.2e}")
assert worst < 1e-5, (a, b)
PY
}

for np in 1 2 3; do train_np "$np" "kvffn_pre_np$np" --set model.variant=depth_kv_ffn --set model.norm=pre; done
grep -q "sharded optimiser state over 3 ranks" "$WORK/err" || fail "-np 3: no sharding line on stderr"
compare kvffn_pre_np1 kvffn_pre_np2
compare kvffn_pre_np1 kvffn_pre_np3
for np in 1 2; do train_np "$np" "seq_post_np$np" --set model.variant=sequence --set model.norm=post; done
compare seq_post_np1 seq_post_np2

# Ranks that disagree: both stop, non-zero, naming the rank and the field.
RC=0
timeout 120 "${MPIRUN[@]}" -np 1 "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/mismatch" : \
  -np 1 "$MODA" train --config "$cfg" "${SETS[@]}" --set train.steps=5 --run-dir "$WORK/mismatch" \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_fail "mpirun with differing --set per rank"
[ "$RC" -ne 124 ] || fail "mpirun with differing configs hung"
expect_in err "ranks 1 run a config or program version that differs from rank 0's" "config mismatch"
expect_in err "config.train.steps" "config mismatch names the field"
echo "ok: multi-rank training equals one rank"

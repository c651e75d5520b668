#!/usr/bin/env bash
# A model that does not fit one rank's memory budget unsharded trains when sharded over 4 ranks.
# The budget is a per-process cap on private writable memory (`ulimit -d`, RLIMIT_DATA: what
# malloc and anonymous mmap hand out; not shared libraries or MPI's shared segments). The model
# (67M parameters: width 512, 16 blocks) needs ~16 bytes per parameter at one rank (f32 weights
# and gradients, two AdamW moments or the same as shards: ~1.07 GB, ~1.34 GB at start-up with
# the weights still whole) but at 4 ranks ~8 (the whole f32 model while it is built, plus its
# 4-byte share of the shards). The process's own overhead (Open MPI, OpenBLAS, the program)
# differs between machines (4 ranks needed 1.0 GB on one 2-core VM and more than 1.1 GB on
# another), so the test finds the smallest of a few caps under which 4 ranks train, up to 1.45 GB,
# and requires one rank to fail under that same cap with moda's out-of-memory error.
source "$(dirname "$0")/lib.sh"
mpi_test_env
cfg="$SRC/experiments/tiny-cpu.json"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
BIG=("${TINY_SETS[@]}" --set model.d_model=512 --set model.n_layers=16 --set model.n_heads=8 --set model.n_kv_heads=4
  --set model.ffn_hidden=2048 --set train.steps=2 --set train.global_batch=4 --set train.micro_batch=1
  --set train.log_every=1 --set "data.val={}")

capped() {  # capped NP NAME: mpirun -np NP moda train under ulimit -d $CAP_KIB (every rank)
  RC=0
  timeout 300 "${MPIRUN[@]}" -np "$1" bash -c 'ulimit -d "$0"; exec "$@"' "$CAP_KIB" "$MODA" train --config "$cfg" \
    "${BIG[@]}" --set parallel.sharding=full --run-dir "$WORK/$2" > "$WORK/out" 2> "$WORK/err" || RC=$?
  [ "$RC" -ne 124 ] || fail "mpirun -np $1 under the cap hung"
}

# The one-rank side runs the same (sharded) code path at a world of one, which holds all of the
# state: the unsharded trainer's failure under the cap can land inside OpenBLAS's own buffer
# allocation, which then hangs instead of failing (seen with OPENBLAS_NUM_THREADS=1).
CAP_KIB=""
for cap in 1000000 1150000 1300000 1450000; do
  CAP_KIB=$cap
  capped 4 "sharded-$cap"
  [ "$RC" -ne 0 ] || break
  # Out of memory in moda's allocator or in Open MPI's own buffers (MPI_ERR_INTERN), nothing else.
  grep -qE "out of host memory|MPI error in" "$WORK/err" || fail "4 ranks under $cap KiB failed for another reason"
  CAP_KIB=""
done
[ -n "$CAP_KIB" ] || fail "4 sharded ranks did not train under 1.45 GB"
echo "4 ranks train under a cap of $CAP_KIB KiB"
capped 1 whole
expect_fail "one rank under the same ${CAP_KIB} KiB cap"
expect_in err "out of host memory" "the one rank names the failure"
python3 - "$WORK/sharded-$CAP_KIB/metrics.jsonl" <<'PY' || fail "the sharded run did not train 2 steps"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
assert [s["step"] for s in steps] == [1, 2], steps
assert steps[0]["sharding"] == "zero3" and steps[0]["world_size"] == 4, steps[0]
print(f"4 ranks under the cap: loss {steps[-1]['loss']:.4f}, "
      f"{steps[-1]['shard_state_mib_per_rank']:.1f} MiB of shards and "
      f"{steps[-1]['gathered_peak_mib_per_rank']:.1f} MiB gathered at peak per rank")
PY
echo "ok: a model too big for one rank's cap trains sharded over 4"

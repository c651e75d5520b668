#!/usr/bin/env bash
# GPU-host check of the split cuDNN + depth attention path (issues 14/15; carry .deps and
# runs/demo/data). Parts, each inside one 10-minute command:
#   tests   build moda_tests_gpu and run the attention l0 tests (split first: L 1, 5, 20, 70)
#   all     build everything needed, the tests, depth_kv_ffn 30 steps with attention_l0 moda vs
#           auto (tokens/s; auto logs its per-shape choice), then bench/attention_baseline.py at
#           T 16384 (G 8, L 64) and the LM shape with the split columns; when a second build was
#           carried as prebuilt-main.tar.xz (tools/pack-prebuilt.sh), the bench runs with it too,
#           in the same sitting (an A/B of a branch against main)
#   depth   the two depth kernels alone at the training shapes (`moda bench attention --cases train`)
#           with every build carried as prebuilt*.tar.xz, one after another in the same sitting
#           (e.g. prebuilt.tar.xz = main, prebuilt-fwdlazy.tar.xz = a branch); the tables go to $OUT
set -uo pipefail
source tools/gpu-host-env.sh
b=${MODA_BUILD:-/tmp/build-gpu}
part=${1:-all}
if [ "$part" = depth ]; then
  for dir in /tmp/prebuilt*/; do
    name=$(basename "$dir")
    echo "== $name"
    timeout 120 "$dir/tests/moda_tests_gpu" "attention l0 cuda: split*" 2>&1 | tail -1
    timeout 120 "$dir/moda" bench attention --cases train --iters 20 2>&1 | tail -6 | tee "$OUT/depth-$name.txt"
  done
  exit 0
fi
targets=(moda_tests_gpu); [ "$part" = all ] && targets+=(moda)
[ -n "${MODA_BUILD:-}" ] || bash tools/gpu-host-build.sh $b "${targets[@]}" 2>&1 | tail -3
timeout 150 $b/tests/moda_tests_gpu "attention l0 cuda: split*" 2>&1 | tail -25
timeout 100 $b/tests/moda_tests_gpu "attention l0*" 2>&1 | tail -4
[ "$part" = tests ] && exit 0
for mode in moda auto; do
  rm -rf /tmp/mt
  timeout 100 $b/moda train --config experiments/gpu-125m.json --set model.variant=depth_kv_ffn --set train.steps=30 \
    --set train.eval_every=0 --set train.checkpoint_every=0 --set "data.val={}" --set train.attention_l0=$mode \
    --run-dir /tmp/mt 2>&1 | grep -E "step +30/|attention L=|error|rror" | cut -c26-300 | sed "s/^/$mode /"
  cp /tmp/mt/metrics.jsonl $OUT/split-dkf-$mode.jsonl 2>/dev/null
done
# The split path beside ours, torch flash and torch cuDNN: T 16384 (G 8, L 64) and the LM shape.
timeout 200 /opt/torch/.venv/bin/python3 bench/attention_baseline.py --moda $b/moda --only 2 11 \
  --json-out $OUT/attention-split-h200.json 2>&1 | tail -12
if [ -x /tmp/prebuilt-main/moda ]; then
  echo "== the same with /tmp/prebuilt-main/moda"
  timeout 120 /opt/torch/.venv/bin/python3 bench/attention_baseline.py --moda /tmp/prebuilt-main/moda --only 2 11 \
    --json-out $OUT/attention-split-main-h200.json 2>&1 | tail -6
fi

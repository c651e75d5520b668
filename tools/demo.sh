#!/usr/bin/env bash
# The main job on a built-in default: builds moda, makes a corpus from real text in Debian's
# packages (three validation domains), trains a small depth_kv_ffn MoDA model and a `sequence`
# baseline with the same budget (GPU when present, else CPU), and prints their validation
# perplexity side by side. Runs land in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh > runs-build.log 2>&1 || { tail -50 runs-build.log; exit 1; }
bash tools/make_demo_corpus.sh runs/demo
steps=${DEMO_STEPS:-200}
for variant in depth_kv_ffn sequence; do
  rm -rf "runs/demo/$variant"
  echo "== training $variant"
  build/moda train --config experiments/demo/demo.json --set model.variant=$variant --set train.steps=$steps \
    --run-dir "runs/demo/$variant"
done
data=()
for d in fortunes jargon licenses; do data+=("$d=runs/demo/data/${d}_val_*.bin"); done
build/moda eval --checkpoint runs/demo/depth_kv_ffn --data "${data[@]}" --json > runs/demo/eval_moda.json
build/moda eval --checkpoint runs/demo/sequence --data "${data[@]}" --json > runs/demo/eval_sequence.json
python3 tools/compare_evals.py runs/demo/eval_moda.json:depth_kv_ffn runs/demo/eval_sequence.json:sequence

#!/usr/bin/env bash
# On the GPU host: per-kernel GPU time of a few training steps of experiments/gpu-125m.json, read
# with Nsight Compute (only the duration metric, so the replay cost stays small), summed by kernel
# name. Comparing the sum with the step time from `moda train` shows how much is host overhead.
# Usage: bash tools/gpu-profile-step.sh [variant] [skip-kernels] [count]
set -uo pipefail
variant=${1:-sequence}; skip=${2:-4000}; count=${3:-2500}
rm -rf runs/profile
ncu --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip "$skip" --launch-count "$count" \
  build-gpu/moda train --config experiments/gpu-125m.json --set model.variant="$variant" --set train.steps=4 \
  --set train.eval_every=0 --set train.checkpoint_every=0 --run-dir runs/profile > runs/profile.csv 2> runs/profile.err
python3 - runs/profile.csv <<'PY'
import csv, sys, collections
scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
tot, cnt = collections.Counter(), collections.Counter()
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 14]
head = rows[0]; k = head.index("Kernel Name"); u = head.index("Metric Unit"); v = head.index("Metric Value")
for r in rows[1:]:
    name = r[k].split("(")[0][:70]
    tot[name] += float(r[v].replace(",", "")) * scale.get(r[u], 1.0); cnt[name] += 1
s = sum(tot.values())
print(f"{len(rows)-1} kernels, {s/1e3:.2f} ms GPU time (units seen: {sorted(set(r[u] for r in rows[1:]))})")
for name, t in tot.most_common(30): print(f"{t/1e3:9.3f} ms {100*t/s:5.1f}% {cnt[name]:6d}  {name}")
PY

#!/usr/bin/env bash
# One GPU-host sitting of a long sweep (issue 12: experiments/sweeps/norm-depth.json), whose points
# must each finish inside one 10-minute command because the host keeps nothing between uses.
#   call 1 (carry .deps):        source tools/gpu-host-env.sh; bash tools/gpu-host-build.sh /tmp/build-gpu moda
#   call 2 (carry .corpus-debs): bash tools/gpu-sweep-sitting.sh corpus
#   (or ONE call carrying .corpus-debs and prebuilt.tar.xz of `moda` alone, tools/pack-prebuilt.sh:
#    `bash tools/gpu-sweep-sitting.sh corpus && bash tools/gpu-sweep-sitting.sh run ...`)
#   call 3.. (no carry):         bash tools/gpu-sweep-sitting.sh run MANIFEST SECONDS model.n_layers=24 seed=1
# `corpus` builds runs/corpus (tools/make_corpus.sh, ~85 s on the host) and checks its SHA-256 against
# docs/corpus.md's. `run` restricts MANIFEST to the points matching every KEY=VALUE (`moda sweep run
# --only`: an axis key or "seed"), copies the committed results of finished points
# (experiments/results/NAME/runs) into the sweep's folder so they are skipped, trains the rest for
# at most SECONDS, and writes the run folders without their checkpoints to $OUT/NAME-runs.tgz
# (unpack into experiments/results/NAME/ and commit: `moda sweep status` counts them done).
set -euo pipefail
source tools/gpu-host-env.sh
moda=${MODA_BUILD:-/tmp/build-gpu}/moda
case "$1" in
corpus)
  MODA=$moda bash tools/make_corpus.sh /tmp/corpus .corpus-debs > /tmp/corpus.log 2>&1 || { tail -20 /tmp/corpus.log; exit 1; }
  want=$(grep -o 'SHA-256 of that file: `[0-9a-f]*`' docs/corpus.md | grep -o '[0-9a-f]\{64\}')
  got=$(sha256sum /tmp/corpus/corpus.sha256 | cut -d' ' -f1)
  echo "corpus.sha256: $got (docs/corpus.md: $want)"; [ "$got" = "$want" ] || echo "WARNING: the corpus differs from the documented one"
  ;;
run)
  manifest=$2 seconds=$3; shift 3
  mkdir -p runs; ln -sfn /tmp/corpus runs/corpus
  only=(); [ $# -gt 0 ] && only=(--only "$@")
  name=$(python3 -c "import json,sys; print(json.load(open('$manifest'))['name'])")
  out_dir=$(python3 -c "import json,sys; print(json.load(open('$manifest'))['output'])")
  mkdir -p "$out_dir/runs"
  [ -d "experiments/results/$name/runs" ] && cp -r "experiments/results/$name/runs/." "$out_dir/runs/"
  timeout "$seconds" $moda sweep run "$manifest" "${only[@]}" > $OUT/sweep.log 2>&1 || echo "sweep ended with $? (124: time limit)"
  tail -25 $OUT/sweep.log
  (cd "$out_dir" && tar --exclude=checkpoints --exclude=.lock -czf "$OUT/$name-runs.tgz" runs)
  ;;
*) echo "usage: $0 corpus | run MANIFEST SECONDS [KEY=VALUE...]" >&2; exit 2 ;;
esac

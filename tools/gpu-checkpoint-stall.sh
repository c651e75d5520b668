#!/usr/bin/env bash
# On the GPU host: the checkpoint stall (train.async_checkpoint true / false) for the 125M config and
# the Table 3 700M shape, unsharded and sharded at one rank; prints the checkpoint log lines and
# appends the metrics records to $OUT/stall.jsonl. Needs runs/demo/data and .deps (carried).
# Async runs checkpoint every `interval` steps, chosen longer than a write takes (125M: 32 steps ~
# 5 s vs ~3 s of writing; 700M: 40 steps ~ 20 s vs ~15 s), so a save's stall is its own snapshot
# and commit, not a wait for the previous write; the last save of a run waits for its write (the
# run ends) and is not a steady-state number. Sync runs: 12 steps, a save every 6.
source tools/gpu-host-env.sh
bash tools/gpu-host-build.sh /tmp/build-gpu moda 2>&1 | tail -1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
M700=(--set model.vocab_size=100278 --set model.d_model=1024 --set model.n_layers=36 --set model.n_heads=16 --set model.n_kv_heads=8 --set model.head_dim=64 --set model.ffn_hidden=4096 --set model.norm=reordered --set model.tie_embeddings=true --set model.max_seq_len=4096 --set data.seq_len=4096 --set train.global_batch=8 --set train.micro_batch=8 --set model.variant=sequence)
for size in 125m 700m; do
  shards=(auto full); [ $size = 700m ] && shards=(full)  # the 700M pair: the sharded path only (time)
  for shard in "${shards[@]}"; do
    for async in true false; do
      extra=(); [ $size = 700m ] && extra=("${M700[@]}")
      launch=(); [ $shard = full ] && launch=(mpirun -np 1 --bind-to none)
      interval=6; [ $async = true ] && { interval=32; [ $size = 700m ] && interval=40; }
      steps=$((interval * 2)); [ $async = true ] && steps=$((interval * 3))
      rm -rf /tmp/st
      timeout 240 "${launch[@]}" /tmp/build-gpu/moda train --config experiments/gpu-125m.json "${extra[@]}" --set train.steps=$steps --set train.eval_every=0 --set train.log_every=$interval --set train.checkpoint_every=$interval --set train.keep_checkpoints=1 --set "data.val={}" --set parallel.sharding=$shard --set train.async_checkpoint=$async --run-dir /tmp/st > /tmp/st.log 2>&1 || { echo "FAILED $size $shard $async"; tail -3 /tmp/st.log; }
      echo "== $size sharding=$shard async=$async (a save every $interval steps)"; grep -E "snapshot buffers|checkpoint .*(stall|s\))|step +$steps/" /tmp/st.log | cut -c26-230
      grep '"checkpoint"' /tmp/st/metrics.jsonl | sed "s/^/$size $shard $async /" >> $OUT/stall.jsonl
    done
  done
done

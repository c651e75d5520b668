#!/usr/bin/env bash
# `moda params --json` on experiments/tiny-cpu.json: the documented keys are there, the numbers are
# positive, and the counts equal a hand count from docs/model.md ("Counting").
source "$(dirname "$0")/lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"

check() {  # check VARIANT TIED EXPECTED_TOTAL EXPECTED_EMBEDDING EXPECTED_DEPTH
  run params --config "$cfg" --json --set model.variant="$1" --set model.tie_embeddings="$2"
  expect_rc 0 "moda params --json ($1, tied $2)"
  python3 - "$WORK/out" "$@" <<'PY' || fail "moda params --json ($1, tied $2): schema or counts wrong"
import json, sys
j = json.load(open(sys.argv[1]))
variant, total, embedding, depth = sys.argv[2], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
for k in ["config", "params", "non_embedding_params", "embedding_params", "block_params",
          "depth_projection_params", "unused_params", "seq_len", "flops_per_token", "flops", "model"]:
    assert k in j, f"missing key {k}"
for k in ["dense", "attention", "depth", "lm_head_not_included"]:
    assert k in j["flops"], f"missing key flops.{k}"
for k in ["params", "non_embedding_params", "embedding_params", "block_params", "seq_len", "flops_per_token"]:
    assert isinstance(j[k], (int, float)) and j[k] > 0, f"{k} = {j[k]} is not a positive number"
for k in ["dense", "attention", "lm_head_not_included"]:
    assert j["flops"][k] > 0, f"flops.{k} = {j['flops'][k]} is not positive"
assert j["unused_params"] == 0 and j["depth_projection_params"] == depth, (j["unused_params"], j["depth_projection_params"])
assert j["model"]["variant"] == variant and j["seq_len"] == 64
assert j["block_params"] == 49376, j["block_params"]
assert j["embedding_params"] == embedding, j["embedding_params"]
assert j["params"] == total, j["params"]
assert j["non_embedding_params"] == total - embedding
assert j["flops"]["dense"] == 6 * j["non_embedding_params"]
assert j["flops"]["lm_head_not_included"] == 6 * 4096 * 64
assert abs(j["flops_per_token"] - (j["flops"]["dense"] + j["flops"]["attention"] + j["flops"]["depth"])) < 1
assert (j["flops"]["depth"] > 0) == (depth > 0)
# PaLM convention by hand: 12 * layers * Hq * d * T over all T keys; causal: (T + 1) / 2 keys per query.
assert j["flops"]["attention"] == 12 * 4 * 4 * 16 * 64
assert j["flops"]["attention_causal"] == 12 * 4 * 4 * 16 * 65 / 2
palm = j["flops"]["dense"] + j["flops"]["attention"] + j["flops"]["depth"] + 6 * 4096 * 64
assert abs(j["mfu_flops_per_token"]["palm"] - palm) < 1, j["mfu_flops_per_token"]
assert abs(j["mfu_flops_per_token"]["causal"] - (palm - 12 * 4 * 4 * 16 * 63 / 2)) < 1, j["mfu_flops_per_token"]
PY
}

# tiny-cpu: V 4096, D 64, L 4, Hq 4, Hk 2, d 16 (qd 64, kvd 32), ffn 192, qk_norm, no biases.
#   block = 64*64 (q) + 2*64*32 (k, v) + 64*64 (o) + 64 + 32 (qk norms) + 64*384 (gate_up)
#         + 192*64 (down) + 2*64 (norms) = 49376
#   depth pair = 2*64*32 = 4096, built for layers 0..2 in depth_kv_ffn: 12288
#   total = V*D (tied) + 4*block + depth + D (final norm)
check depth_kv_ffn true $((4096 * 64 + 4 * 49376 + 12288 + 64)) $((4096 * 64)) 12288
check sequence true $((4096 * 64 + 4 * 49376 + 64)) $((4096 * 64)) 0
check sequence false $((2 * 4096 * 64 + 4 * 49376 + 64)) $((2 * 4096 * 64)) 0
echo "ok: moda params --json"

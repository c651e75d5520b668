#!/usr/bin/env bash
# `moda generate` on a tiny model trained for 3 steps: --json schema and flags, greedy runs
# repeat, a seed reproduces a sample, a prompt gives the same tokens alone and in a batch, the
# streamed text is exactly the bytes of the generated tokens, errors name what is wrong; then
# `moda bench generate --json` on a config.
source "$(dirname "$0")/lib.sh"
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
TOK="$WORK/data/tokenizer.json"
# Room for prompts of ~15 tokens (a 320-token vocabulary splits text finely) plus the new tokens.
run train --config "$SRC/experiments/tiny-cpu.json" "${TINY_SETS[@]}" --set model.max_seq_len=64 --run-dir "$WORK/run"
expect_rc 0 "train"

gen() { run generate --device cpu --checkpoint "$WORK/run" --tokenizer "$TOK" --max-new-tokens 6 "$@"; }

# --json: one object per prompt, in order, with every field; greedy twice gives the same output.
gen --prompt "GNU General Public" --prompt "the" --temperature 0 --json
expect_rc 0 "generate --json"
cp "$WORK/out" "$WORK/greedy.jsonl"
gen --prompt "GNU General Public" --prompt "the" --temperature 0 --json
same_tokens() {  # same_tokens A B: the same prompts, ids and texts (timings differ)
  python3 -c 'import json,sys
f = lambda p: [(r["prompt"], r["ids"], r["text"]) for r in map(json.loads, open(p))]
sys.exit(f(sys.argv[1]) != f(sys.argv[2]))' "$1" "$2"
}
same_tokens "$WORK/out" "$WORK/greedy.jsonl" || fail "generate: two greedy runs differ"
python3 - "$WORK/greedy.jsonl" <<'PY' || fail "generate --json: schema or values wrong"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["prompt"] for r in rows] == ["GNU General Public", "the"], rows
for r in rows:
    assert set(r) == {"prompt", "prompt_ids", "ids", "text", "finish_reason", "tokens", "seconds",
                      "tokens_per_s", "batch", "batch_tokens_per_s"}, r.keys()
    assert r["batch"] == 2 and r["tokens"] == len(r["ids"]) and 1 <= len(r["ids"]) <= 6, r
    assert all(0 <= i < 320 for i in r["ids"] + r["prompt_ids"]) and r["prompt_ids"], r
    assert r["finish_reason"] == ("max_new_tokens" if len(r["ids"]) == 6 else "end_of_text"), r
    assert r["seconds"] > 0 and r["tokens_per_s"] > 0 and r["batch_tokens_per_s"] >= r["tokens_per_s"], r
PY

# Batching changes nothing: the second prompt alone gives the tokens it got in the batch.
gen --prompt "the" --temperature 0 --json
expect_rc 0 "generate one prompt --json"
python3 - "$WORK/out" "$WORK/greedy.jsonl" <<'PY' || fail "generate: a prompt alone and in a batch differ"
import json, sys
alone = json.loads(open(sys.argv[1]).read())
batched = [json.loads(l) for l in open(sys.argv[2])][1]
assert alone["ids"] == batched["ids"] and alone["batch"] == 1, (alone, batched)
PY

# Sampling: a seed reproduces the sample, another seed gives another one.
gen --prompt "GNU" --temperature 1.0 --top-k 50 --seed 5 --json && cp "$WORK/out" "$WORK/s5a"
gen --prompt "GNU" --temperature 1.0 --top-k 50 --seed 5 --json && cp "$WORK/out" "$WORK/s5b"
gen --prompt "GNU" --temperature 1.0 --top-k 50 --seed 6 --json && cp "$WORK/out" "$WORK/s6"
expect_rc 0 "generate --seed"
python3 - "$WORK/s5a" "$WORK/s5b" "$WORK/s6" <<'PY' || fail "generate --seed: not reproducible or not seeded"
import json, sys
a, b, c = (json.loads(open(p).read())["ids"] for p in sys.argv[1:])
assert a == b, (a, b)
assert a != c, (a, c)  # 6 draws from a near-uniform 320-token model: equal only by a fluke
PY

# Streaming (one prompt, no --json): stdout is exactly the bytes of the generated tokens (byte-level
# BPE: GPT-2's byte-to-character map undone), end token left out, then a newline.
gen --prompt "GNU" --temperature 2.0 --seed 5
expect_rc 0 "generate (streaming)"
gen_json() { gen --prompt "GNU" --temperature 2.0 --seed 5 --json; }
cp "$WORK/out" "$WORK/streamed"
gen_json
python3 - "$WORK/streamed" "$WORK/out" "$TOK" <<'PY' || fail "generate: streamed text differs from the tokens' bytes"
import json, sys
streamed = open(sys.argv[1], "rb").read()
ids = json.loads(open(sys.argv[2]).read())["ids"]
tok = json.load(open(sys.argv[3]))
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
char_to_byte = {chr(c): b for b, c in zip(bs, cs)}
spelling = {i: s for s, i in tok["model"]["vocab"].items()}
added = {t["id"]: t["content"] for t in tok.get("added_tokens", [])}
eot = next((i for i, c in added.items() if c == "<|endoftext|>"), None)
want = b"".join(added[i].encode() if i in added else bytes(char_to_byte[ch] for ch in spelling[i])
                for i in ids if i != eot)
assert streamed == want + b"\n", (streamed, want)
PY

# --prompt-file: one prompt per line (blank lines skipped) or a JSON list; the tokenizer is found in
# the run folder.
printf 'GNU\n\nthe licence\nApache\n' > "$WORK/prompts.txt"
cp "$TOK" "$WORK/run/tokenizer.json"
run generate --device cpu --checkpoint "$WORK/run" --prompt-file "$WORK/prompts.txt" --max-new-tokens 3 --json
expect_rc 0 "generate --prompt-file (lines)"
[ "$(wc -l < "$WORK/out")" -eq 3 ] || fail "generate --prompt-file: expected 3 JSON lines"
printf '["multi\\nline", "GNU"]' > "$WORK/prompts.json"
run generate --device cpu --checkpoint "$WORK/run" --prompt-file "$WORK/prompts.json" --max-new-tokens 3 --json
expect_rc 0 "generate --prompt-file (JSON list)"
python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert [x["prompt"] for x in r]==["multi\nline","GNU"], r' \
  "$WORK/out" || fail "generate --prompt-file JSON: prompts wrong"
# Several prompts without --json: one "[i] prompt+continuation" block each.
run generate --device cpu --checkpoint "$WORK/run" --prompt-file "$WORK/prompts.txt" --max-new-tokens 3
expect_rc 0 "generate (batch, text)"
for i in 0 1 2; do expect_in out "[$i] " "generate batch text"; done

# Errors: runtime ones (status 1) name the path or the limit; usage ones (status 2) the option.
run generate --device cpu --checkpoint "$WORK/nonexistent" --prompt "GNU"
expect_rc 1 "generate with a bad checkpoint path"
expect_in err "$WORK/nonexistent" "generate with a bad checkpoint path"
expect_stdout_empty "generate with a bad checkpoint path"
rm "$WORK/run/tokenizer.json"
run generate --device cpu --checkpoint "$WORK/run" --prompt "GNU"
expect_rc 1 "generate without a tokenizer"
expect_in err "no tokenizer: give --tokenizer FILE" "generate without a tokenizer"
run generate --device cpu --checkpoint "$WORK/run" --tokenizer "$TOK" --prompt "GNU" --max-new-tokens 70
expect_rc 1 "generate past max_seq_len"
expect_in err "model.max_seq_len = 64" "generate past max_seq_len"
run generate --checkpoint "$WORK/run" --tokenizer "$TOK"
expect_rc 2 "generate without a prompt"
expect_in err "--prompt" "generate without a prompt"
gen --prompt "GNU" --top-p 0
expect_rc 2 "generate --top-p 0"
expect_in err "top_p" "generate --top-p 0"
gen --prompt "GNU" --temperature -1
expect_rc 2 "generate --temperature -1"
gen --prompt "GNU" --prompt-file "$WORK/prompts.txt"
expect_rc 2 "generate --prompt and --prompt-file"
run generate --device cpu --checkpoint "$WORK/run" --tokenizer "$TOK" --prompt-file "$WORK/missing.txt"
expect_rc 1 "generate --prompt-file missing"
expect_in err "$WORK/missing.txt" "generate --prompt-file missing"

# bench generate: one row per batch size with positive rates.
run bench generate --config "$SRC/experiments/tiny-cpu.json" --set model.n_layers=2 --device cpu --batch 1,3 \
  --prompt-len 4 --new-tokens 5 --json
expect_rc 0 "bench generate --json"
python3 - "$WORK/out" <<'PY' || fail "bench generate --json: schema or values wrong"
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert [r["batch"] for r in j["runs"]] == [1, 3], j
for r in j["runs"]:
    assert r["steps"] == 4 and r["decode_tokens_per_s"] > 0 and r["total_tokens_per_s"] > 0, r
PY
run bench generate --config "$SRC/experiments/tiny-cpu.json" --batch 1,x
expect_rc 2 "bench generate --batch 1,x"
echo "ok: generate"

#!/usr/bin/env bash
# tokenize train -> encode -> decode on real text (a licence and dpkg's copyright file, which holds
# UTF-8 names) gives back the input byte for byte; reports go to stderr, only the text to stdout.
source "$(dirname "$0")/lib.sh"

texts=(/usr/share/common-licenses/GPL-3)
[ -f /usr/share/doc/dpkg/copyright ] && texts+=(/usr/share/doc/dpkg/copyright)
eot='<|endoftext|>'

run tokenize train --input "${texts[@]}" --vocab-size 400 --out "$WORK/tok.json"
expect_rc 0 "tokenize train"
expect_stdout_empty "tokenize train (its report belongs on stderr)"
[ -s "$WORK/tok.json" ] || fail "tokenize train wrote no tokenizer"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["model"]; assert m["type"]=="BPE" and len(m["vocab"])>256' \
  "$WORK/tok.json" || fail "tokenizer.json is not a BPE tokenizer with more than the 256 byte tokens"

# Whole files: each starts with the end-of-text token.
run tokenize encode --tokenizer "$WORK/tok.json" --input "${texts[@]}" --out "$WORK/all"
expect_rc 0 "tokenize encode"
expect_stdout_empty "tokenize encode (its report belongs on stderr)"
run tokenize decode --tokenizer "$WORK/tok.json" --input "$WORK"/all_train_*.bin
expect_rc 0 "tokenize decode"
expect_stderr_empty "tokenize decode"
for t in "${texts[@]}"; do printf '%s' "$eot"; cat "$t"; done > "$WORK/expected"
cmp -s "$WORK/out" "$WORK/expected" || fail "decoded text differs from the input ($(cmp "$WORK/out" "$WORK/expected"))"

# With a validation split: per file, the train part and the val part put together are the file,
# and the cut is at a line start at or after (1 - F) of the file's bytes (docs/data-formats.md).
run tokenize encode --tokenizer "$WORK/tok.json" --input "${texts[@]}" --out "$WORK/split" --val-fraction 0.25 \
  --threads 1
expect_rc 0 "tokenize encode --val-fraction 0.25"
"$MODA" tokenize decode --tokenizer "$WORK/tok.json" --input "$WORK"/split_train_*.bin > "$WORK/train.txt"
"$MODA" tokenize decode --tokenizer "$WORK/tok.json" --input "$WORK"/split_val_*.bin > "$WORK/val.txt"
python3 - "$WORK/train.txt" "$WORK/val.txt" "${texts[@]}" <<'PY' || fail "train/val split does not reassemble the input"
import sys
eot = b"<|endoftext|>"
train, val = (open(p, "rb").read().split(eot)[1:] for p in sys.argv[1:3])
files = [open(p, "rb").read() for p in sys.argv[3:]]
assert len(train) == len(val) == len(files), (len(train), len(val), len(files))
for t, v, f in zip(train, val, files):
    assert t + v == f, "parts do not add up to the file"
    assert len(t) >= int(0.75 * len(f)) and t.endswith(b"\n"), ("cut", len(t), len(f))
    assert len(v) > 0
PY

# The shards do not depend on the number of encoding threads.
run tokenize encode --tokenizer "$WORK/tok.json" --input "${texts[@]}" --out "$WORK/split4" --val-fraction 0.25 \
  --threads 4
expect_rc 0 "tokenize encode --threads 4"
for part in train val; do
  cmp -s "$WORK/split_${part}_000000.bin" "$WORK/split4_${part}_000000.bin" || fail "$part shard differs for 1 and 4 threads"
done

# `decode > file` of a bad shard: the error goes to stderr, the file stays empty.
head -c 1000 /usr/share/common-licenses/GPL-3 > "$WORK/not-a-shard.bin"
run tokenize decode --tokenizer "$WORK/tok.json" --input "$WORK/not-a-shard.bin"
expect_rc 1 "tokenize decode of a file that is not a shard"
expect_stdout_empty "tokenize decode of a file that is not a shard"
expect_in err "not-a-shard.bin" "tokenize decode of a file that is not a shard"
echo "ok: tokenize round trip of ${#texts[@]} file(s)"

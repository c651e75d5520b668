#!/usr/bin/env bash
# Command-line mistakes exit 2 with a message on stderr that names the culprit, and print nothing
# on stdout; a runtime failure (a file that does not exist) exits 1, also with stdout empty.
source "$(dirname "$0")/lib.sh"
cd "$WORK"

usage_error() {  # usage_error NEEDLE ARGS...: moda ARGS must exit 2 naming NEEDLE on stderr
  local needle=$1
  shift
  run "$@"
  local what="moda $*"
  expect_rc 2 "$what"
  expect_stdout_empty "$what"
  expect_in err "$needle" "$what"
}

usage_error "unknown command 'frobnicate'" frobnicate
usage_error "unknown command 'tokenize frobnicate'" tokenize frobnicate
usage_error "usage: moda tokenize" tokenize  # a group word alone: its commands, on stderr
for cmd in "train" "eval" "params" "tokenize train" "tokenize encode" "tokenize decode" "bench ops" \
  "bench attention"; do
  read -r -a words <<< "$cmd"
  usage_error "--no-such-option" "${words[@]}" --no-such-option 1
  expect_in err "moda $cmd --help" "moda $cmd --no-such-option 1 (the message points at --help)"
done
usage_error "'stray'" train stray  # the same parser serves every command: two suffice
usage_error "'-config'" params -config x.json
usage_error "--config" train                                      # missing required option
usage_error "--config" params --json
usage_error "--set" train --config "$SRC/experiments/tiny-cpu.json" --set  # option without its value
usage_error "--resume" train --config x.json --resume=yes          # a flag takes no value
usage_error "--stop-after" train --config x.json --stop-after soon  # not an integer
usage_error "--seq-len" params --config missing.json --seq-len 1.5  # usage errors before file errors
usage_error "--vocab-size" tokenize train --input /usr/share/common-licenses/GPL-3 --out t.json
usage_error "--val-fraction" tokenize encode --tokenizer t.json --input /usr/share/common-licenses/GPL-3 \
  --out p --val-fraction 1.5
usage_error "--input" tokenize decode --tokenizer t.json
usage_error "--data" eval --checkpoint nowhere
usage_error "--data 'gpl'" eval --checkpoint nowhere --data gpl
usage_error "--scale" bench ops --device cpu --scale 0
usage_error "--device" bench ops --device tpu
[ -z "$(ls -A . | grep -v -x -e out -e err)" ] || fail "usage errors left files behind: $(ls)"

# Runtime errors: status 1, the message (naming the file) on stderr, stdout empty.
run train --config "$WORK/missing.json"
expect_rc 1 "moda train with a missing config"
expect_stdout_empty "moda train with a missing config"
expect_in err "$WORK/missing.json" "moda train with a missing config"
run tokenize decode --tokenizer "$WORK/missing-tokenizer.json" --input "$WORK/missing.bin"
expect_rc 1 "moda tokenize decode with a missing tokenizer"
expect_stdout_empty "moda tokenize decode with a missing tokenizer"  # `> out.txt` gets no error text
expect_in err "missing-tokenizer.json" "moda tokenize decode with a missing tokenizer"
echo "ok: usage and runtime errors"

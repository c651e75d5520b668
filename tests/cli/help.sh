#!/usr/bin/env bash
# `--help`, `-h` and `moda help NAME` of every subcommand: usage on stdout, nothing on stderr,
# exit status 0, no side effects. `moda --help` lists exactly these commands.
source "$(dirname "$0")/lib.sh"

commands=("bench attention" "bench generate" "bench ops" "checkpoint consolidate" "checkpoint export" "checkpoint info" "eval" "generate" "params" "sweep report" "sweep run" "sweep status" "tokenize decode" "tokenize encode" "tokenize train" "train")

run --help
expect_rc 0 "moda --help"
expect_stderr_empty "moda --help"
listed=$(sed -n 's/^  \([a-z]\+\( [a-z]\+\)\?\)  .*/\1/p' "$WORK/out")
expected=$(printf '%s\n' "${commands[@]}")
[ "$listed" = "$expected" ] || fail "moda --help lists:"$'\n'"$listed"$'\n'"expected:"$'\n'"$expected"
expect_in out "Exit status" "moda --help documents the exit status"

cd "$WORK"  # a command that ran instead of printing help would leave files here
for name in "${commands[@]}"; do
  read -r -a words <<< "$name"
  forms=("--help")  # -h and `moda help NAME` are the same code path: tried on two commands
  case "$name" in train | "tokenize encode") forms+=("-h" "help") ;; esac
  for form in "${forms[@]}"; do
    if [ "$form" = help ]; then
      what="moda help $name"
      run help "${words[@]}"
    else
      what="moda $name $form"
      run "${words[@]}" --config /nonexistent.json "$form"  # --help wins over everything else on the line
    fi
    expect_rc 0 "$what"
    expect_stderr_empty "$what"
    head -1 "$WORK/out" | grep -q "^usage: moda $name " || fail "$what: stdout does not start with 'usage: moda $name '"
    [ "$(wc -l < "$WORK/out")" -ge 3 ] || fail "$what: usage has fewer than 3 lines (options not described)"
    # Every option the usage line names is described on a line of its own.
    for opt in $(head -1 "$WORK/out" | grep -o -- '--[a-z-]\+' | sort -u); do
      grep -q "^  $opt" "$WORK/out" || fail "$what: option $opt is not described"
    done
  done
done
[ -z "$(ls -A "$WORK" | grep -v -x -e out -e err)" ] || fail "--help left files behind: $(ls "$WORK")"

# A group word lists its commands.
run tokenize --help
expect_rc 0 "moda tokenize --help"
for c in "tokenize decode" "tokenize encode" "tokenize train"; do expect_in out "  $c " "moda tokenize --help"; done

# No command at all is a usage error: the overview goes to stderr.
run
expect_rc 2 "moda (no arguments)"
expect_stdout_empty "moda (no arguments)"
expect_in err "usage: moda" "moda (no arguments)"
echo "ok: --help of ${#commands[@]} commands"

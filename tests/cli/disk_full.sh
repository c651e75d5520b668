#!/usr/bin/env bash
# A checkpoint that cannot be written: the run's checkpoints/ folder is a 2 MiB tmpfs, so that it
# can be (1) filled up (ENOSPC) and (2) remounted read-only (EROFS; chmod would not stop root).
# Each time the save of step 3 fails with a message naming the file and the cause, exit status 1,
# and step-2, the previous checkpoint, and `latest` are intact: `moda eval` loads them (SHA-256
# verified) and nothing of step 3 is left. With space again the resume saves step 3 and 4.
# Needs mount(2) (root or CAP_SYS_ADMIN); without it the test is skipped (status 77).
source "$(dirname "$0")/lib.sh"
cfg="$SRC/experiments/tiny-cpu.json"
run_dir="$WORK/run"
mnt="$run_dir/checkpoints"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=2m moda-test "$mnt" 2> /dev/null; then
  echo "SKIP: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
  exit 77
fi
trap 'umount -l "$mnt" 2> /dev/null || true; rm -rf "$WORK"' EXIT
make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=100 --set train.checkpoint_every=1)

train_until() {  # train_until STEP [--resume]
  local step=$1
  shift
  run train --config "$cfg" "${SETS[@]}" --stop-after "$step" --run-dir "$run_dir" "$@"
}

expect_step2_intact() {  # expect_step2_intact WHAT
  [ "$(cat "$mnt/latest")" = step-2 ] || fail "$1: latest names $(cat "$mnt/latest"), not step-2"
  local entry
  for entry in "$mnt"/* "$mnt"/.[!.]*; do
    case "${entry##*/}" in latest | step-1 | step-2 | filler | '*' | '.[!.]*') ;; *) fail "$1: left in checkpoints/: $entry" ;; esac
  done
  RC=0
  "$MODA" eval --device cpu --checkpoint "$run_dir" --data "gpl=$WORK/data/data/gpl_val_*.bin" \
    > /dev/null 2> "$WORK/eval_err" || RC=$?
  [ "$RC" -eq 0 ] || fail "$1: the previous checkpoint does not load: $(cat "$WORK/eval_err")"
}

train_until 2
expect_rc 0 "train to step 2"

# 1. Disk full.
dd if=/dev/zero of="$mnt/filler" bs=4k 2> /dev/null || true  # fills it: dd ends with ENOSPC
train_until 4 --resume
expect_rc 1 "resume onto a full disk"
expect_in err "No space left on device" "disk full: the cause"
expect_in err "$mnt/step-3.tmp." "disk full: the file"
expect_in err "checkpoint of step 3 was not saved; the previous one, $mnt/step-2, and latest are intact" \
  "disk full: what survives"
expect_step2_intact "disk full"
rm "$mnt/filler"

# 2. Unwritable (read-only) checkpoint folder.
mount -o remount,ro "$mnt"
train_until 4 --resume
expect_rc 1 "resume into a read-only folder"
expect_in err "Read-only file system" "read-only: the cause"
expect_in err "$mnt/step-3.tmp." "read-only: the folder"
expect_in err "checkpoint of step 3 was not saved" "read-only: what survives"
mount -o remount,rw "$mnt"
expect_step2_intact "read-only"

# With space and write access again, the run goes on from step 2.
train_until 4 --resume
expect_rc 0 "resume after the disk was freed"
expect_in err "resumed from $mnt/step-2 at step 2" "resume after the faults"
[ "$(cat "$mnt/latest")" = step-4 ] || fail "after the faults: latest names $(cat "$mnt/latest"), not step-4"
echo "ok: a full or read-only disk stops the save with a message; the previous checkpoint stays intact"

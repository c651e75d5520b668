#!/usr/bin/env bash
# mpi_two_hosts.sh where network namespaces cannot be made (CAP_SYS_ADMIN dropped with setpriv):
# it exits 77 with a SKIP line, which CTest reports as skipped, never as passed; with
# MODA_REQUIRE_NETNS=1 it fails instead. Skipped itself (77) where setpriv cannot drop the cap.
source "$(dirname "$0")/lib.sh"
no_sys_admin=(setpriv --bounding-set -sys_admin --inh-caps -sys_admin)
command -v setpriv > /dev/null || { echo "SKIP: no setpriv (util-linux)"; exit 77; }
"${no_sys_admin[@]}" true 2> /dev/null || { echo "SKIP: setpriv cannot drop CAP_SYS_ADMIN here"; exit 77; }

RC=0
"${no_sys_admin[@]}" env -u MODA_REQUIRE_NETNS bash "$SRC/tests/cli/mpi_two_hosts.sh" "$MODA" "$SRC" \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 77 "mpi_two_hosts.sh without CAP_SYS_ADMIN"
expect_in out "SKIP: cannot create a network namespace" "the skip says why"

RC=0
MODA_REQUIRE_NETNS=1 "${no_sys_admin[@]}" bash "$SRC/tests/cli/mpi_two_hosts.sh" "$MODA" "$SRC" \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 1 "mpi_two_hosts.sh without CAP_SYS_ADMIN, MODA_REQUIRE_NETNS=1"
expect_in err "MODA_REQUIRE_NETNS=1 but cannot create a network namespace" "the failure says why"
echo "ok: without network namespaces the two-host test is skipped (or fails when required)"

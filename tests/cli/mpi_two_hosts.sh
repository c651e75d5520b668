#!/usr/bin/env bash
# Two nodes, simulated honestly: one training launched across two "hosts" that are two network
# namespaces of this machine joined by a veth pair (10.77.0.1/24 and 10.77.0.2/24). mpirun runs
# in the first with a hostfile naming both addresses; Open MPI's remote launcher (plm_rsh_agent)
# is tools/netns-rsh.sh, which "logs in" to the namespace owning an address instead of ssh (with a
# fresh environment and its own TMPDIR, as a node would have); the ranks talk over Open MPI's TCP
# transport only (pml ob1, btl tcp,self, both TCP interface filters set to the veth subnet). So
# the hostfile, the remote launch, the rank placement and the TCP bootstrap run for real.
# Checked: the losses in metrics.jsonl (4 steps and the final evaluation) equal those of
# `mpirun -np 1` and `-np 2` on one host to 1e-5 relative; rank 0 ran in the first namespace and
# rank 1 in the second (each rank's /proc/self/ns/net against the namespaces' inodes, and its
# addresses), each the only rank on its node (local rank 0 of 1); rank 1 came through the remote
# launcher (one call, for 10.77.0.2, and none of mpirun's unexported environment reached it);
# the training's traffic crossed the veth pair. The agent alone handles ssh-style arguments.
#
# Needs root and `ip netns` (CAP_SYS_ADMIN, CAP_NET_ADMIN). Where the namespaces cannot be made
# it exits 77, which CTest reports as skipped; with MODA_REQUIRE_NETNS=1 it fails instead.
# Namespaces are named moda-a-PID / moda-b-PID and removed on exit (with any process left in
# them); those of an earlier run of this script that was killed (PID gone) are removed at start.
source "$(dirname "$0")/lib.sh"
mpi_test_env
cfg="$SRC/experiments/tiny-cpu.json"
RSH="$SRC/tools/netns-rsh.sh"

P=$$
NS_A=moda-a-$P NS_B=moda-b-$P
VETH_A=mva$P VETH_B=mvb$P
ADDR_A=10.77.0.1 ADDR_B=10.77.0.2 CIDR=10.77.0.0/24

remove_ns() {  # remove_ns NAME: kills the processes this run left in namespace NAME, deletes it
  local ns=$1 pid
  [ -e "/run/netns/$ns" ] || return 0
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true  # takes its end of the veth pair, and so the pair, along
}
cleanup() {
  remove_ns "$NS_A"
  remove_ns "$NS_B"
  ip link del "$VETH_A" 2>/dev/null || true  # still in the root namespace if setup stopped early
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # through the EXIT trap

skip() {
  if [ "${MODA_REQUIRE_NETNS:-0}" = 1 ]; then fail "MODA_REQUIRE_NETNS=1 but $*"; fi
  echo "SKIP: $* (network namespaces are needed to simulate two hosts; MODA_REQUIRE_NETNS=1 makes this a failure)"
  exit 77
}

# Leftovers of runs killed before their trap ran (a CTest timeout kills with SIGKILL).
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^moda-[ab]-[0-9]+$' || true); do
  [ -e "/proc/${ns##*-}" ] || ip netns del "$ns" 2>/dev/null || true  # the name only: no kills
done

[ "$(id -u)" -eq 0 ] || skip "not root"
command -v ip > /dev/null || skip "no 'ip' command (iproute2)"
ip netns add "$NS_A" 2> "$WORK/err" || skip "cannot create a network namespace: $(head -1 "$WORK/err")"
ip netns add "$NS_B" 2> "$WORK/err" || skip "cannot create a second network namespace: $(head -1 "$WORK/err")"
ip link add "$VETH_A" type veth peer name "$VETH_B" 2> "$WORK/err" || skip "cannot create a veth pair: $(head -1 "$WORK/err")"
{
  ip link set "$VETH_A" netns "$NS_A" && ip link set "$VETH_B" netns "$NS_B" &&
    ip -n "$NS_A" addr add "$ADDR_A/24" dev "$VETH_A" && ip -n "$NS_B" addr add "$ADDR_B/24" dev "$VETH_B" &&
    ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
    ip -n "$NS_A" link set "$VETH_A" up && ip -n "$NS_B" link set "$VETH_B" up
} 2> "$WORK/err" || fail "setting up the veth pair between $NS_A and $NS_B"

# The agent alone, called as Open MPI or a user's plm_rsh_args might: ssh options before the host
# (with values apart and attached), user@host, the command as several words with quotes for the
# remote shell; an address no namespace owns is refused as ssh refuses a host it cannot reach.
export MODA_NETNS_HOSTS="$ADDR_A=$NS_A,$ADDR_B=$NS_B"
RC=0
MODA_TWO_HOSTS_MARKER=inherited "$RSH" -x -p 22 -oBatchMode=yes -o StrictHostKeyChecking=no root@$ADDR_B \
  echo '"net $(readlink /proc/self/ns/net)"' '"marker ${MODA_TWO_HOSTS_MARKER:-unset}"' \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 0 "netns-rsh.sh OPTIONS root@$ADDR_B COMMAND"
[ "$(cat "$WORK/out")" = "net net:[$(stat -L -c %i "/run/netns/$NS_B")] marker unset" ] ||
  fail "netns-rsh.sh ran '$(cat "$WORK/out")', expected namespace $NS_B and a fresh environment"
RC=0
MODA_NETNS_HOSTS='' "$RSH" 10.77.0.99 true > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 255 "netns-rsh.sh to an address no namespace owns"
expect_in err "owned by 0 network namespaces" "netns-rsh.sh names the missing host"

make_tiny_data "$WORK/data"
tiny_sets "$WORK/data"
SETS=("${TINY_SETS[@]}" --set train.steps=4 --set train.global_batch=12 --set train.micro_batch=2
  --set model.variant=depth_kv_ffn --set model.norm=pre)
X_ENV=(-x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -x ASAN_OPTIONS)
[ -z "${UBSAN_OPTIONS:-}" ] || X_ENV+=(-x UBSAN_OPTIONS)

# The one-host references.
for np in 1 2; do
  RC=0
  timeout 120 mpirun --oversubscribe --bind-to none "${X_ENV[@]}" -np "$np" \
    "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/one_host_np$np" > "$WORK/out" 2> "$WORK/err" || RC=$?
  expect_rc 0 "mpirun -np $np moda train (one host)"
done

# The two-host run. where.sh records, per rank, where it runs, then becomes moda.
cat > "$WORK/where.sh" <<'SH'
#!/bin/sh
# where.sh DIR PROGRAM ARGS...: writes DIR/where.RANK, then runs PROGRAM
dir=$1; shift
{
  echo "netns $(readlink /proc/self/ns/net)"
  echo "addrs $(ip -o -4 addr show scope global | awk '{print $4}' | tr '\n' ' ')"
  echo "marker ${MODA_TWO_HOSTS_MARKER:-unset}"
  echo "tmpdir ${TMPDIR:-unset}"
  echo "local ${OMPI_COMM_WORLD_LOCAL_RANK:-?}/${OMPI_COMM_WORLD_LOCAL_SIZE:-?}"
} > "$dir/where.${OMPI_COMM_WORLD_RANK:?not started by Open MPI}"
exec "$@"
SH
printf '%s slots=1\n%s slots=1\n' "$ADDR_A" "$ADDR_B" > "$WORK/hostfile"
mkdir -p "$WORK/tmp-a" "$WORK/tmp-b"
veth_bytes() { ip netns exec "$NS_B" cat "/sys/class/net/$VETH_B/statistics/rx_bytes"; }
rx_before=$(veth_bytes)
RC=0
start=$SECONDS
# MODA_TWO_HOSTS_MARKER is in mpirun's environment but not passed with -x: the rank forked on
# mpirun's host inherits it; the one launched through netns-rsh.sh (a fresh login) must not.
ip netns exec "$NS_A" env TMPDIR="$WORK/tmp-a" MODA_TWO_HOSTS_MARKER=inherited \
  "MODA_NETNS_TMPDIR_${NS_B//-/_}=$WORK/tmp-b" \
  MODA_NETNS_RSH_LOG="$WORK/rsh.log" \
  timeout 120 mpirun --hostfile "$WORK/hostfile" -np 2 --map-by node --bind-to none \
  --mca plm_rsh_agent "$RSH" --mca pml ob1 --mca btl tcp,self \
  --mca btl_tcp_if_include "$CIDR" --mca oob_tcp_if_include "$CIDR" "${X_ENV[@]}" \
  sh "$WORK/where.sh" "$WORK" "$MODA" train --config "$cfg" "${SETS[@]}" --run-dir "$WORK/two_hosts" \
  > "$WORK/out" 2> "$WORK/err" || RC=$?
expect_rc 0 "mpirun across two namespaces (hostfile $ADDR_A, $ADDR_B; agent netns-rsh.sh)"
expect_in err "world size 2 (mpi communicator)" "the two-host run is one world of 2"
echo "two-host run: $((SECONDS - start)) s"
rx=$(($(veth_bytes) - rx_before))

# Where the ranks ran.
ino() { echo "net:[$(stat -L -c %i "/run/netns/$1")]"; }
field() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$WORK/where.$1"; }
for r in 0 1; do [ -s "$WORK/where.$r" ] || fail "rank $r wrote no where.$r"; done
[ "$(field 0 netns)" = "$(ino "$NS_A")" ] || fail "rank 0 ran in $(field 0 netns), not in $NS_A ($(ino "$NS_A"))"
[ "$(field 1 netns)" = "$(ino "$NS_B")" ] || fail "rank 1 ran in $(field 1 netns), not in $NS_B ($(ino "$NS_B"))"
[ "$(field 0 addrs)" = "$ADDR_A/24" ] || fail "rank 0 sees addresses '$(field 0 addrs)', expected $ADDR_A/24"
[ "$(field 1 addrs)" = "$ADDR_B/24" ] || fail "rank 1 sees addresses '$(field 1 addrs)', expected $ADDR_B/24"
[ "$(field 0 tmpdir)" = "$WORK/tmp-a" ] || fail "rank 0's TMPDIR is $(field 0 tmpdir)"
[ "$(field 1 tmpdir)" = "$WORK/tmp-b" ] || fail "rank 1's TMPDIR is $(field 1 tmpdir), not host b's"
for r in 0 1; do  # placement: one rank per node, so each is local rank 0 of 1
  [ "$(field $r local)" = 0/1 ] || fail "rank $r is local rank/size $(field $r local), expected 0/1"
done
[ "$(field 0 marker)" = inherited ] || fail "rank 0 did not inherit mpirun's environment"
[ "$(field 1 marker)" = unset ] || fail "rank 1 inherited mpirun's environment: it was not started through the agent"
[ "$(cat "$WORK/rsh.log")" = "$ADDR_B $NS_B" ] || fail "remote launcher calls: '$(cat "$WORK/rsh.log")', expected one for $ADDR_B"
echo "rank 0 in $NS_A ($ADDR_A), rank 1 in $NS_B ($ADDR_B) through netns-rsh.sh"

# The training's traffic crossed the veth: every step rank 1 receives rank 0's half of the
# updated parameters (all-gather) and of the summed gradients (reduce-scatter), 4 bytes each
# today (counted at 2, so that bf16 gathers would pass too). The launch alone moves a few KB.
run params --config "$cfg" --json "${SETS[@]}"
expect_rc 0 "moda params"
params=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["params"])' "$WORK/out")
need=$((4 * 2 * params / 2 * 2))  # 4 steps x 2 collectives x half the parameters x 2 bytes
echo "rank 1's veth received $rx bytes (the training needs more than $need)"
[ "$rx" -ge "$need" ] || fail "only $rx bytes crossed the veth pair; the training needs at least $need"

compare_losses one_host_np2 two_hosts
compare_losses one_host_np1 two_hosts
echo "ok: training across two network namespaces equals one host"

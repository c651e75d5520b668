#!/usr/bin/env bash
# A stand-in for ssh that "logs in" to a network namespace of this machine: Open MPI's remote
# launcher calls it as it would call ssh,
#   mpirun --mca plm_rsh_agent tools/netns-rsh.sh --hostfile H ...
# which runs  netns-rsh.sh [SSH_OPTIONS...] HOST COMMAND...  for every remote host, with COMMAND
# as one string or as several words that the remote shell joins and parses (as ssh does: quotes
# inside them, e.g. -mca ess_base_jobid "1234", are the remote shell's to remove).
#
# HOST is an address (or a name) that one namespace owns. MODA_NETNS_HOSTS maps hosts to
# namespaces ("10.77.0.1=ns-a,10.77.0.2=ns-b"); a host not in the map is looked up among the
# namespaces of `ip netns list` by its IPv4 address and must be owned by exactly one.
#
# Like an ssh login, the command starts with a fresh environment (PATH, HOME, USER, LOGNAME,
# SHELL, LANG only): whatever the ranks need must travel with mpirun -x, as on real nodes.
# MODA_NETNS_TMPDIR_<namespace with - as _>, where set, becomes TMPDIR on that host (a node's own
# /tmp for Open MPI's session directory). Each call appends "HOST NAMESPACE" to MODA_NETNS_RSH_LOG
# where that is set. Needs root (ip netns exec).
set -euo pipefail

die() { echo "netns-rsh: $*" >&2; exit 255; }  # 255: what ssh returns when it cannot connect

# ssh's options that take a value (from ssh(1)); every other option is a flag.
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; break ;;
    -[BbcDEeFIiJLlmOoPpQRSWw]) [ $# -ge 2 ] || die "option $1 needs a value"; shift 2 ;;
    -[BbcDEeFIiJLlmOoPpQRSWw]*) shift ;;  # value attached: -p22, -oBatchMode=yes
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die "usage: netns-rsh.sh [SSH_OPTIONS...] HOST COMMAND..."
host=${1#*@}  # user@host: the user is ignored
shift
[ $# -ge 1 ] || die "no command for $host (interactive logins are not supported)"

ns=""
IFS=, read -r -a pairs <<< "${MODA_NETNS_HOSTS:-}"
for pair in "${pairs[@]}"; do
  [ "${pair%%=*}" = "$host" ] && ns=${pair#*=}
done
if [ -z "$ns" ]; then
  owners=()
  for cand in $(ip netns list | awk '{print $1}'); do
    if ip -n "$cand" -o -4 addr show 2>/dev/null | awk '{print $4}' | grep -qx "$host/[0-9]*"; then
      owners+=("$cand")
    fi
  done
  [ ${#owners[@]} -eq 1 ] || die "host $host: owned by ${#owners[@]} network namespaces (${owners[*]:-none}); set MODA_NETNS_HOSTS"
  ns=${owners[0]}
fi
[ -e "/run/netns/$ns" ] || die "host $host: no network namespace $ns"

if [ -n "${MODA_NETNS_RSH_LOG:-}" ]; then echo "$host $ns" >> "$MODA_NETNS_RSH_LOG"; fi

tmpvar="MODA_NETNS_TMPDIR_${ns//-/_}"
login_env=(PATH="${PATH:-/usr/local/bin:/usr/bin:/bin}" HOME="${HOME:-/root}" USER="${USER:-$(id -un)}"
  LOGNAME="${LOGNAME:-$(id -un)}" SHELL=/bin/sh LANG="${LANG:-C.UTF-8}")
[ -n "${!tmpvar:-}" ] && login_env+=(TMPDIR="${!tmpvar}")
# exec: Open MPI watches this process as the remote daemon's connection, as it would ssh.
exec ip netns exec "$ns" env -i "${login_env[@]}" /bin/sh -c "$*"

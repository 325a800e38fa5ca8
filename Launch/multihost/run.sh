#!/usr/bin/env bash
# Two simulated hosts on this machine, for testing multi-host MPI runs without a cluster:
#   Launch/multihost/run.sh [--np N] [--timeout SECONDS] -- COMMAND [ARGS...]
#   Launch/multihost/run.sh --launcher [--timeout SECONDS] -- COMMAND [ARGS...]
#
# Makes two network namespaces, "hostA" (10.77.0.1/24) and "hostB" (10.77.0.2/24), joined by a
# veth pair (names unet-hostA-PID, unet-hostB-PID, so runs do not collide), each with loopback
# up and, when unshare works, a hostname of its own (unet-hostA, unet-hostB, in UTS namespaces
# of the processes only); a hostfile naming the two addresses (slots = ceil(N/2) each); and
# starts Open MPI's launcher inside hostA with Launch/multihost/agent.sh as its rsh agent, which
# runs Open MPI's daemon for hostB inside hostB's namespace as ssh would on a real host (bare
# environment; a shell interprets the command line). MPI traffic: TCP only, on 10.77.0.0/24
# (btl tcp,self; oob and btl restricted to the subnet); no shared memory between the "hosts".
#
# Default mode: runs `mpirun -np N COMMAND` (N = 2: one rank per host). Every rank first reports
# its hostname, network namespace and addresses ([multihost] lines on stderr), and the run fails
# unless the ranks' namespaces are exactly the two made here, rank 0 in hostA.
# --launcher: runs COMMAND itself in hostA (no mpirun), with MULTIHOST_HOSTFILE (the hostfile),
# MPIRUN_EXTRA (the agent and the no-tree-spawn setting) and UNET_IFACE=10.77.0.0/24 in its
# environment: what Launch/cluster.sh needs, e.g.
#   Launch/multihost/run.sh --launcher -- bash -c 'Launch/cluster.sh "$MULTIHOST_HOSTFILE" 2'
# and the run fails unless the agent launched into hostB's namespace.
#
# Examples:
#   Launch/multihost/run.sh -- .build/debug/unet info
#   Launch/multihost/run.sh -- .build/debug/UNetTrainerPackageTests.xctest --testing-library swift-testing --filter CommunicatorTests
#
# Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip`. When the namespaces cannot
# be made (no `ip`, no privilege, `ip netns add` or `ip netns exec` refused), prints "SKIP: ..."
# and exits 0; under CI=true (CI runs `bash .ci/run` with it) it prints "multihost: FAILED: ..."
# with the reason instead and exits 1: there the multi-host checks must run. Every other failure
# exits non-zero (the command's own status, 124 on timeout).
# The namespaces (and any process left in them) are removed on every exit. OPENBLAS_NUM_THREADS
# defaults to 1 per rank (both "hosts" share this machine's cores). In the default mode the ranks
# get PATH, LD_LIBRARY_PATH (when set) and every OPENBLAS_*, OMP_* and UNET_* variable through
# mpirun -x (Launch/mpi-env.sh's unet_mpirun_exports, as the launch scripts pass them), and
# MULTIHOST_REPORTS; nothing else of this shell's environment reaches hostB's rank.
# The timeout (default 600 s, MULTIHOST_TIMEOUT) bounds the launcher.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repository=$(cd "$here/../.." && pwd)
# shellcheck source=../mpi-env.sh
source "$repository/Launch/mpi-env.sh"

np=2
mode=mpirun
time_limit=${MULTIHOST_TIMEOUT:-600}
usage="usage: Launch/multihost/run.sh [--np N | --launcher] [--timeout SECONDS] -- COMMAND [ARGS...]"
while [ $# -gt 0 ]; do
    case $1 in
        --np) np=${2:?$usage}; shift 2 ;;
        --launcher) mode=launcher; shift ;;
        --timeout) time_limit=${2:?$usage}; shift 2 ;;
        --) shift; break ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
[[ $np =~ ^[0-9]+$ ]] && ((np >= 2)) || { echo "multihost: --np must be a number of ranks, at least 2" >&2; exit 2; }

skip() {
    if [ "${CI:-}" = true ]; then
        echo "multihost: FAILED: $* (network namespaces are needed to simulate two hosts; under CI=true the multi-host checks must run, not be skipped)" >&2
        exit 1
    fi
    echo "SKIP: multihost: $* (network namespaces are needed to simulate two hosts)"
    exit 0
}
command -v ip >/dev/null 2>&1 || skip "no \`ip\` command (Debian package iproute2)"
command -v mpirun >/dev/null 2>&1 || { echo "multihost: no mpirun on PATH" >&2; exit 1; }

tag=$$
hostA=unet-hostA-$tag
hostB=unet-hostB-$tag
work=$(mktemp -d "${TMPDIR:-/tmp}/unet-multihost.XXXXXX")
made=()

teardown() {
    local status=$? ns pid pids
    trap - EXIT INT TERM
    for ns in "${made[@]}"; do
        # Processes this run started inside the namespace (daemons, ranks) that outlived mpirun.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
        [ -z "$pids" ] || sleep 1
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || echo "multihost: could not delete network namespace $ns" >&2
    done
    rm -rf "$work"
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Namespaces left by an earlier run that was killed before its teardown (its PID is gone).
for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E '^unet-host[AB]-[0-9]+$' || true); do
    kill -0 "${ns##*-}" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done

# --- the two hosts ------------------------------------------------------------------------------
error=$(ip netns add "$hostA" 2>&1) || skip "cannot create a network namespace: ${error:-ip netns add failed}"
made+=("$hostA")
ip netns add "$hostB"
made+=("$hostB")
error=$(ip netns exec "$hostA" true 2>&1) || skip "cannot enter a network namespace: ${error:-ip netns exec failed}"
# The veth pair is made directly inside the namespaces: its names never meet the host's.
ip link add vethA netns "$hostA" type veth peer name vethB netns "$hostB"
ip -n "$hostA" addr add 10.77.0.1/24 dev vethA
ip -n "$hostB" addr add 10.77.0.2/24 dev vethB
for ns in "$hostA" "$hostB"; do
    ip -n "$ns" link set lo up
done
ip -n "$hostA" link set vethA up
ip -n "$hostB" link set vethB up

netnsA=$(ip netns exec "$hostA" readlink /proc/self/ns/net)
netnsB=$(ip netns exec "$hostB" readlink /proc/self/ns/net)
[ "$netnsA" != "$netnsB" ] && [ "$netnsA" != "$(readlink /proc/self/ns/net)" ] \
    || { echo "multihost: the namespaces are not distinct ($netnsA, $netnsB)" >&2; exit 1; }

uts=0
if unshare --uts true 2>/dev/null; then uts=1; fi
cat >"$work/map" <<EOF
10.77.0.1 $hostA unet-hostA
10.77.0.2 $hostB unet-hostB
EOF
slots=$(((np + 1) / 2))
printf '10.77.0.1 slots=%s\n10.77.0.2 slots=%s\n' "$slots" "$slots" >"$work/hostfile"
mkdir "$work/reports"
: >"$work/agent.log"
echo "multihost: hostA = netns $hostA ($netnsA) 10.77.0.1/24, hostB = netns $hostB ($netnsB) 10.77.0.2/24, veth pair, hostnames $([ $uts = 1 ] && echo "unet-hostA/unet-hostB" || echo "shared (no UTS namespaces)")" >&2

# --- the launcher's settings --------------------------------------------------------------------
export MULTIHOST_MAP=$work/map MULTIHOST_AGENT_LOG=$work/agent.log MULTIHOST_UTS=$uts
export MULTIHOST_HOSTFILE=$work/hostfile
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# The agent's shell reads Open MPI's command line as sh (Open MPI writes csh syntax for a csh SHELL).
export SHELL=/bin/sh
# One daemon per host launched straight from mpirun (no tree spawn: hostB's daemon starts no one).
agent_args=(--mca plm_rsh_agent "$here/agent.sh" --mca plm_rsh_no_tree_spawn 1)
export MPIRUN_EXTRA="--mca plm_rsh_agent '$here/agent.sh' --mca plm_rsh_no_tree_spawn 1"
export UNET_IFACE=10.77.0.0/24

in_hostA=(ip netns exec "$hostA")
if [ $uts = 1 ]; then in_hostA+=(unshare --uts -- sh -c 'hostname unet-hostA && exec "$@"' sh); fi

status=0
if [ $mode = mpirun ]; then
    root=()
    if [ "$(id -u)" -eq 0 ]; then root=(--allow-run-as-root); fi
    unet_mpirun_exports
    exports=("${mpirun_exports[@]}" -x MULTIHOST_REPORTS="$work/reports")
    launch=(mpirun "${root[@]}" --hostfile "$work/hostfile" -np "$np" "${agent_args[@]}"
        --mca pml ob1 --mca btl tcp,self
        --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
        --bind-to none "${exports[@]}" "$here/rank.sh" "$@")
    echo "multihost: in hostA: ${launch[*]}" >&2
    timeout -k 10 "$time_limit" "${in_hostA[@]}" "${launch[@]}" || status=$?
else
    echo "multihost: in hostA: $*" >&2
    timeout -k 10 "$time_limit" "${in_hostA[@]}" "$@" || status=$?
fi
if [ $status -eq 124 ] || [ $status -eq 137 ]; then
    echo "multihost: FAILED: timed out after ${time_limit}s" >&2
    exit 124
fi
[ $status -eq 0 ] || { echo "multihost: FAILED: the command exited with status $status" >&2; exit "$status"; }

# --- proof that two hosts took part -------------------------------------------------------------
grep -q "^agent: 10.77.0.2 -> netns $hostB " "$work/agent.log" \
    || { echo "multihost: FAILED: Open MPI never launched on hostB through the agent (both hosts taken as local?)" >&2; exit 1; }
if [ $mode = mpirun ]; then
    reports=$(cat "$work/reports"/rank-* 2>/dev/null | sort -n -k2 || true)
    count=$(printf '%s\n' "$reports" | grep -c '^rank ' || true)
    [ "$count" -eq "$np" ] || { echo "multihost: FAILED: $count of $np ranks reported where they ran" >&2; exit 1; }
    seen=$(printf '%s\n' "$reports" | awk '{ for (i = 1; i < NF; i++) if ($i == "netns") print $(i + 1) }' | tr -d , | sort -u | paste -sd' ' -)
    expected=$(printf '%s\n' "$netnsA" "$netnsB" | sort -u | paste -sd' ' -)
    [ "$seen" = "$expected" ] || { echo "multihost: FAILED: ranks ran in namespaces {$seen}, expected {$expected}" >&2; exit 1; }
    case $(printf '%s\n' "$reports" | grep "^rank 0 of ") in
        *"netns $netnsA,"*) ;;
        *) echo "multihost: FAILED: rank 0 is not in hostA" >&2; exit 1 ;;
    esac
    echo "multihost: OK: $np ranks in 2 network namespaces over TCP:" >&2
    printf '%s\n' "$reports" | sed 's/^/multihost:   /' >&2
else
    echo "multihost: OK: the launcher started ranks on hostB ($hostB) through the agent" >&2
fi

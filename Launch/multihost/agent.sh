#!/bin/sh
# Open MPI's rsh agent for the two-namespace harness (Launch/multihost/run.sh passes it as
# --mca plm_rsh_agent). Open MPI calls it as it would call ssh:
#   agent.sh [ssh options] HOST COMMAND...
# e.g. `agent.sh 10.77.0.2 ' orted' -mca ess '"env"' ...`, or with ssh-style options first when
# the agent's name is ssh (Open MPI then adds -x) or plm_rsh_args is set (-p 22, -o K=V, -l USER).
# Like ssh, it joins COMMAND's words with spaces and runs the line with a shell (Open MPI quotes
# its arguments for that shell), inside HOST's network namespace, with the bare environment of a
# non-interactive ssh login (so what the ranks need must come through mpirun -x, as on real
# hosts) and, when MULTIHOST_UTS=1, the host's own hostname in a UTS namespace of its own.
# MULTIHOST_MAP names a file of "HOST NETNS HOSTNAME" lines; MULTIHOST_AGENT_LOG (optional) gets
# one line per launch.
set -eu
map=${MULTIHOST_MAP:?agent.sh: MULTIHOST_MAP is not set (it is run by Launch/multihost/run.sh)}

while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;   # option and its argument: -p 22, -o BatchMode=yes
        -[BbcDEeFIiJLlmOopQRSWw]?*) shift ;;   # argument attached: -p22, -oBatchMode=yes
        -?*) shift ;;                          # flags: -x, -n, -T, -q, -4, -xT ...
        *) break ;;
    esac
done
[ $# -ge 2 ] || { echo "agent.sh: usage: agent.sh [ssh options] HOST COMMAND..." >&2; exit 255; }
host=${1#*@}
shift

entry=$(awk -v h="$host" '$1 == h { print $2, $3; exit }' "$map")
[ -n "$entry" ] || { echo "agent.sh: $host: no such host in $map" >&2; exit 255; }
netns=${entry% *}
name=${entry#* }
if [ -n "${MULTIHOST_AGENT_LOG:-}" ]; then
    echo "agent: $host -> netns $netns ($name): $*" >>"$MULTIHOST_AGENT_LOG"
fi

# What sshd gives a non-interactive root or user login on Debian.
set -- env -i HOME="${HOME:-/}" USER="$(id -un)" LOGNAME="$(id -un)" SHELL=/bin/sh \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh -c 'if [ "$1" = 1 ]; then hostname "$2"; fi; shift 2; exec /bin/sh -c "$*"' sh \
    "${MULTIHOST_UTS:-0}" "$name" "$@"
if [ "${MULTIHOST_UTS:-0}" = 1 ]; then
    exec ip netns exec "$netns" unshare --uts -- "$@"
fi
exec ip netns exec "$netns" "$@"

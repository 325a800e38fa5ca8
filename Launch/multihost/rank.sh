#!/bin/sh
# Run by every rank of Launch/multihost/run.sh before the command: says where the rank runs
# (hostname, network namespace, addresses) on stderr and in $MULTIHOST_REPORTS/rank-R, then
# becomes the command.
#   rank.sh COMMAND [ARGS...]
rank=${OMPI_COMM_WORLD_RANK:-?}
size=${OMPI_COMM_WORLD_SIZE:-?}
addresses=$(ip -o -4 addr show scope global 2>/dev/null | awk '{ print $4 }' | paste -sd, -)
line="rank $rank of $size: hostname $(hostname), netns $(readlink /proc/self/ns/net), addresses ${addresses:-none}"
echo "[multihost] $line" >&2
if [ -n "${MULTIHOST_REPORTS:-}" ]; then echo "$line" >"$MULTIHOST_REPORTS/rank-$rank"; fi
exec "$@"

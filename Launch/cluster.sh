#!/usr/bin/env bash
# The whole pipeline across the hosts of an Open MPI hostfile, over TCP:
#   Launch/cluster.sh HOSTFILE [NP] [RAW_DIR]
# HOSTFILE lists one host per line with its ranks, e.g. "node1 slots=2"; NP defaults to the sum
# of the slots. Rank 0 is placed on the first host: run this script there (it runs `unet synth`
# and `unet prepare` itself, once, and rank 0 reads what they wrote), or keep OUT on a
# filesystem every host mounts at the same path. `unet train` and `unet predict` run under
# mpirun; ranks other than 0 read and write no files: they need only the binary and its
# libraries.
#
# Requirements on every host: passwordless ssh from this host (Open MPI's rsh launcher; or set
# plm_rsh_agent through MPIRUN_EXTRA), Open MPI of the same version, and the unet binary at the
# SAME path, with its libraries: OpenBLAS, HDF5, libtiff, and the Swift runtime, which the binary
# finds at the toolchain's path (its RUNPATH) unless built with SWIFT_BUILD_ARGS=--static-swift-stdlib.
# UNET_BIN names a binary already installed on every host (nothing is built then); otherwise
# this repository is built in release here and its .build/release/unet must be visible at the
# same path everywhere (a shared home or project filesystem).
#
# Environment: every rank gets this shell's PATH, LD_LIBRARY_PATH (when set) and every OPENBLAS_*,
# OMP_* and UNET_* variable (mpirun -x, Launch/mpi-env.sh's unet_mpirun_exports): a remote rank
# starts with the bare environment of a non-interactive ssh login, and OPENBLAS_CORETYPE,
# OPENBLAS_L2_SIZE, the thread counts and UNET_WINOGRAD_* change what a rank computes
# (Docs/CLUSTER.md, "The environment every rank needs").
#   OPENBLAS_NUM_THREADS  BLAS threads per rank. Default: this host's physical cores / the most
#                         slots of any host (assumes alike nodes).
#   UNET_IFACE            the network for MPI traffic, an interface name or a CIDR (eth1,
#                         10.0.0.0/16): sets btl_tcp_if_include and oob_tcp_if_include.
#   MPIRUN_EXTRA          more mpirun arguments, as a bash array's contents (quotes allowed),
#                         e.g. '--mca plm_rsh_agent /path/agent.sh' (Launch/multihost/ uses this).
#   UNET_BIN, OUT, EPOCHS, BATCH, LR, UNET_TRAIN_ARGS, ...: see Launch/pipeline.sh.
# Transports: TCP between hosts, shared memory (vader) between ranks of one host, self. Ranks are
# not bound to cores (the remote core counts are unknown here); with alike nodes add e.g.
# MPIRUN_EXTRA='--map-by ppr:1:node:PE=16 --bind-to core' for one 16-core rank per node.
# Example:
#   printf 'node1 slots=1\nnode2 slots=1\n' > hosts
#   UNET_BIN=/shared/unet/bin/unet OPENBLAS_NUM_THREADS=16 Launch/cluster.sh hosts
set -euo pipefail
source "$(dirname "$0")/pipeline.sh"

hostfile=${1:?usage: Launch/cluster.sh HOSTFILE [NP] [RAW_DIR]}
hostfile=$(unet_absolute "$hostfile")
[ -r "$hostfile" ] || { echo "cluster: cannot read the hostfile $hostfile" >&2; exit 1; }
np=${2:-}
[ -z "$np" ] || [[ $np =~ ^[1-9][0-9]*$ ]] || { echo "cluster: NP must be a number of ranks (got $np)" >&2; exit 2; }

# Hosts and slots (a host without slots= counts as 1, as Open MPI counts it).
read -r hosts slots max_slots < <(awk '
    { sub(/#.*/, "") } NF == 0 { next }
    { s = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { s = substr($i, 7) + 0 } }
    { n++; total += s; if (s > most) most = s }
    END { print n + 0, total + 0, most + 0 }' "$hostfile")
((hosts >= 1)) || { echo "cluster: no host in $hostfile" >&2; exit 1; }
np=${np:-$slots}
threads=$(($(unet_cores) / max_slots))
((threads >= 1)) || threads=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}

unet_mpirun_flags tcp,vader,self --bind-to none
unet_mpirun_extra
network=()
if [ -n "${UNET_IFACE:-}" ]; then
    network=(--mca btl_tcp_if_include "$UNET_IFACE" --mca oob_tcp_if_include "$UNET_IFACE")
fi
# Remote ranks start with the environment of a non-interactive ssh login: pass on what they need.
unet_mpirun_exports
launcher=(mpirun "${mpirun_flags[@]}" --hostfile "$hostfile" -np "$np" "${network[@]}" "${mpirun_exports[@]}" "${mpirun_extra[@]}")
echo "cluster: $np ranks on $hosts hosts ($slots slots) from $hostfile, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS per rank${UNET_IFACE:+, network $UNET_IFACE}, forwarding $mpirun_exported" >&2

pipeline_binary
pipeline_run "${3:-}" "${launcher[@]}"

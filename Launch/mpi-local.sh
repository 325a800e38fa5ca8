#!/usr/bin/env bash
# The whole pipeline with NP ranks on this machine (mpirun, shared memory between the ranks):
#   Launch/mpi-local.sh [NP] [RAW_DIR]          NP defaults to 2
# Each rank gets OPENBLAS_NUM_THREADS = max(1, cores / NP) (set it to override), so the ranks'
# BLAS threads together fill the cores without oversubscribing them. PATH, LD_LIBRARY_PATH (when
# set) and every OPENBLAS_*, OMP_* and UNET_* variable are passed to the ranks with mpirun -x
# (Launch/mpi-env.sh's unet_mpirun_exports), as on a cluster.
# `unet synth` and `unet prepare` run once, before mpirun; `unet train` and `unet predict` run
# under mpirun (rank 0 reads the data and writes the files, all ranks compute).
# Other settings: see Launch/pipeline.sh; MPIRUN_EXTRA adds mpirun arguments. Example:
#   EPOCHS=2 Launch/mpi-local.sh 2
set -euo pipefail
source "$(dirname "$0")/pipeline.sh"

np=${1:-2}
[[ $np =~ ^[1-9][0-9]*$ ]] || { echo "usage: Launch/mpi-local.sh [NP] [RAW_DIR] (NP: a number of ranks)" >&2; exit 2; }
cores=$(unet_cores)
threads=$((cores / np))
((threads >= 1)) || threads=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}

# Placement. Each rank runs OPENBLAS_NUM_THREADS BLAS threads besides its own scalar loops.
# - NP == cores: one rank per core, bound to it (--bind-to core): a rank and its single BLAS
#   thread never migrate, and no two ranks share a core.
# - NP < cores: each rank bound to its own block of `threads` cores (--map-by slot:PE=threads
#   --bind-to core), so its BLAS threads stay on cores no other rank uses and, on a multi-socket
#   node, near its memory. Not --bind-to none: unbound, the ranks' thread pools float over all
#   cores and collide; and not Open MPI's default, which for NP <= 2 pins a rank to ONE core with
#   all its BLAS threads (the reason mpi-env.sh says --bind-to none). When cores is not a
#   multiple of NP the remainder stays idle, as it would with threads = cores / NP anyway.
# - NP > cores (a test or a debugging run): --oversubscribe and --bind-to none. Binding would
#   stack ranks unevenly on cores (Open MPI refuses it without "overload-allowed"); unbound, the
#   kernel time-shares the cores evenly, and the slowest rank sets every step's pace.
if ((np == cores)); then
    binding=(--bind-to core)
elif ((np < cores)); then
    binding=(--map-by "slot:PE=$threads" --bind-to core)
else
    binding=(--oversubscribe --bind-to none)
fi
unet_mpirun_flags vader,self "${binding[@]}"
unet_mpirun_extra
unet_mpirun_exports
launcher=(mpirun "${mpirun_flags[@]}" -np "$np" "${mpirun_exports[@]}" "${mpirun_extra[@]}")
echo "mpi-local: ranks $np, cores $cores, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS per rank, ${binding[*]}, forwarding $mpirun_exported" >&2

pipeline_binary
pipeline_run "${2:-}" "${launcher[@]}"

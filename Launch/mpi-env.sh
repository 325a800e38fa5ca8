# Sourced by the launch scripts: the mpirun flags that make a run on one machine predictable.
# - shared memory within a node, TCP otherwise (ob1 + vader/self); no CMA single-copy, which
#   containers often forbid;
# - no core binding (a lone rank would otherwise be pinned to one core and its BLAS threads with it);
# - as root, Open MPI refuses to start without --allow-run-as-root.
MPIRUN_FLAGS=(--bind-to none --mca pml ob1 --mca btl vader,self --mca btl_vader_single_copy_mechanism none
             --mca odls_base_sigkill_timeout 10)
if [ "$(id -u)" -eq 0 ]; then MPIRUN_FLAGS+=(--allow-run-as-root); fi

# Sourced by the launch scripts: the mpirun flags that make a run on one machine predictable.
# - shared memory within a node, TCP otherwise (ob1 + vader/self); no CMA single-copy, which
#   containers often forbid;
# - no core binding (a lone rank would otherwise be pinned to one core and its BLAS threads with it);
# - as root, Open MPI refuses to start without --allow-run-as-root.
# Besides, unet_mpirun_exports (below): the -x flags that pass the environment on to every rank.
MPIRUN_FLAGS=(--bind-to none --mca pml ob1 --mca btl vader,self --mca btl_vader_single_copy_mechanism none
             --mca odls_base_sigkill_timeout 10)
if [ "$(id -u)" -eq 0 ]; then MPIRUN_FLAGS+=(--allow-run-as-root); fi

# The environment every rank needs, as mpirun flags: unet_mpirun_exports sets the array
# mpirun_exports to `-x NAME` for every exported variable named PATH, LD_LIBRARY_PATH (when not
# empty), OPENBLAS_*, OMP_* or UNET_*, and mpirun_exported to those names, comma-separated
# (for a script's start line). A rank that Open MPI starts on another host (through ssh or another
# rsh agent, and orted) gets a bare login environment plus what -x names, not the launching
# shell's. What these change: OPENBLAS_CORETYPE picks OpenBLAS's kernel and OPENBLAS_L2_SIZE its
# blocking (the last bits of every GEMM: ranks with different kernels give results that depend on
# which rank got which images); OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and UNET_THREADS the
# threads; UNET_WINOGRAD_* the convolutions' blocking; UNET_TEST_* are test hooks every rank must
# see. Call it after the last export the ranks should get.
unet_mpirun_exports() {
    mpirun_exports=()
    local names=() name
    while read -r name; do
        case $name in
            LD_LIBRARY_PATH) [ -n "$LD_LIBRARY_PATH" ] || continue ;;
            PATH | OPENBLAS_* | OMP_* | UNET_*) ;;
            *) continue ;;
        esac
        mpirun_exports+=(-x "$name")
        names+=("$name")
    done < <(compgen -e)
    mpirun_exported=$(IFS=,; echo "${names[*]}")
}

#!/usr/bin/env bash
# The long fuzz run (issue 6, point 6): CASES mutated files per format (default 100000) through the
# .npy and TIFF readers, with the deterministic fuzzer of the test suite
# (Tests/UNetTrainerTests/FuzzTests.swift, Mutator.swift), built in release. `swift test` runs the
# same fuzzer on a few thousand cases per format.
#
#   Launch/fuzz.sh [CASES]
#
# Environment: SEED (default 1) and FIRST (first case index, default 0) choose the cases; TIMEOUT
# (seconds one case may take, default 20); MEMORY_GB (the run's address-space limit, default 2:
# a run needs well under 100 MB resident, so an absurd allocation fails at once, as a crash naming
# its case, instead of exhausting the machine); SCRATCH_PATH (SwiftPM's --scratch-path, default
# .build). Coverage-guided fuzzing with libFuzzer and ASan: Launch/libfuzzer/run.sh.
#
# Each format runs in its own process and prints one line: cases, reads that succeeded, reads
# refused with a one-line error naming the file, failures, seconds. A case that crashes or hangs
# the process is left in a kept folder (the file and its description), printed with the command
# that reproduces it alone. Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${1:-100000}
seed=${SEED:-1}
first=${FIRST:-0}
[[ $cases =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: CASES must be a positive number (got $cases)" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ && $first =~ ^[0-9]+$ ]] || { echo "fuzz: SEED and FIRST must be numbers" >&2; exit 2; }
scratch=()
[ -z "${SCRATCH_PATH:-}" ] || scratch=(--scratch-path "$SCRATCH_PATH")

echo "== build (release, with the tests)"
# (-enable-testing: the tests use @testable imports, which `swift test` enables and `swift build` does not.)
swift build -c release --build-tests -Xswiftc -enable-testing "${scratch[@]}"
bin=$(swift build -c release --show-bin-path "${scratch[@]}")

keep=$(mktemp -d "${TMPDIR:-/tmp}/unet-fuzz.XXXXXX")
status=0
for format in npy tiff; do
    case $format in
        npy) test=npyReadersSurviveMutatedFiles ;;
        tiff) test=tiffReaderSurvivesMutatedFiles ;;
    esac
    echo "== $format: $cases cases from case $first, seed $seed"
    dir="$keep/$format"
    mkdir -p "$dir"
    start=$(date +%s)
    set +e
    (
        ulimit -v $(( ${MEMORY_GB:-2} * 1024 * 1024 ))
        UNET_FUZZ_CASES=$cases UNET_FUZZ_SEED=$seed UNET_FUZZ_FIRST=$first UNET_FUZZ_DIR=$dir \
        UNET_FUZZ_TIMEOUT=${TIMEOUT:-20} \
            "$bin/UNetTrainerPackageTests.xctest" --testing-library swift-testing --filter "FuzzTests/$test" \
            >"$dir/output" 2>&1
    )
    code=$?
    set -e
    grep -E "^fuzz $format:" "$dir/output" || true
    if [ $code -ne 0 ]; then
        status=1
        grep -E "^\s*$format case [0-9]+|still running|Fatal error|crashed" "$dir/output" | head -20 || true
        if ! grep -q "^fuzz $format:" "$dir/output"; then
            # No summary: the process died in a case, whose file and description are left behind.
            last=$(cat "$dir/$format.case" 2>/dev/null || true)
            index=$(sed -n 's/^case \([0-9]*\) .*/\1/p' <<<"$last")
            echo "fuzz: the $format run died (exit status $code) in $last"
            echo "fuzz: its file: $(ls "$dir"/case.* 2>/dev/null); the full output: $dir/output"
            echo "fuzz: reproduce it alone: UNET_FUZZ_SEED=$seed UNET_FUZZ_FIRST=${index:-<case>} UNET_FUZZ_CASES=1 swift test --filter FuzzTests/$test"
        fi
    fi
    echo "   ($(( $(date +%s) - start )) s wall)"
done

if [ $status -eq 0 ]; then
    rm -rf "$keep"
    echo "== fuzz: no failures"
else
    echo "== fuzz: FAILED (outputs kept in $keep)"
fi
exit $status

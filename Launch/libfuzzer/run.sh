#!/usr/bin/env bash
# Coverage-guided fuzzing of the .npy and TIFF readers with libFuzzer and AddressSanitizer, beside
# the deterministic fuzzer of the test suite (Launch/fuzz.sh):
#
#   Launch/libfuzzer/run.sh [SECONDS]      (default 300)
#
# Builds Sources/DataIO with harness.swift in one module (`swiftc -sanitize=fuzzer,address`; the
# Swift toolchain ships libFuzzer), starts from the committed fixtures, and runs for SECONDS with
# allocations above 1 GB counted as findings. libtiff itself is not instrumented (no coverage
# inside it), but a memory error it makes on our behalf still stops the run. Findings are written
# to a kept folder, printed at the end; exit status non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-300}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "libfuzzer: SECONDS must be a positive number (got $seconds)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/unet-libfuzzer.XXXXXX")
mkdir -p "$work/corpus" "$work/findings"
cp Tests/UNetTrainerTests/Fixtures/tiff/*.tif Tests/UNetTrainerTests/Fixtures/npy/*.npy "$work/corpus/"

echo "== build (swiftc -O -sanitize=fuzzer,address)"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name DataIO \
    Sources/DataIO/*.swift Launch/libfuzzer/harness.swift \
    -I Sources/CTIFF $(pkg-config --libs libtiff-4) -o "$work/fuzz-dataio" 2>&1 | grep -v "warning:" || true
[ -x "$work/fuzz-dataio" ] || { echo "libfuzzer: the build failed" >&2; exit 1; }

echo "== fuzz for $seconds s"
set +e
UNET_LIBFUZZER_DIR=$work "$work/fuzz-dataio" -max_total_time="$seconds" -max_len=65536 -malloc_limit_mb=1024 \
    -rss_limit_mb=2048 -artifact_prefix="$work/findings/" -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1
code=$?
set -e
grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "$work/log" || true
if [ $code -ne 0 ] || [ -n "$(ls -A "$work/findings")" ]; then
    grep -E "ERROR|Fatal error|==[0-9]+==|SUMMARY" "$work/log" | head -20 || true
    echo "== libfuzzer: FINDING (exit status $code): $(ls "$work/findings"); log $work/log"
    exit 1
fi
rm -rf "$work"
echo "== libfuzzer: no findings"

#!/usr/bin/env bash
# make test: the native suite, then the CUDA tests from the emulated build
# (tests/cuemu: kernels/ run on the CPU; an emulated pass is not a GPU
# result), and one total line "N passed, N failed, N skipped" at the end.
# Each runner's own summary line is prefixed with its label, so the total is
# the only line that starts with a number. T=filter runs the native tests
# matching it only; EMU=0 skips the emulated runs.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
cov_dir="$(mktemp -d)"; trap 'rm -rf "$cov_dir"' EXIT

# run LABEL TIMEOUT_S COMMAND...: streams the output, adds the runner's counts;
# a runner that dies or times out without its summary line counts as a failure.
run() {
  local label="$1" limit="$2"; shift 2
  local log prefix=""; log="$(mktemp)"
  [ "$label" = native ] || prefix="$label:"
  echo "== $label: $*"
  timeout --signal=KILL "$limit" env ATTRIB_TEST_LABEL="$prefix" "$@" 2>&1 |
    sed -u -E 's/^([0-9]+ passed, [0-9]+ failed)/'"$label"': \1/' | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line; line="$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n1)"
  rm -f "$log"
  if [ -z "$line" ]; then
    echo "FAIL $label: the runner ended without its summary (exit status $rc; 137 is the ${limit}s limit)"
    failed=$((failed + 1))
    return
  fi
  local p f s
  p="$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$line")"
  f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
  s="$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
}

if [ -n "${T:-}" ]; then
  run native 3600 ./tests/run_tests $T
else
  run native 3600 ./tests/run_tests
fi

if [ -z "${T:-}" ] && [ "${EMU:-1}" != 0 ]; then
  if [ -x build-emu/run_tests ] && [ -x build-emu-asan/run_tests ]; then
    # every CUDA test, threads run in forward order between barriers
    CUEMU_COVERAGE="$cov_dir/forward" run emu 1500 build-emu/run_tests '^cuda_'
    # the op tests again in reverse order: a missing barrier that the forward
    # order happens to hide shows up in the other
    CUEMU_ORDER=reverse CUEMU_COVERAGE="$cov_dir/reverse" run emu-reverse 600 build-emu/run_tests '^cuda_op'
    # and in a seeded random order
    CUEMU_ORDER=random:1 CUEMU_COVERAGE="$cov_dir/random" run emu-random 600 build-emu/run_tests '^cuda_op'
    # and under AddressSanitizer + UBSan: out-of-bounds accesses inside kernels
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run emu-asan 900 build-emu-asan/run_tests '^cuda_op'
    # every __global__ kernel in kernels/ was launched by one of the runs above
    CUEMU_COVERAGE_FILES="$cov_dir/forward:$cov_dir/reverse" run emu-coverage 60 build-emu/run_tests '^emu_'
  else
    echo "FAIL emu: build-emu/run_tests or build-emu-asan/run_tests is missing (make emu-build emu-asan-build)"
    failed=$((failed + 1))
  fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# The one prepared check for a machine with a real GPU (docs/testing.md).
#
#   bash tools/gpu_check.sh --build      here: builds build-gpu/ (CUDA_ARCH=90,
#                                        libpng/libjpeg/zlib linked statically)
#   bash tools/gpu_check.sh OUT_DIR      on the GPU machine, with build-gpu/ carried
#   bash tools/gpu_check.sh --dry-run    anywhere: the plan, its time budget, and
#                                        a check that every script it calls parses
#
# On the GPU machine it runs every CUDA test, compute-sanitizer memcheck and
# racecheck on the op tests (recorded, not failed, where the machine refuses
# them), attrib's CUDA benchmarks (forward, gated, gate-backward at batch
# 1/8/32, FP32 and TF32, peak memory; VGG16 and ResNet-50), PyTorch/cuDNN side by side on VGG16 at
# batch 32 with TF32 off and on, Score-CAM and Score-CDRP per image on VGG16
# (random weights, 224), and CPU-vs-CUDA agreement of Score-CDRP maps and
# gates on the shipped model. Each step has a time budget (the whole run fits
# one 5-minute call) and its result is written as soon as it is known:
# OUT_DIR/gpu_check.md (a table), OUT_DIR/gpu_check.json, OUT_DIR/gpu_check.log.
# A run that is cut off still reports what it measured; the exit status is 0
# only when every step passed. Environment: PYTHON (default python3),
# GPU_BUILD (default build-gpu), GPU_CHECK_LIMIT (seconds, default 290),
# GPU_CHECK_BUILD=0 (never build on the GPU machine).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
GPU_BUILD="${GPU_BUILD:-build-gpu}"
PY="${PYTHON:-python3}" # on the GPU machine: the python3 with PyTorch 2.x

# name|budget seconds|what
STEPS=(
  "cuda_tests|70|every CUDA test (build-gpu/run_tests '^cuda_' and the CLI's CUDA tests)"
  "memcheck|40|compute-sanitizer --tool memcheck on the CUDA op tests"
  "racecheck|35|compute-sanitizer --tool racecheck on the CUDA op tests"
  "bench_fp32|20|attrib bench --backend cuda: VGG16 forward, gated, backward at batch 1,8,32, FP32"
  "bench_tf32|20|the same at TF32"
  "resnet50|10|the same on ResNet-50 (random, 224), FP32 and TF32, shorter measurements"
  "peer|35|PyTorch/cuDNN vs attrib, VGG16 batch 32, TF32 off and on (tools/bench_cpu_peer.py)"
  "methods|30|Score-CAM, Score-CDRP, EB, c-EB, LRP, FAFRP, input x gradient, guided Grad-CAM, integrated gradients, SmoothGrad, Ablation-CAM, RISE (N 500), occlusion (stride 16), meaningful perturbation (T 50) s/image on VGG16 at 224"
  "agreement|30|Score-CDRP on 2 shipped samples, CPU vs CUDA maps and gates (tools/compare_paths.py)"
)
TOTAL_LIMIT="${GPU_CHECK_LIMIT:-290}" # seconds for the whole run

budget_of() { local s; for s in "${STEPS[@]}"; do [ "${s%%|*}" = "$1" ] && { s="${s#*|}"; echo "${s%%|*}"; return; }; done; }

plan() {
  local total=0 s name rest budget what
  echo "gpu_check plan (each step under its budget; the run stops at ${TOTAL_LIMIT}s):"
  for s in "${STEPS[@]}"; do
    name="${s%%|*}"; rest="${s#*|}"; budget="${rest%%|*}"; what="${rest#*|}"
    printf '  %-11s %4ss  %s\n' "$name" "$budget" "$what"
    total=$((total + budget))
  done
  echo "  total budget ${total}s (limit ${TOTAL_LIMIT}s; one device call of at most 300s)"
  [ "$total" -le "$TOTAL_LIMIT" ] || { echo "gpu_check: the budgets add up to ${total}s, over ${TOTAL_LIMIT}s" >&2; return 1; }
}

# ---- the steps (run as `gpu_check.sh --step NAME OUT_DIR` under a timeout) ----
sanitize() { # refused on some machines: recorded in the summary, not failed
  if ! command -v compute-sanitizer >/dev/null; then echo "compute-sanitizer: not installed"; return 0; fi
  compute-sanitizer --tool "$1" --error-exitcode 3 ./"$GPU_BUILD"/run_tests '^cuda_op' 2>&1 | tail -n 4
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 3 ] && return 3
  [ "$rc" = 0 ] || echo "compute-sanitizer $1 refused or failed to start (exit $rc): recorded, not a kernel error"
  return 0
}
run_step() {
  case "$1" in
    cuda_tests) ./"$GPU_BUILD"/run_tests '^cuda_' cli_cuda ;;
    memcheck) sanitize memcheck ;;
    racecheck) sanitize racecheck ;;
    bench_fp32) ./attrib bench --backend cuda --nets vgg16 --batch 1,8,32 --min-time 0.3 --precision fp32 ;;
    bench_tf32) ./attrib bench --backend cuda --nets vgg16 --batch 1,8,32 --min-time 0.3 --precision tf32 ;;
    resnet50)
      ./attrib bench --backend cuda --nets resnet50 --batch 1,8,32 --min-time 0.15 --precision fp32 &&
        ./attrib bench --backend cuda --nets resnet50 --batch 1,8,32 --min-time 0.15 --precision tf32 ;;
    peer)
      "$PY" tools/bench_cpu_peer.py --device cuda --precision fp32 --nets vgg16 --batch 32 --min-time 1 &&
        "$PY" tools/bench_cpu_peer.py --device cuda --precision tf32 --nets vgg16 --batch 32 --min-time 1 ;;
    methods)
      ./attrib bench --backend cuda --nets vgg16 --method scorecam --images 2 &&
        ./attrib bench --backend cuda --nets vgg16 --method score-cdrp --images 2 &&
        for m in eb c-eb lrp fafrp input-x-gradient guided-gradcam; do
          ./attrib bench --backend cuda --nets vgg16 --method $m --images 2 || return 1; done &&
        for m in integrated-gradients smoothgrad ablation-cam; do
          ./attrib bench --backend cuda --nets vgg16 --method $m --images 1 || return 1; done &&
        ./attrib bench --backend cuda --nets vgg16 --method rise --rise-n 500 --images 1 &&
        ./attrib bench --backend cuda --nets vgg16 --method occlusion --occlusion-stride 16 --images 1 &&
        ./attrib bench --backend cuda --nets vgg16 --method meaningful-perturbation --mp-iterations 50 --images 2 ;;
    agreement)
      local d="$2/.agreement" rc
      rm -rf "$d" && mkdir -p "$d"
      head -n 2 weights/samples/list.txt >"$d/list.txt"
      ./attrib explain --quiet --method score-cdrp --backend cpu --out "$d/cpu" --list "$d/list.txt" &&
        ./attrib explain --quiet --method score-cdrp --backend cuda --out "$d/cuda" --list "$d/list.txt" &&
        "$PY" tools/compare_paths.py "$d/cpu" "$d/cuda" --method score-cdrp
      rc=$?
      rm -rf "$d"
      return $rc ;;
    *) echo "gpu_check: no step $1" >&2; return 2 ;;
  esac
}
if [ "${1:-}" = "--step" ]; then
  export LD_LIBRARY_PATH="$ROOT/$GPU_BUILD:${CUDA_HOME:-/usr/local/cuda}/lib64:${LD_LIBRARY_PATH:-}"
  run_step "$2" "$3"
  exit $?
fi

if [ "${1:-}" = "--build" ]; then
  # Everything the GPU machine needs, in one ignored folder to carry: the
  # binaries (CUDA_ARCH=90, image libraries static, an x86-64-v3 CPU target)
  # and the OpenMP runtime, which that machine's image may lack.
  rm -f "$GPU_BUILD/attrib" "$GPU_BUILD/run_tests" # relink: the link flags differ from a normal build
  # libstdc++ static too: the CUDA objects need it, and that image's may be older
  make --no-print-directory BUILD="$GPU_BUILD" BIN="$GPU_BUILD/attrib" LIB="$GPU_BUILD/libattrib.a" \
    TEST_BIN="$GPU_BUILD/run_tests" CUDA_ARCH="${CUDA_ARCH:-90}" CPU_ARCH=-march=x86-64-v3 STATIC_IMAGE_LIBS=1 \
    CUDA_LIBS="-L/usr/local/cuda/lib64 -lcublas -lcudart_static -ldl -lrt -lpthread -Wl,-Bstatic -lstdc++ -Wl,-Bdynamic" \
    "$GPU_BUILD/attrib" "$GPU_BUILD/run_tests" || exit 1
  gomp="$(gcc -print-file-name=libgomp.so.1)"
  [ -f "$gomp" ] && cp -L "$gomp" "$GPU_BUILD/"
  du -sh "$GPU_BUILD" | sed 's/^/gpu_check: carry /'
  exit 0
fi

if [ "${1:-}" = "--dry-run" ]; then
  plan || exit 1
  fail=0
  bash -n "$0" || { echo "gpu_check: $0 does not parse"; fail=1; }
  for f in tools/bench_cpu_peer.py tools/compare_paths.py; do
    if ! /usr/bin/env "$(command -v /usr/bin/python3 || command -v python3)" -m py_compile "$f" 2>/dev/null; then
      echo "gpu_check: $f does not parse"; fail=1
    else
      echo "  parses: $f"
    fi
  done
  if [ -x ./attrib ]; then
    for c in "bench --help" "explain --help"; do
      if ./attrib $c >/dev/null 2>&1; then echo "  starts: ./attrib $c"; else echo "gpu_check: ./attrib $c fails"; fail=1; fi
    done
  else
    echo "  (./attrib not built here: not started)"
  fi
  for st in "${STEPS[@]}"; do # every planned step has a body in run_step
    grep -qE "^    ${st%%|*}\)" "$0" || { echo "gpu_check: step ${st%%|*} has no body in run_step"; fail=1; }
  done
  if [ -x "$GPU_BUILD/run_tests" ]; then echo "  carried build: $GPU_BUILD/run_tests present"
  else echo "  carried build: $GPU_BUILD/ missing here (bash tools/gpu_check.sh --build makes it)"; fi
  [ "$fail" = 0 ] && echo "gpu_check: dry run ok"
  exit "$fail"
fi

OUT="${1:?usage: tools/gpu_check.sh OUT_DIR | --build | --dry-run}"
mkdir -p "$OUT"
MD="$OUT/gpu_check.md" JSON="$OUT/gpu_check.json" LOG="$OUT/gpu_check.log"
START=$(date +%s)
: >"$LOG"
results=()

# Rewrites both result files from what is known so far.
write_results() {
  {
    echo "# gpu_check $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "device: ${DEVICE:-unknown}"
    echo
    echo "| step | status | seconds | result |"
    echo "|---|---|---|---|"
    local r
    for r in "${results[@]}"; do IFS=$'\t' read -r n st secs summary <<<"$r"; echo "| $n | $st | $secs | $summary |"; done
  } >"$MD"
  {
    printf '{"date":"%s","device":"%s","steps":[' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${DEVICE:-unknown}"
    local first=1 r
    for r in "${results[@]}"; do
      IFS=$'\t' read -r n st secs summary <<<"$r"
      [ $first = 1 ] || printf ','
      first=0
      printf '{"step":"%s","status":"%s","seconds":%s,"result":"%s"}' "$n" "$st" "$secs" \
        "$(printf '%s' "$summary" | sed 's/\\/\\\\/g; s/"/\\"/g')"
    done
    printf ']}\n'
  } >"$JSON"
}

# step NAME: runs `gpu_check.sh --step NAME` under the step's budget (and what is left of the
# total), logs its output and records status and a one-line summary (the
# command's last line, or SUMMARY_CMD applied to its output).
step() {
  local name="$1"; shift
  local budget left t0 rc out summary status
  budget="$(budget_of "$name")"
  left=$((TOTAL_LIMIT - ($(date +%s) - START)))
  [ "$left" -lt "$budget" ] && budget="$left"
  if [ "$budget" -le 2 ]; then
    results+=("$name"$'\t'"skipped"$'\t'"0"$'\t'"no time left")
    write_results
    return
  fi
  t0=$(date +%s)
  echo "=== $name ($budget s)" >>"$LOG"
  # timeout signals its whole process group: the step's children die with it
  out="$(timeout --signal=KILL "$budget" bash "$0" --step "$name" "$OUT" 2>&1)"
  rc=$?
  printf '%s\n' "$out" >>"$LOG"
  if [ $rc = 0 ]; then status=ok; elif [ $rc = 137 ]; then status="timeout"; else status="failed ($rc)"; fi
  summary="$(printf '%s\n' "$out" | eval "${SUMMARY_CMD:-tail -n 1}")"
  [ -n "$summary" ] || summary="$(printf '%s\n' "$out" | tail -n 1)" # a failure's last words
  summary="$(printf '%s' "$summary" | tr '\n\t|' '   ' | cut -c1-400)"
  results+=("$name"$'\t'"$status"$'\t'"$(($(date +%s) - t0))"$'\t'"$summary")
  write_results
}

# The carried OpenMP runtime, and the CUDA libraries wherever this image keeps them.
export LD_LIBRARY_PATH="$ROOT/$GPU_BUILD:${CUDA_HOME:-/usr/local/cuda}/lib64:${LD_LIBRARY_PATH:-}"
DEVICE="$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n1)"
[ -n "$DEVICE" ] || DEVICE="no nvidia-smi answer"
echo "device: $DEVICE" >>"$LOG"
# The carried binaries must start here (loader, glibc); else build here when
# this machine has what a build needs.
starts() { [ -x "$GPU_BUILD/run_tests" ] && "./$GPU_BUILD/run_tests" '^no_such_test' 2>>"$LOG" | grep -q '^0 passed'; }
if ! starts && [ "${GPU_CHECK_BUILD:-1}" != 0 ] && command -v nvcc >/dev/null && [ -f /usr/include/png.h ]; then
  echo "gpu_check: the carried $GPU_BUILD/ does not start here; building" >>"$LOG"
  GPU_BUILD=build-gpu-local
  make --no-print-directory BUILD="$GPU_BUILD" BIN="$GPU_BUILD/attrib" LIB="$GPU_BUILD/libattrib.a" \
    TEST_BIN="$GPU_BUILD/run_tests" CUDA_ARCH=90 "$GPU_BUILD/attrib" "$GPU_BUILD/run_tests" >>"$LOG" 2>&1
  export GPU_BUILD
fi
if ! starts; then
  results+=("build"$'\t'"failed"$'\t'"0"$'\t'"$GPU_BUILD/ was not carried or does not start, and cannot be built here (see gpu_check.log)")
  write_results
  exit 1
fi
cp -f "$GPU_BUILD/attrib" ./attrib # the CLI tests run ./attrib

SUMMARY_CMD="grep -E '^(FAIL|[0-9]+ passed)'" step cuda_tests
SUMMARY_CMD="tail -n 2" step memcheck
SUMMARY_CMD="tail -n 2" step racecheck
SUMMARY_CMD="grep -E 'forward|gated|backward|peak'" step bench_fp32
SUMMARY_CMD="grep -E 'forward|gated|backward|peak'" step bench_tf32
SUMMARY_CMD="grep -E 'forward|gated|backward'" step resnet50
SUMMARY_CMD="grep -iE 'ratio|ms/image|vgg16'" step peer
SUMMARY_CMD="grep -E 's/image'" step methods
SUMMARY_CMD="tail -n 3" step agreement
echo "gpu_check: done in $(($(date +%s) - START))s: $MD" | tee -a "$LOG"
for r in "${results[@]}"; do IFS=$'\t' read -r _ st _ <<<"$r"; [ "$st" = ok ] || exit 1; done

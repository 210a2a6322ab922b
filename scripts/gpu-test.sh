#!/usr/bin/env bash
# Builds headroom for sm_90 (H100/H200), runs the GPU parity tests and the synthetic Mixtral benchmark
# (int8 and int4) in one go, and prints a short summary last. Run it from the repository root on a
# machine with a GPU.
#
#   scripts/gpu-test.sh [--build-dir DIR] [--prebuilt DIR] [--out DIR] [--weights "int8 int4"] [--skip-bench]
#
# --prebuilt DIR: use DIR/test_parity and DIR/headroom (and DIR/lib/*.so) instead of building, for a
# GPU machine without the build dependencies. Results go to --out (default bench/results/latest).
set -uo pipefail

BUILD=build-gpu
PREBUILT=""
OUT=bench/results/latest
WEIGHTS="int8 int4"
SKIP_BENCH=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD=$2; shift 2 ;;
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --weights) WEIGHTS=$2; shift 2 ;;
    --skip-bench) SKIP_BENCH=1; shift ;;
    *) echo "gpu-test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
COMMIT=${HEADROOM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PATH=/usr/local/cuda/bin:$PATH
# Library path for our two binaries only (a bundle's libraries must not shadow the system's elsewhere).
BIN_LD=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

if [[ -n "$PREBUILT" ]]; then
  TEST_BIN=$PREBUILT/test_parity
  HEADROOM=$PREBUILT/headroom
  [[ -d $PREBUILT/lib ]] && BIN_LD=$BIN_LD:$(cd "$PREBUILT/lib" && pwd)
else
  echo "== build (sm_90) =="
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEADROOM_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    > "$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; echo "SUMMARY: configure failed"; exit 1; }
  cmake --build "$BUILD" --target test_parity headroom -j"$(nproc)" > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -20; echo "SUMMARY: build failed"; exit 1; }
  TEST_BIN=$BUILD/tests/test_parity
  HEADROOM=$BUILD/src/headroom
fi

CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "== card: ${CARD:-none} =="

echo "== parity tests =="
LD_LIBRARY_PATH=$BIN_LD "$TEST_BIN" --gtest_brief=1 2>&1 | tee "$OUT/parity.log"
PARITY_RC=${PIPESTATUS[0]}
PARITY_LINE=$(grep -E "^\[  (PASSED|FAILED)  \]|tests? ran" "$OUT/parity.log" | tr '\n' ' ')
MEMORY_LINE=$(grep "\[ memory \]" "$OUT/parity.log" | head -1)

BENCH_RC=0
declare -a BENCH_SUMMARY=()
if [[ $SKIP_BENCH == 0 ]]; then
  for w in $WEIGHTS; do
    echo "== bench mixtral-8x7b $w =="
    LD_LIBRARY_PATH=$BIN_LD "$HEADROOM" bench --synthetic mixtral-8x7b --weights "$w" --commit "$COMMIT" --out "$OUT/bench-$w.md" \
      2>&1 | tee "$OUT/bench-$w.log"
    rc=${PIPESTATUS[0]}
    [[ $rc != 0 ]] && BENCH_RC=$rc
    BENCH_SUMMARY+=("$(sed -n '/^== summary/,$p' "$OUT/bench-$w.log")")
    [[ $rc != 0 ]] && BENCH_SUMMARY+=("bench $w exited with $rc")
  done
fi

echo
echo "==================== SUMMARY ($CARD, commit $COMMIT) ===================="
echo "parity: rc $PARITY_RC $PARITY_LINE"
[[ -n "$MEMORY_LINE" ]] && echo "$MEMORY_LINE"
grep -E "^\[  FAILED  \]" "$OUT/parity.log" | head -20
for s in "${BENCH_SUMMARY[@]}"; do echo "$s"; done
[[ $PARITY_RC == 0 && $BENCH_RC == 0 ]]

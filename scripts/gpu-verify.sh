#!/usr/bin/env bash
# One GPU call that verifies what was written without a GPU and measures it against the old paths in the
# same run (issues 14 and 15): the full parity suite (its main backend runs the candidate kernels:
# tests/parity/parity_util.h candidate_options), then `headroom bench` with the candidates (--gemv tc,
# --prefill-gemm tc) next to the defaults, the int8 KV cache, and expert offload under a 24 GiB cap.
# From a prebuilt bundle (scripts/gpu-bundle.sh), on the GPU machine, in the repository root:
#   here:   cmake --build build --target headroom test_parity coldstart_tool synthetic_gguf && \
#           scripts/gpu-bundle.sh --build-dir build --out .gpu/bundle && git rev-parse --short HEAD > .gpu/commit
#   device: bash scripts/gpu-verify.sh        (carry .gpu/bundle.tar.gz and .gpu/commit; results in $OUT)
# Budget: parity up to 7 minutes (PARITY_LIMIT), then bench runs until DEADLINE (s since start); for two
# calls: ONLY=none (parity alone), then SKIP_PARITY=1 (the benches). Budget per call under 10 minutes. Each step has its own time limit; what finished is in $OUT even if a later one
# was cut. A short table is printed last.
set -u
OUT=${OUT:-bench/results/latest}
mkdir -p "$OUT"
[[ -d .gpu/bundle ]] || tar xzf .gpu/bundle.tar.gz -C .gpu || { echo "no .gpu/bundle.tar.gz"; exit 1; }
export HR_FIXTURES_DIR=$PWD/tests/fixtures
export LD_LIBRARY_PATH=$PWD/.gpu/bundle/lib:/usr/local/cuda/lib64
B=.gpu/bundle
C=$(cat .gpu/commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "card: $CARD; commit $C"
timeout 20 $B/coldstart_tool h2d-rate --gib 4 2>&1 | tail -1

# Not brief: the log names every test that ran (a cut run then says where it stopped). At 980cf03 the
# suite needed more than 200 s on an H100.
# SKIP_PARITY=1: the bench runs only (a second call after a parity-only one: ONLY='none').
if [[ ${SKIP_PARITY:-0} == 1 ]]; then echo "(parity skipped)" > "$OUT/parity.log"; PARITY_RC=skipped
else timeout ${PARITY_LIMIT:-420} $B/test_parity > "$OUT/parity.log" 2>&1; PARITY_RC=$?; fi
echo "parity rc $PARITY_RC"
grep -E "^\[  (PASSED|FAILED)  \]|tests? ran|\[ memory \]" "$OUT/parity.log" | head -30
grep -B3 -A12 "Failure" "$OUT/parity.log" | head -60

SUMMARY=()
# The device's per-call limit is 10 minutes: a run that could not finish before it is skipped (and said so)
# rather than killed mid-way with the summary lost.
DEADLINE=${DEADLINE:-560}
run() {
  local tag=$1; shift
  local limit=80
  # ONLY='int4-tc|int8-fused': just those runs (a short call when little device time is left).
  if [[ -n ${ONLY:-} && ! $tag =~ ^(${ONLY})$ ]]; then return; fi
  [[ $tag == *off24* ]] && limit=110  # the offload runs time both --offload-compute modes
  if (( SECONDS + limit > DEADLINE )); then SUMMARY+=("$tag skipped: ${SECONDS}s used of ${DEADLINE}s"); return; fi
  timeout $limit $B/headroom bench --synthetic mixtral-8x7b --commit "$C" --out "$OUT/bench-$tag.md" "$@" > "$OUT/bench-$tag.log" 2>&1
  local rc=$?
  echo "== $tag (rc $rc): headroom bench $*"
  sed -n '/^== summary/,$p' "$OUT/bench-$tag.log" | grep -v "^$"
  SUMMARY+=("$tag rc $rc: $(sed -n '/^== summary/,$p' "$OUT/bench-$tag.log" | grep -E "^decode ctx 512|^prefill 2048|^decode batch 32|^offload|launches" | tr '\n' ';')")
}
run int4-tc  --weights int4 --gemv tc --prefill-gemm tc --batches 32,64 --contexts 512,4096
run int4-off24 --weights int4 --gemv tc --prefill-gemm tc --gpu-memory 24GiB --offload-experts auto
run int4     --weights int4 --batches 32 --contexts 512
run int8-tc  --weights int8 --gemv tc --prefill-gemm tc --batches 32,64
# --fused both: each decode graph with and without the fused attention/router kernels (and their launch counts).
run int8-fused --weights int8 --fused both --batches 32 --contexts 512,4096
run int4-kv8 --weights int4 --gemv tc --contexts 512,4096,16384 --kv-cache int8
run int8-off24 --weights int8 --gpu-memory 24GiB --offload-experts auto --batches 8 --iters 20

echo
echo "==================== SUMMARY ($CARD, commit $C) ===================="
echo "parity: rc $PARITY_RC $(grep -E "^\[  (PASSED|FAILED)  \]" "$OUT/parity.log" | tr '\n' ' ')"
for s in "${SUMMARY[@]}"; do echo "$s"; done

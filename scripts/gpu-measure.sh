#!/usr/bin/env bash
# The second GPU call, after scripts/gpu-verify.sh (same bundle, same carry: .gpu/bundle.tar.gz and .gpu/commit):
# full-size measurements that need a checkpoint on the machine's disk.
#   1. issue 19: `bash bench/coldstart/run.sh` (pre-quantized int8 Mixtral-8x7B, 32 layers, start-to-ready from
#      page cache and from disk; --skip-bf16 unless FULL=1, which adds bf16 quantize-on-load, 16 layers);
#   2. issue 16: bench/server/classify_bench.py on a synthetic int8 Mixtral-8x7B written by coldstart_tool
#      (documents/s at concurrency 1, 8, 32 and batches of 32, inter-token latency with and without
#      classification, prefix-cache hit rate).
# Results (markdown and logs) land in $OUT. About 9 minutes; each step has its own time limit.
set -u
OUT=${OUT:-bench/results/latest}
mkdir -p "$OUT"
[[ -d .gpu/bundle ]] || tar xzf .gpu/bundle.tar.gz -C .gpu || { echo "no .gpu/bundle.tar.gz"; exit 1; }
B=$PWD/.gpu/bundle
export HR_FIXTURES_DIR=$PWD/tests/fixtures
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
C=$(cat .gpu/commit 2>/dev/null || echo unknown)
echo "card: $CARD; commit $C"

echo "== coldstart"
BF16=--skip-bf16; [[ ${FULL:-0} == 1 ]] && BF16=
timeout ${COLD_TIMEOUT:-280} bash bench/coldstart/run.sh --bundle .gpu/bundle $BF16 --out "$OUT" > "$OUT/coldstart.log" 2>&1
echo "coldstart rc $?"; tail -20 "$OUT/coldstart.log"

echo "== classify"
M=/tmp/mixtral-int8
LD_LIBRARY_PATH=$B/lib:/usr/local/cuda/lib64 timeout 180 $B/coldstart_tool write $M --format int8 --layers 32 \
  --tokenizer-dir tests/fixtures/models/tiny-mixtral > "$OUT/classify-write.log" 2>&1
echo "write rc $? ($(tail -1 "$OUT/classify-write.log"))"
# The bundle's libraries for headroom only: python3 keeps the machine's own libstdc++.
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/lib:/usr/local/cuda/lib64 exec %s/headroom "$@"\n' "$B" "$B" > /tmp/headroom-bundled
chmod +x /tmp/headroom-bundled
timeout ${CLASSIFY_TIMEOUT:-240} python3 bench/server/classify_bench.py \
  --bin /tmp/headroom-bundled --model-dir $M --concurrency 1 8 32 --batch 32 --seconds ${CB_SECONDS:-10} --warmup 5 \
  --device-label "$CARD, int8, headroom $C" --tag gpu --out-dir "$OUT" \
  --server-args --device cuda --sequences 64 --context 4096 --prefill-chunk 2048 --max-queue 256 > "$OUT/classify.log" 2>&1
echo "classify rc $?"; tail -40 "$OUT/classify.log"
rm -rf $M

#!/usr/bin/env bash
# headroom next to llama.cpp on the same GPU in the same run (issue #15's side by side), for the GPU machine:
#   bash bench/peer/run_llama.sh --bundle .gpu/bundle --llama-bench .gpu/llama-bench [--work /tmp/peer] [--out DIR]
# llama-bench is built from the llama-cpp-python sdist's vendored llama.cpp with CUDA for sm_90 (see
# bench/peer/README.md). For each pair (headroom int8 / llama.cpp Q8_0, headroom int4 / llama.cpp Q4_K):
#   - llama.cpp: a synthetic Mixtral-8x7B GGUF of that type (bench/peer/synthetic_gguf, 32 layers) on local disk,
#     llama-bench: decode of 128 tokens after 512 tokens of context (tg128 @ d512), prefill of 2048 tokens (pp2048),
#     all layers on the GPU (-ngl 99), flash attention on;
#   - headroom: `headroom bench --synthetic mixtral-8x7b` (weights generated on the GPU; same shapes).
# Prints and writes OUT/peer.md with tok/s of both and the ratio. One GGUF on disk at a time; removed on exit.
set -uo pipefail
BUNDLE=.gpu/bundle
LLAMA_BENCH=.gpu/llama-bench
WORK=/tmp/peer
RESULTS=${OUT:-bench/results}
LAYERS=32
PAIRS="int8:q8_0 int4:q4_k"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bundle) BUNDLE=$2; shift 2 ;;
    --llama-bench) LLAMA_BENCH=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --out) RESULTS=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    *) echo "run_llama: unknown argument $1 (expected --bundle, --llama-bench, --work, --out, --layers, --pairs)" >&2; exit 2 ;;
  esac
done
die() { echo "run_llama: $*" >&2; exit 1; }
[[ -x $BUNDLE/headroom && -x $BUNDLE/synthetic_gguf ]] || die "expected $BUNDLE/headroom and $BUNDLE/synthetic_gguf"
[[ -x $LLAMA_BENCH ]] || die "expected the llama-bench binary at $LLAMA_BENCH"
BIN_LD="$(cd "$BUNDLE" && pwd)/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$RESULTS" "$WORK" || die "cannot create $RESULTS or $WORK"
trap 'rm -rf "$WORK"' EXIT
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || cat .gpu/commit 2>/dev/null || echo unknown)
ROWS=()

# field JSON KEY_TEST: avg_ts of the llama-bench JSON record whose n_prompt / n_gen match.
llama_ts() {
  python3 - "$1" "$2" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
want = sys.argv[2]
for r in recs:
    if (want == "pp" and r["n_prompt"] > 0 and r["n_gen"] == 0) or (want == "tg" and r["n_gen"] > 0 and r["n_prompt"] == 0):
        print(f'{r["avg_ts"]:.1f}'); break
PY
}

for pair in $PAIRS; do
  hw=${pair%%:*}; lt=${pair##*:}
  echo "== headroom $hw =="
  LD_LIBRARY_PATH=$BIN_LD timeout 240 "$BUNDLE/headroom" bench --synthetic mixtral-8x7b --weights "$hw" --contexts 512 \
      --prompts 2048 --commit "$COMMIT" --out "$RESULTS/peer-headroom-$hw.md" > "$WORK/hr-$hw.log" 2>&1
  sed -n '/^== summary/,$p' "$WORK/hr-$hw.log"
  HR_TG=$(sed -n 's/^decode ctx 512: \([0-9.]*\) tok\/s.*/\1/p' "$WORK/hr-$hw.log" | head -1)
  HR_PP_MS=$(sed -n 's/^prefill 2048: \([0-9.]*\) ms.*/\1/p' "$WORK/hr-$hw.log" | head -1)
  HR_PP=$(python3 -c "import sys; print(f'{2048/float(sys.argv[1])*1e3:.0f}' if sys.argv[1] else '')" "${HR_PP_MS:-}")

  echo "== llama.cpp $lt =="
  F="$WORK/mixtral-$lt.gguf"
  LD_LIBRARY_PATH=$BIN_LD "$BUNDLE/synthetic_gguf" "$F" --type "$lt" --layers "$LAYERS" || die "writing $F failed"
  # Two runs of each test (-r 2); the first load maps the file from the page cache.
  LD_LIBRARY_PATH=/usr/local/cuda/lib64 timeout 300 "$LLAMA_BENCH" -m "$F" -ngl 99 -fa on -r 2 -p 2048 -n 0 -o json \
      > "$WORK/pp-$lt.json" 2> "$WORK/llama-$lt.log" || { tail -20 "$WORK/llama-$lt.log"; echo "llama-bench pp failed"; }
  LD_LIBRARY_PATH=/usr/local/cuda/lib64 timeout 300 "$LLAMA_BENCH" -m "$F" -ngl 99 -fa on -r 2 -p 0 -n 128 -d 512 -o json \
      > "$WORK/tg-$lt.json" 2>> "$WORK/llama-$lt.log" || { tail -20 "$WORK/llama-$lt.log"; echo "llama-bench tg failed"; }
  grep -iE "error|CUDA|offloaded" "$WORK/llama-$lt.log" | head -5
  LL_PP=$(llama_ts "$WORK/pp-$lt.json" pp 2>/dev/null)
  LL_TG=$(llama_ts "$WORK/tg-$lt.json" tg 2>/dev/null)
  rm -f "$F"
  ratio() { python3 -c "import sys; a,b=sys.argv[1],sys.argv[2]; print(f'{float(a)/float(b):.2f}x' if a and b else '-')" "${1:-}" "${2:-}"; }
  ROWS+=("decode tok/s, batch 1, context 512|headroom $hw|${HR_TG:--}|llama.cpp $lt|${LL_TG:--}|$(ratio "${HR_TG:-}" "${LL_TG:-}")")
  ROWS+=("prefill tok/s, 2048 tokens|headroom $hw|${HR_PP:--}|llama.cpp $lt|${LL_PP:--}|$(ratio "${HR_PP:-}" "${LL_PP:-}")")
done

{
  echo "# headroom next to llama.cpp, $(date -u +%Y-%m-%d) — $GPU, headroom $COMMIT"
  echo
  echo "Synthetic Mixtral-8x7B shapes ($LAYERS layers), random weights, everything on the GPU. headroom: \`headroom bench\`"
  echo "(int8: one f32 scale per row; int4: one scale per 128-column group). llama.cpp: \`llama-bench -ngl 99 -fa on\`"
  echo "(tg128 after 512 tokens of context; pp2048) on a GGUF written by bench/peer/synthetic_gguf, built from the"
  echo "llama-cpp-python sdist's vendored llama.cpp for sm_90. Q8_0 (8.5 bits per weight) and Q4_K (4.5) against"
  echo "headroom's int8 (8 + a row scale) and int4 (4 + 16/128: 4.125)."
  echo
  echo "| metric | engine | tok/s | peer | tok/s | headroom / peer |"
  echo "|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
} > "$RESULTS/peer.md"
cat "$RESULTS/peer.md"

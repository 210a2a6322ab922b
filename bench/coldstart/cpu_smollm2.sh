#!/usr/bin/env bash
# Start-to-ready of `headroom serve` on the CPU with SmolLM2-135M (GGUF Q4_1, scripts/fetch-model.sh):
# process start to the first /ping 200 (weights loaded, warm-up step done), RUNS times, median.
#   bash bench/coldstart/cpu_smollm2.sh [--bin build/src/headroom] [--baseline OTHER_BIN] [--runs 5]
# Writes bench/results/coldstart-cpu-smollm2-<date>-<commit>.md. --baseline runs another build (e.g. main's)
# on the same machine in the same run, interleaved, for comparison.
set -uo pipefail
BIN=build/src/headroom
BASE=
RUNS=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --baseline) BASE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "cpu_smollm2: unknown argument $1" >&2; exit 2 ;;
  esac
done
MODEL=$(bash scripts/fetch-model.sh) || { echo "cpu_smollm2: could not fetch the model" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "cpu_smollm2: expected an executable $BIN" >&2; exit 1; }
LOG=$(mktemp)
PID=
trap '[[ -n "$PID" ]] && kill $PID 2>/dev/null; rm -f "$LOG"' EXIT

# once BIN: prints "seconds load_line"
once() {
  local t0 t1 code=000
  t0=$(date +%s.%N)
  "$1" serve --model "$MODEL" --port 18432 --context 2048 --sequences 4 > "$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 1 2000); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:18432/ping 2>/dev/null || true)
    [[ "$code" == 200 ]] && break
    kill -0 $PID 2>/dev/null || break
    sleep 0.02
  done
  t1=$(date +%s.%N)
  kill $PID 2>/dev/null; wait $PID 2>/dev/null; PID=
  [[ "$code" == 200 ]] || { tail -5 "$LOG" >&2; echo "cpu_smollm2: $1 did not become ready" >&2; exit 1; }
  echo "$(python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.3f}')" "$t0" "$t1") $(grep -o 'weights: [0-9.]* GB in [0-9.]* s' "$LOG" | head -1 | sed 's/ /_/g')"
}
median() { python3 -c "import sys,statistics; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.3f}')" "$@"; }

NEW=(); OLD=(); NEWLOAD=
once "$BIN" > /dev/null  # page cache warm for both
for i in $(seq 1 "$RUNS"); do
  r=$(once "$BIN"); NEW+=("${r%% *}"); NEWLOAD=${r#* }
  if [[ -n "$BASE" ]]; then r=$(once "$BASE"); OLD+=("${r%% *}"); fi
done
COMMIT=$(git rev-parse --short HEAD)
OUTF="bench/results/coldstart-cpu-smollm2-$(date -u +%Y-%m-%d)-$COMMIT.md"
{
  echo "# Cold start on the CPU: SmolLM2-135M-Instruct Q4_1 GGUF, $(date -u +%Y-%m-%d), headroom $COMMIT"
  echo
  echo "\`headroom serve --model SmolLM2-135M-Instruct.Q4_1.gguf --context 2048 --sequences 4\` (CPU backend),"
  echo "process start to the first \`/ping\` 200, page cache warm, median of $RUNS runs. $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "shared with other builds: expect noise."
  echo
  echo "| build | start-to-ready median (s) | runs (s) | weights stage |"
  echo "|---|---|---|---|"
  echo "| $BIN ($COMMIT) | $(median "${NEW[@]}") | ${NEW[*]} | ${NEWLOAD//_/ } |"
  [[ -n "$BASE" ]] && echo "| $BASE (baseline) | $(median "${OLD[@]}") | ${OLD[*]} | - |"
} > "$OUTF"
cat "$OUTF"

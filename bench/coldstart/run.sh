#!/usr/bin/env bash
# Cold-start benchmark of `headroom serve` on a full-size Mixtral-8x7B (issue #19), for the GPU machine,
# from the prebuilt bundle (scripts/gpu-bundle.sh; it carries headroom, coldstart_tool and lib/):
#   bash bench/coldstart/run.sh --bundle .gpu/bundle [--work /tmp/coldstart] [--out "$OUT"]
# Writes a synthetic checkpoint to local disk (repeated random block), measures start-to-ready (first
# /ping 200) from the page cache and, when /proc/sys/vm/drop_caches is writable, from the disk, plus the
# limits in the same run: page-cache / disk read rate and pinned host-to-device copy rate.
#   1. int8, all 32 layers, pre-quantized (headroom's format, 46.7 GB): loads with no arithmetic.
#   2. bf16, 16 of 32 layers (44 GB; the full 87 GB does not fit a 64 GB disk), quantized to int8 on load (on the GPU).
# Never both on disk at once; the work folder is removed on exit, also on failure or Ctrl-C.
# Prints a table and writes it to OUT/coldstart.md (OUT: $OUT, else bench/results). Budget: < 10 minutes.
set -uo pipefail
BUNDLE=.gpu/bundle
WORK=/tmp/coldstart
RESULTS=${OUT:-bench/results}
SKIP_BF16=0
NO_DROP=0
DEVICE=cuda
LAYERS=32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bundle) BUNDLE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --out) RESULTS=$2; shift 2 ;;
    --skip-bf16) SKIP_BF16=1; shift ;;
    --no-drop) NO_DROP=1; shift ;;  # never drop the page cache (a shared machine)
    # A dry run of the script itself on a machine without a GPU: --device cpu --layers 1.
    --device) DEVICE=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    *) echo "coldstart: unknown argument $1 (expected --bundle DIR, --work DIR, --out DIR, --skip-bf16, --no-drop, --device cpu|cuda, --layers N)" >&2; exit 2 ;;
  esac
done
T_START=$(date +%s)
HR="$BUNDLE/headroom"
TOOL="$BUNDLE/coldstart_tool"
TOK=tests/fixtures/models/tiny-mixtral
die() { echo "coldstart: $*" >&2; exit 1; }
[[ -x "$HR" && -x "$TOOL" ]] || die "expected $HR and $TOOL (unpack the bundle: tar xzf .gpu/bundle.tar.gz -C .gpu)"
[[ -f "$TOK/tokenizer.json" ]] || die "expected the tokenizer fixture $TOK/tokenizer.json (run from the repository root)"
# The bundle's libraries (and CUDA's runtime) for our two binaries only, not for python3.
BIN_LD="$(cd "$BUNDLE" && pwd)/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tool() { LD_LIBRARY_PATH="$BIN_LD" "$TOOL" "$@"; }
if [[ $DEVICE == cuda ]]; then
  command -v nvidia-smi >/dev/null || die "no nvidia-smi: this benchmark needs the GPU machine (or --device cpu for a dry run)"
  GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
else
  GPU="CPU dry run ($(nproc) cores)"
fi

mkdir -p "$RESULTS" "$WORK" || die "cannot create $RESULTS or $WORK"
FREE_GB=$(df -B1G --output=avail "$WORK" | tail -1 | tr -d ' ')
# int8: 0.39 GB (embedding, head) + 1.46 GB per layer; bf16 twice per layer. Fewer layers when the disk is
# short (said in the table), rather than failing after minutes of writing.
FIT=$(( (FREE_GB - 2) * 100 / 146 ))
if (( FIT < LAYERS )); then
  (( FIT >= 1 )) || die "$WORK has ${FREE_GB} GB free; even one layer needs 2 GB"
  echo "coldstart: $WORK has ${FREE_GB} GB free: $FIT layers instead of $LAYERS" >&2
  LAYERS=$FIT
fi
BF16_LAYERS=$(( LAYERS / 2 > 0 ? LAYERS / 2 : 1 ))
SERVER_PID=
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
rm -f "$RESULTS/coldstart-serve.log"
trap cleanup EXIT
trap 'exit 130' INT TERM
CAN_DROP=0
if (( ! NO_DROP )) && sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then CAN_DROP=1; fi
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
ROWS=()   # "stage|GB|seconds|GB/s|limit GB/s|fraction"
THREADS=$(nproc); (( THREADS > 16 )) && THREADS=16
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
MD="$RESULTS/coldstart.md"
# The table so far, rewritten after every row: a run stopped by the 10-minute limit still leaves it.
write_md() {
{
  echo "# Cold start, $(date -u +%Y-%m-%d) — $GPU, headroom $COMMIT"
  echo
  echo "Synthetic Mixtral-8x7B shapes (repeated random block). Start-to-ready = process start to the first"
  echo "\`/ping\` 200 (weights loaded, graphs recorded, warm-up step done). GB = checkpoint file bytes"
  echo "(the weights stage counts bytes landed in the weights region). The bf16 case holds $BF16_LAYERS of 32 layers"
  echo "(16 on the GPU machine: the full 87 GB does not fit its 64 GB disk). Limit: the rate measured in this run that bounds the stage."
  echo "Drop caches allowed: $CAN_DROP. Threads: $THREADS. Total run: $(elapsed) s."
  echo
  echo "| stage | GB | seconds | GB/s | limit GB/s | fraction of limit |"
  echo "|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
} > "$MD"
}
row() {
  ROWS+=("$1|$2|$3|$4|$5|$6")
  printf '%-48s %7s GB %7s s %7s GB/s  limit %7s  %s\n' "$1" "$2" "$3" "$4" "$5" "$6"
  write_md
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b>0 else '-')" "$1" "$2"; }
gbps() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
elapsed() { echo $(( $(date +%s) - T_START )); }

# --- limits -----------------------------------------------------------------------------------------
if [[ $DEVICE == cuda ]]; then
  H2D=$(tool h2d-rate --gib 4 | tee /dev/stderr | sed -n 's/.*= \([0-9.]*\) GB\/s.*/\1/p')
  [[ -n "$H2D" ]] || die "the host-to-device probe failed"
  row "pinned host-to-device copy (probe)" 4.29 - "$H2D" "$H2D" 1.00
else
  H2D=1e9  # no link: the read rate is the limit
fi

# serve MODEL LABEL [ARGS...]: start-to-ready in seconds (first /ping 200), the load line, then stop.
serve_once() {
  local model=$1 label=$2; shift 2
  local log="$WORK/serve.log" port=18431
  local t0=$(date +%s.%N)
  LD_LIBRARY_PATH="$BIN_LD" "$HR" serve --model "$model" --device "$DEVICE" --port $port --context 1024 --sequences 8 --prefill-chunk 512 "$@" \
      > "$log" 2>&1 &
  SERVER_PID=$!
  # python3, not curl: the GPU machine is only known to have python3. Prints the last /ping status.
  local code
  code=$(python3 - "$port" "$SERVER_PID" <<'PY'
import os, sys, time, urllib.request, urllib.error
port, pid = sys.argv[1], int(sys.argv[2])
code = 0
for _ in range(30000):  # 10 minutes at most
    try:
        code = urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = 0
    if code == 200:
        break
    try:  # note: an exited child stays a zombie until the shell waits for it: read its state
        if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            break
    except OSError:
        break
    time.sleep(0.02)
print(code)
PY
)
  local t1=$(date +%s.%N)
  if [[ "$code" != 200 ]]; then
    tail -20 "$log" >&2
    kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null; SERVER_PID=
    die "$label: the server did not become ready (log above)"
  fi
  kill $SERVER_PID; wait $SERVER_PID 2>/dev/null; SERVER_PID=
  { echo "=== $label"; cat "$log"; } >> "$RESULTS/coldstart-serve.log"  # one file: OUT brings back 8 at most
  READY_S=$(python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$t0" "$t1")
  LOAD_LINE=$(grep -o 'weights: [0-9.]* GB in [0-9.]* s ([0-9.]* GB/s' "$log" | tail -1)
  LOAD_GB=$(echo "$LOAD_LINE" | sed -n 's/weights: \([0-9.]*\) GB in.*/\1/p')
  LOAD_S=$(echo "$LOAD_LINE" | sed -n 's/.* GB in \([0-9.]*\) s.*/\1/p')
  LOAD_GBPS=$(echo "$LOAD_LINE" | sed -n 's/.*(\([0-9.]*\) GB\/s/\1/p')
}

# run_case NAME DIR FILE_GB STARTS [serve args]: STARTS starts from the page cache (the file was just
# written, so the first is one too when host memory holds it), then one from the disk if allowed and time is left.
run_case() {
  local name=$1 dir=$2 file_gb=$3 starts=$4; shift 4
  local pc=$(tool read-rate --threads "$THREADS" "$dir/model.safetensors" | tee /dev/stderr | sed -n 's/.*= \([0-9.]*\) GB\/s.*/\1/p')
  row "$name: page-cache read ($THREADS threads)" "$file_gb" - "$pc" "$pc" 1.00
  for k in $(seq 1 "$starts"); do
    serve_once "$dir" "$name-start$k" "$@"
    row "$name: serve start-to-ready, page cache #$k" "$file_gb" "$READY_S" "$(gbps "$file_gb" "$READY_S")" "$pc" "$(ratio "$(gbps "$file_gb" "$READY_S")" "$pc")"
  done
  local lim=$(python3 -c "import sys; print(min(float(sys.argv[1]), float(sys.argv[2])))" "$pc" "$H2D")
  row "$name: weights stage (load log), page cache" "$LOAD_GB" "$LOAD_S" "$LOAD_GBPS" "$lim" "$(ratio "$LOAD_GBPS" "$lim")"
  # From the disk: two reads of the file (the probe, then serve). Estimated with the disk rate measured
  # before, else the write rate; skipped when it would pass 570 s.
  local need=$(python3 -c "import sys; print(int(2 * float(sys.argv[1]) / max(float(sys.argv[2]), 0.05) + 30))" \
      "$file_gb" "${DISK_RATE:-${WRITE_RATE:-0.5}}")
  if (( CAN_DROP )) && (( $(elapsed) + need < 570 )); then
    drop
    local disk=$(tool read-rate --threads "$THREADS" "$dir/model.safetensors" | tee /dev/stderr | sed -n 's/.*= \([0-9.]*\) GB\/s.*/\1/p')
    DISK_RATE=$disk
    row "$name: disk read, caches dropped ($THREADS threads)" "$file_gb" - "$disk" "$disk" 1.00
    drop
    serve_once "$dir" "$name-disk" "$@"
    row "$name: serve start-to-ready, from disk" "$file_gb" "$READY_S" "$(gbps "$file_gb" "$READY_S")" "$disk" "$(ratio "$(gbps "$file_gb" "$READY_S")" "$disk")"
  elif (( ! CAN_DROP )); then
    echo "coldstart: /proc/sys/vm/drop_caches is not writable: no from-disk numbers" >&2
  else
    echo "coldstart: $(elapsed) s used, about $need s needed: the from-disk run of $name is skipped to stay under 10 minutes" >&2
    row "$name: from disk SKIPPED (time: $(elapsed) s used, ~$need s needed)" "$file_gb" - - - -
  fi
}

file_gb() { python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/1e9:.2f}')" "$1/model.safetensors"; }

# --- 1. pre-quantized int8, 32 layers -------------------------------------------------------------------
WRITE_LINE=$(tool write "$WORK/int8" --format int8 --layers "$LAYERS" --tokenizer-dir "$TOK") || die "writing the int8 checkpoint failed"
echo "$WRITE_LINE"
WRITE_S=$(echo "$WRITE_LINE" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p' | cut -d. -f1)
WRITE_RATE=$(echo "$WRITE_LINE" | sed -n 's/.*(\([0-9.]*\) GB\/s).*/\1/p')
row "write int8 checkpoint (synthetic, fsync)" "$(echo "$WRITE_LINE" | sed -n 's/.*, \([0-9.]*\) GB in.*/\1/p')" "${WRITE_S:-?}" "$(echo "$WRITE_LINE" | sed -n 's/.*(\([0-9.]*\) GB\/s).*/\1/p')" - -
run_case "int8 $LAYERS layers pre-quantized" "$WORK/int8" "$(file_gb "$WORK/int8")" 2
rm -rf "$WORK/int8"

# --- 2. bf16, 16 of 32 layers, quantized to int8 on load -----------------------------------------------------
# Writing 44 GB and one quantize-on-load start take minutes on a slow disk: only with enough time left.
# Estimate: writing it (as long as the int8 file took) + one start (quantize-on-load) + 60 s margin.
if (( ! SKIP_BF16 )) && (( $(elapsed) + ${WRITE_S:-300} + 120 < 560 )); then
  tool write "$WORK/bf16" --format bf16 --layers "$BF16_LAYERS" --tokenizer-dir "$TOK" || die "writing the bf16 checkpoint failed"
  run_case "bf16 $BF16_LAYERS layers -> int8 on load" "$WORK/bf16" "$(file_gb "$WORK/bf16")" 1 --weights int8 --quantize-on-gpu
  rm -rf "$WORK/bf16"
else
  echo "coldstart: bf16 case skipped ($(elapsed) s used)" >&2
  row "bf16 case SKIPPED ($( (( SKIP_BF16 )) && echo '--skip-bf16' || echo "time: $(elapsed) s used"))" - - - - -
fi

# --- table ---------------------------------------------------------------------------------------------
write_md
cat "$MD"

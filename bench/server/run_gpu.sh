#!/usr/bin/env bash
# GPU load benchmark of `headroom serve` on a Mixtral-8x7B-shaped random checkpoint (LAYERS of the 32
# layers, real shapes). Builds headroom with CUDA, writes the checkpoint, serves it, runs load_bench.py
# at a few concurrencies. Results go to ${OUT:-bench/results}. Needs nvcc, numpy, requests.
set -u
OUT=${OUT:-bench/results}
LAYERS=${LAYERS:-4}
MODEL=/tmp/mixtral-rand
mkdir -p "$OUT"
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
echo "gpu: $GPU"
python3 -c "import numpy, requests" || { echo "needs numpy and requests"; exit 1; }
# A machine without the Debian dev packages can get them from a folder (DEPS: include/, lib/, lib/pkgconfig).
if [ -n "${DEPS:-}" ]; then
  export PKG_CONFIG_PATH="$(cd "$DEPS" && pwd)/lib/pkgconfig:${PKG_CONFIG_PATH:-}"
  export LD_LIBRARY_PATH="$(cd "$DEPS" && pwd)/lib:${LD_LIBRARY_PATH:-}"
fi
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
( cmake -S . -B build-gpu "${GEN[@]}" -DHEADROOM_CUDA=ON -DHEADROOM_TESTS=OFF -DHEADROOM_BENCH=OFF \
    -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/gpu_cmake.log" 2>&1 &&
  cmake --build build-gpu --target headroom -j "$(nproc)" > "$OUT/gpu_build.log" 2>&1; echo $? > /tmp/build.rc ) &
[ -f $MODEL/model.safetensors ] || python3 bench/server/make_random_model.py --out $MODEL --layers "$LAYERS" \
    --tokenizer-dir tests/fixtures/models/tiny-mixtral
wait
if [ "$(cat /tmp/build.rc)" != 0 ]; then tail -30 "$OUT/gpu_build.log"; exit 1; fi
SERVE_ARGS=(--device cuda --weights "${WEIGHTS:-bf16}" --sequences 64 --context 1024 --prefill-chunk 1024 --max-queue 256)
build-gpu/src/headroom serve --model $MODEL --port 18080 "${SERVE_ARGS[@]}" > "$OUT/gpu_serve.log" 2>&1 &
PID=$!
for i in $(seq 1 600); do
  grep -q "ready on" "$OUT/gpu_serve.log" && break
  kill -0 $PID 2>/dev/null || { tail -20 "$OUT/gpu_serve.log"; exit 1; }
  sleep 1
done
grep -E "model loaded|ready on" "$OUT/gpu_serve.log"
LABEL="$GPU; Mixtral-8x7B shapes, $LAYERS of 32 layers, random ${WEIGHTS:-bf16} weights"
for C in ${CONCURRENCY:-1 16 64}; do
  python3 bench/server/load_bench.py --url http://127.0.0.1:18080 --model mixtral-rand --concurrency "$C" \
      --requests $((C * 4 > 8 ? C * 4 : 8)) --prompt-tokens 512 --max-tokens 128 --device-label "$LABEL" \
      --tag "server_gpu_c$C" --out-dir "$OUT" --server-args "${SERVE_ARGS[@]}" || true
done
kill -TERM $PID; wait $PID
tail -5 "$OUT/gpu_serve.log"

#!/usr/bin/env bash
# Packs prebuilt GPU binaries for a machine that has the CUDA driver but not the Debian -dev libraries:
# DIR/headroom, DIR/test_parity, DIR/coldstart_tool (if built) and DIR/lib/ (the shared libraries they load that are not part of the
# C runtime or CUDA), compressed to DIR.tar.zst-free plain tar.gz. Then on the GPU machine:
#   tar xzf DIR.tar.gz && scripts/gpu-test.sh --prebuilt DIR
#   scripts/gpu-bundle.sh [--build-dir build-gpu] [--out .gpu/bundle]
set -euo pipefail
BUILD=build-gpu
OUT=.gpu/bundle
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "gpu-bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
rm -rf "$OUT"
mkdir -p "$OUT/lib"
cp "$BUILD/src/headroom" "$BUILD/tests/test_parity" "$OUT/"
BINS=("$OUT/headroom" "$OUT/test_parity")
# The cold-start benchmark's helper (bench/coldstart/run.sh), when it was built.
if [[ -x "$BUILD/bench/coldstart_tool" ]]; then cp "$BUILD/bench/coldstart_tool" "$OUT/"; BINS+=("$OUT/coldstart_tool"); fi
# The peer benchmark's GGUF writer (bench/peer/run_llama.sh), when it was built.
if [[ -x "$BUILD/bench/synthetic_gguf" ]]; then cp "$BUILD/bench/synthetic_gguf" "$OUT/"; BINS+=("$OUT/synthetic_gguf"); fi
strip --strip-debug "${BINS[@]}"
# NCCL (218 MB, over the device's 64 MiB carry limit) is not a dependency: the binaries open
# libnccl.so.2 at run time, only for --tensor-parallel on several GPUs (src/backend/cuda/nccl_api.h). A
# multi-GPU machine needs it installed, or HEADROOM_NCCL_LIBRARY=/path/to/libnccl.so.2.
# Every resolved library except the C runtime, the dynamic loader and CUDA's own (the machine has those).
for bin in "${BINS[@]}"; do
  ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda.so*|libcudart*|libcublas*) ;;
      *) cp -nL "$lib" "$OUT/lib/" ;;
    esac
  done
done
tar czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
du -sh "$OUT.tar.gz"

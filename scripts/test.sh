#!/usr/bin/env bash
# The whole test suite on a fresh clone: dependencies, build (CUDA code compiles when nvcc is present;
# GPU tests skip without a GPU), then every ctest suite.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/install-deps.sh
# The real model the model tests use (SmolLM2-135M-Instruct GGUF, cached and sha256-checked); they skip without it.
bash scripts/fetch-model.sh >/dev/null
export PATH="/usr/local/cuda/bin:$PATH"
# Two ctest processes share two cores: spinning OpenMP workers would slow each other tenfold.
export OMP_WAIT_POLICY=passive
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEADROOM_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
# Release once, as users and scripts/gpu-test.sh build it: the product must compile warning-free at -O3 too.
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEADROOM_WERROR=ON -DHEADROOM_TESTS=OFF
cmake --build build-release -j"$(nproc)" --target headroom

// add_bias: a per-column bias added to every row of an f32 activation (Qwen2's q, k, v projections).
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"

namespace hr::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per element, grid-stride; the bias is read in its stored dtype.
__global__ void add_bias_kernel(float* x, int64_t numel, int64_t d, Weight bias) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        x[i] += load_plain(bias.dtype, bias.data, i % d);
}

}  // namespace

void launch_add_bias(cudaStream_t s, float* x, int64_t n, int64_t d, const Weight& bias) {
    const int64_t numel = n * d;
    if (numel == 0) return;
    const int64_t blocks = ceil_div(numel, kThreads);
    const unsigned grid = static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
    add_bias_kernel<<<grid, kThreads, 0, s>>>(x, numel, d, bias);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda

// Random weight generators and the next-token kernel of the synthetic benchmark (see synthetic.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/check.h"
#include "bench/synthetic.cuh"

namespace hr::bench {
namespace {

__device__ __forceinline__ uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

__device__ __forceinline__ float unit(uint64_t i, uint64_t seed) {
    return static_cast<float>(mix(i * 0x9e3779b97f4a7c15ull + seed) >> 40) * (1.0f / 16777216.0f);
}

__global__ void fill_q8_kernel(int8_t* p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<size_t>(gridDim.x) * blockDim.x)
        p[i] = static_cast<int8_t>(static_cast<int>(mix(i + seed * 0x9e3779b97f4a7c15ull) % 255u) - 127);
}

__global__ void fill_e4m3_kernel(uint8_t* p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<size_t>(gridDim.x) * blockDim.x) {
        const uint8_t b = static_cast<uint8_t>(mix(i + seed * 0x9e3779b97f4a7c15ull) & 0xffu);
        p[i] = (b & 0x7fu) == 0x7fu ? static_cast<uint8_t>(b ^ 1u) : b;  // S.1111.111 is NaN: use 448
    }
}

__global__ void fill_bytes_kernel(uint32_t* p, size_t n_words, uint64_t seed) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n_words;
         i += static_cast<size_t>(gridDim.x) * blockDim.x)
        p[i] = static_cast<uint32_t>(mix(i + seed * 0x9e3779b97f4a7c15ull));
}

__global__ void fill_f32_kernel(float* p, size_t n, float lo, float hi, uint64_t seed) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<size_t>(gridDim.x) * blockDim.x)
        p[i] = lo + (hi - lo) * unit(i, seed);
}

__global__ void fill_half_kernel(uint16_t* p, size_t n, float lo, float hi, uint64_t seed, bool f16) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<size_t>(gridDim.x) * blockDim.x) {
        const float v = lo + (hi - lo) * unit(i, seed);
        p[i] = f16 ? __half_as_ushort(__float2half_rn(v)) : __bfloat16_as_ushort(__float2bfloat16_rn(v));
    }
}

__global__ void next_token_kernel(int32_t* ids, int64_t vocab) {
    ids[0] = static_cast<int32_t>(mix(static_cast<uint64_t>(ids[0]) + 0x1234567ull) % static_cast<uint64_t>(vocab));
}

constexpr int kBlocks = 132 * 8;

}  // namespace

void fill_q8(cudaStream_t s, void* p, size_t n, uint64_t seed) {
    fill_q8_kernel<<<kBlocks, 256, 0, s>>>(static_cast<int8_t*>(p), n, seed);
    HR_CUDA_LAUNCH_CHECK();
}

void fill_e4m3(cudaStream_t s, void* p, size_t n, uint64_t seed) {
    fill_e4m3_kernel<<<kBlocks, 256, 0, s>>>(static_cast<uint8_t*>(p), n, seed);
    HR_CUDA_LAUNCH_CHECK();
}

void fill_bytes(cudaStream_t s, void* p, size_t n, uint64_t seed) {
    // note: n is a multiple of 4 for every weight of the benchmark (checked by the caller).
    fill_bytes_kernel<<<kBlocks, 256, 0, s>>>(static_cast<uint32_t*>(p), n / 4, seed);
    HR_CUDA_LAUNCH_CHECK();
}

void fill_f32(cudaStream_t s, void* p, size_t n, float lo, float hi, uint64_t seed) {
    fill_f32_kernel<<<kBlocks, 256, 0, s>>>(static_cast<float*>(p), n, lo, hi, seed);
    HR_CUDA_LAUNCH_CHECK();
}

void fill_f16(cudaStream_t s, void* p, size_t n, float lo, float hi, uint64_t seed) {
    fill_half_kernel<<<kBlocks, 256, 0, s>>>(static_cast<uint16_t*>(p), n, lo, hi, seed, true);
    HR_CUDA_LAUNCH_CHECK();
}

void fill_bf16(cudaStream_t s, void* p, size_t n, float lo, float hi, uint64_t seed) {
    fill_half_kernel<<<kBlocks, 256, 0, s>>>(static_cast<uint16_t*>(p), n, lo, hi, seed, false);
    HR_CUDA_LAUNCH_CHECK();
}

void next_token(cudaStream_t s, int32_t* ids, int64_t vocab) {
    next_token_kernel<<<1, 1, 0, s>>>(ids, vocab);
    HR_CUDA_LAUNCH_CHECK();
}

float bf16_gemm_ms(cudaStream_t s, cublasHandle_t h, void* a, void* b, void* c, int size, int reps) {
    const float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t e0, e1;
    HR_CUDA_CHECK(cudaEventCreate(&e0));
    HR_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;
    for (int r = 0; r < reps + 2; ++r) {
        HR_CUDA_CHECK(cudaEventRecord(e0, s));
        HR_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, size, size, size, &alpha, a, CUDA_R_16BF, size, b,
                                     CUDA_R_16BF, size, &beta, c, CUDA_R_16BF, size, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
        HR_CUDA_CHECK(cudaEventRecord(e1, s));
        HR_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0.0f;
        HR_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 2) ms.push_back(t);  // two warm-ups
    }
    HR_CUDA_CHECK(cudaEventDestroy(e0));
    HR_CUDA_CHECK(cudaEventDestroy(e1));
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

}  // namespace hr::bench

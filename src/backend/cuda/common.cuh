// Device helpers shared by the CUDA kernels: element loads of every weight format, warp/block
// reductions, streaming 16-byte loads. Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "core/tensor.h"
#include "quant/formats.h"

namespace hr::cuda {

constexpr int kWarp = 32;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread gets the result. `scratch` holds >= 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int n_warps = (blockDim.x + kWarp - 1) / kWarp;
    v = warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(t);
}

// Max over the block; every thread gets the result. `scratch` holds >= 32 floats.
__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int n_warps = (blockDim.x + kWarp - 1) / kWarp;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < n_warps ? scratch[lane] : -3.402823466e38f;
    return warp_max(t);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
    return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

// Weights are read once per token: bypass L1 so the activations stay cached there.
__device__ __forceinline__ uint4 ld_stream16(const void* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

// Element (r, c) of a weight in any storage format, as f32 (slow path: odd shapes, embeddings).
__device__ __forceinline__ float weight_at(const Weight& w, int64_t r, int64_t c) {
    switch (w.dtype) {
        case DType::f32: return static_cast<const float*>(w.data)[r * w.cols + c];
        case DType::f16: return f16_bits_to_f32(static_cast<const uint16_t*>(w.data)[r * w.cols + c]);
        case DType::bf16: return bf16_bits_to_f32(static_cast<const uint16_t*>(w.data)[r * w.cols + c]);
        case DType::q8:
            return static_cast<const float*>(w.scales)[r] *
                   static_cast<float>(static_cast<const int8_t*>(w.data)[r * w.cols + c]);
        case DType::q4: {
            const uint8_t b = static_cast<const uint8_t*>(w.data)[r * quant::q4_row_bytes(w.cols) + c / 2];
            const int q = static_cast<int>((c & 1) ? (b >> 4) : (b & 15)) - 8;
            const uint16_t s =
                static_cast<const uint16_t*>(w.scales)[r * quant::q4_groups(w.cols) + c / quant::kQ4Group];
            return f16_bits_to_f32(s) * static_cast<float>(q);
        }
        default: return __int_as_float(0x7fc00000);  // unsupported dtype: NaN makes it visible
    }
}

// Element i of a plain float array (f32, f16, bf16) as f32.
__device__ __forceinline__ float load_plain(DType dt, const void* base, int64_t i) {
    switch (dt) {
        case DType::f16: return f16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
        case DType::bf16: return bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
        default: return static_cast<const float*>(base)[i];
    }
}

}  // namespace hr::cuda

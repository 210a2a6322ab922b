// int8 quantize-on-load kernel (see quantize_q8.cuh). One block per row: the row is read once (from
// pinned host memory over the link) into shared memory, reduced to its absmax, then written as int8.
#include <cuda_fp16.h>

#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/quantize_q8.cuh"
#include "core/status.h"

namespace hr::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kQ8Max = 127;  // quant/formats.h

template <int Src>  // 0: f32, 1: f16, 2: bf16
__device__ float load_src(const uint8_t* row, int64_t c) {
    if constexpr (Src == 0) {
        return reinterpret_cast<const float*>(row)[c];
    } else if constexpr (Src == 1) {
        const uint16_t h = reinterpret_cast<const uint16_t*>(row)[c];
        return __half2float(__ushort_as_half(h));
    } else {
        const uint32_t b = static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(row)[c]) << 16;
        return __uint_as_float(b);
    }
}

template <int Src>
__global__ void quantize_q8_rows_kernel(const uint8_t* src, int64_t cols, int8_t* q, float* scales, int* bad) {
    extern __shared__ float row[];  // [cols]
    __shared__ float warp_max[kThreads / 32];
    __shared__ int warp_bad[kThreads / 32];
    constexpr int64_t kElem = Src == 0 ? 4 : 2;
    const int64_t r = blockIdx.x;
    const uint8_t* s = src + r * cols * kElem;
    float m = 0.0f;
    int nonfinite = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = load_src<Src>(s, c);
        row[c] = v;
        if (!isfinite(v)) nonfinite = 1;
        m = fmaxf(m, fabsf(v));  // note: max is order-independent, so the reduction matches the host's loop
    }
    for (int o = 16; o > 0; o >>= 1) {
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        nonfinite |= __shfl_xor_sync(0xffffffffu, nonfinite, o);
    }
    if ((threadIdx.x & 31) == 0) {
        warp_max[threadIdx.x / 32] = m;
        warp_bad[threadIdx.x / 32] = nonfinite;
    }
    __syncthreads();
    float amax = 0.0f;
    int any_bad = 0;
    for (int w = 0; w < kThreads / 32; ++w) {
        amax = fmaxf(amax, warp_max[w]);
        any_bad |= warp_bad[w];
    }
    if (any_bad) {
        if (threadIdx.x == 0) atomicExch(bad, 1);
        return;
    }
    int8_t* qr = q + r * cols;
    if (amax == 0.0f) {
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) qr[c] = 0;
        if (threadIdx.x == 0) scales[r] = 0.0f;
        return;
    }
    // The host's f32_scale_at_least: absmax / 127 in f32, raised to the next float until 127 s >= absmax
    // holds exactly (in double).
    float sc = amax / static_cast<float>(kQ8Max);
    while (static_cast<double>(sc) * kQ8Max < static_cast<double>(amax)) sc = nextafterf(sc, INFINITY);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = roundf(row[c] / sc);  // note: IEEE division (no fast math), round half away from zero
        v = fminf(fmaxf(v, -static_cast<float>(kQ8Max)), static_cast<float>(kQ8Max));
        qr[c] = static_cast<int8_t>(v);
    }
    if (threadIdx.x == 0) scales[r] = sc;
}

template <int Src>
void launch(cudaStream_t s, const void* src, int64_t rows, int64_t cols, int8_t* q, float* scales, int* bad) {
    const size_t smem = static_cast<size_t>(cols) * sizeof(float);
    static const bool raised = [] {
        HR_CUDA_CHECK(cudaFuncSetAttribute(quantize_q8_rows_kernel<Src>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(kQuantizeQ8MaxCols * sizeof(float))));
        return true;
    }();
    (void)raised;
    quantize_q8_rows_kernel<Src><<<static_cast<unsigned>(rows), kThreads, smem, s>>>(
        static_cast<const uint8_t*>(src), cols, q, scales, bad);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace

void launch_quantize_q8_rows(cudaStream_t s, const void* src, DType src_dtype, int64_t rows, int64_t cols, int8_t* q,
                             float* scales, int* bad) {
    HR_CHECK_MSG(cols > 0 && cols <= kQuantizeQ8MaxCols && rows > 0 && rows < (int64_t{1} << 31),
                 "quantize_q8: row count or length out of range");
    switch (src_dtype) {
        case DType::f32: launch<0>(s, src, rows, cols, q, scales, bad); break;
        case DType::f16: launch<1>(s, src, rows, cols, q, scales, bad); break;
        case DType::bf16: launch<2>(s, src, rows, cols, q, scales, bad); break;
        default: HR_CHECK_MSG(false, "quantize_q8: expected an f32, f16 or bf16 source");
    }
}

}  // namespace hr::cuda

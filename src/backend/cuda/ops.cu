// Element-wise and row-wise kernels: embedding, RMSNorm, rotary embedding, SwiGLU, residual add,
// row gather, MoE routing and the f32 -> 16-bit activation conversion for the tensor cores.
#include <cfloat>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/rope.cuh"
#include "backend/cuda/route.cuh"

namespace hr::cuda {
namespace {

constexpr int kThreads = 256;

int grid_for(int64_t n, int per_block = kThreads) {
    int64_t g = ceil_div(n, per_block);
    return static_cast<int>(g < 65535 * 16 ? (g < 1 ? 1 : g) : 65535 * 16);
}

__global__ void embed_kernel(float* out, const int32_t* ids, int64_t n, Weight table) {
    const int64_t t = blockIdx.x;
    const int32_t id = ids[t];
    const bool bad = id < 0 || id >= table.rows;
    for (int64_t c = threadIdx.x; c < table.cols; c += blockDim.x)
        out[t * table.cols + c] = bad ? __int_as_float(0x7fc00000) : weight_at(table, id, c);
}

__global__ void rms_norm_kernel(float* out, const float* in, int64_t dim, Weight w, float eps) {
    __shared__ float scratch[32];
    const float* x = in + blockIdx.x * dim;
    float* y = out + blockIdx.x * dim;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += x[i] * x[i];
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
    // note: out may alias in; each element is read and written by the same thread after the sum.
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) y[i] = x[i] * inv * load_plain(w.dtype, w.data, i);
}

// x += y and out = rms_norm(x) in one pass over the row (the sum uses the updated x).
__global__ void add_rms_norm_kernel(float* out, float* x_io, const float* y_in, int64_t dim, Weight w, float eps) {
    __shared__ float scratch[32];
    float* x = x_io + blockIdx.x * dim;
    const float* y = y_in + blockIdx.x * dim;
    float* o = out + blockIdx.x * dim;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = x[i] + y[i];
        x[i] = v;
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
    // Each element is re-read by the thread that wrote it.
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = x[i] * inv * load_plain(w.dtype, w.data, i);
}

// One thread per rotation pair (i, i + head_dim/2) of one head of one token (arithmetic: rope.cuh).
__global__ void rope_kernel(float* q, float* k, const int32_t* positions, int64_t n, int64_t n_heads,
                            int64_t n_kv_heads, int64_t head_dim, float theta) {
    const int64_t half = head_dim / 2;
    const int64_t per_token = (n_heads + n_kv_heads) * half;
    const int64_t total = n * per_token;
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = idx / per_token;
        int64_t rem = idx % per_token;
        const int64_t h = rem / half, i = rem % half;
        float* base = h < n_heads ? q + (t * n_heads + h) * head_dim : k + (t * n_kv_heads + (h - n_heads)) * head_dim;
        float c, s;
        rope_cos_sin(positions[t], i, head_dim, theta, c, s);
        const float x0 = base[i], x1 = base[i + half];
        base[i] = rope_lo(x0, x1, c, s);
        base[i + half] = rope_hi(x0, x1, c, s);
    }
}

__global__ void silu_mul_kernel(float* out, const float* gate, const float* up, int64_t numel) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void add_kernel(float* x, const float* y, int64_t numel) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        x[i] += y[i];
}

__global__ void gather_rows_kernel(float* out, const float* in, const int32_t* rows, int64_t d, int64_t n_in) {
    const int64_t i = blockIdx.x;
    const int32_t r = rows[i];
    const bool bad = r < 0 || r >= n_in;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
        out[i * d + c] = bad ? __int_as_float(0x7fc00000) : in[r * d + c];
}

// One warp per token (route.cuh).
__global__ void moe_route_kernel(int32_t* ids, float* wout, const float* logits, int64_t n, int n_experts, int k,
                                 bool renormalize) {
    const int64_t t = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
    if (t >= n) return;
    route_token_warp(logits + t * n_experts, n_experts, k, renormalize, ids + t * k, wout + t * k);
}

__global__ void to_half_kernel(void* out, const float* in, int64_t numel, bool to_f16) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        if (to_f16) static_cast<__half*>(out)[i] = __float2half_rn(in[i]);
        else static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(in[i]);
    }
}

int row_threads(int64_t d) { return d >= 1024 ? 512 : d >= 256 ? 256 : d >= 64 ? 64 : 32; }

}  // namespace

void launch_embed(cudaStream_t s, float* out, const int32_t* ids, int64_t n, const Weight& table) {
    if (n == 0) return;
    embed_kernel<<<static_cast<unsigned>(n), row_threads(table.cols), 0, s>>>(out, ids, n, table);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_rms_norm(cudaStream_t s, float* out, const float* in, int64_t n, int64_t dim, const Weight& w, float eps) {
    if (n == 0) return;
    rms_norm_kernel<<<static_cast<unsigned>(n), row_threads(dim), 0, s>>>(out, in, dim, w, eps);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_add_rms_norm(cudaStream_t s, float* out, float* x, const float* y, int64_t n, int64_t dim, const Weight& w,
                         float eps) {
    if (n == 0) return;
    add_rms_norm_kernel<<<static_cast<unsigned>(n), row_threads(dim), 0, s>>>(out, x, y, dim, w, eps);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_rope(cudaStream_t s, float* q, float* k, const int32_t* positions, int64_t n, int64_t n_heads,
                 int64_t n_kv_heads, int64_t head_dim, float theta) {
    const int64_t total = n * (n_heads + n_kv_heads) * (head_dim / 2);
    if (total == 0) return;
    rope_kernel<<<grid_for(total), kThreads, 0, s>>>(q, k, positions, n, n_heads, n_kv_heads, head_dim, theta);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_silu_mul(cudaStream_t s, float* out, const float* gate, const float* up, int64_t numel) {
    if (numel == 0) return;
    silu_mul_kernel<<<grid_for(numel), kThreads, 0, s>>>(out, gate, up, numel);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_add(cudaStream_t s, float* x, const float* y, int64_t numel) {
    if (numel == 0) return;
    add_kernel<<<grid_for(numel), kThreads, 0, s>>>(x, y, numel);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_gather_rows(cudaStream_t s, float* out, const float* in, const int32_t* rows, int64_t m, int64_t d,
                        int64_t n_in) {
    if (m == 0) return;
    gather_rows_kernel<<<static_cast<unsigned>(m), row_threads(d), 0, s>>>(out, in, rows, d, n_in);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_moe_route(cudaStream_t s, int32_t* ids, float* w, const float* logits, int64_t n, int64_t n_experts,
                      int64_t k, bool renormalize) {
    if (n == 0) return;
    constexpr int kWarpsPerBlock = 4;
    moe_route_kernel<<<static_cast<unsigned>(ceil_div(n, kWarpsPerBlock)), kWarpsPerBlock * kWarp, 0, s>>>(
        ids, w, logits, n, static_cast<int>(n_experts), static_cast<int>(k), renormalize);
    HR_CUDA_LAUNCH_CHECK();
}

void launch_to_half(cudaStream_t s, void* out, const float* in, int64_t numel, bool to_f16) {
    if (numel == 0) return;
    to_half_kernel<<<grid_for(numel), kThreads, 0, s>>>(out, in, numel, to_f16);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda

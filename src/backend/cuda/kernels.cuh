// Host launchers of the CUDA backend's kernels (one .cu per concern). Every launcher takes the stream
// explicitly and checks the launch; kernels themselves stay internal to their .cu file.
#pragma once

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace hr::cuda {

// --- ops.cu: element-wise and row-wise ops --------------------------------------------------------
// out [n, table.cols] f32 = table[ids[t]]; an id outside [0, table.rows) gives a NaN row.
void launch_embed(cudaStream_t s, float* out, const int32_t* ids, int64_t n, const Weight& table);
// out, in [n, dim] f32 (may alias); weight [1, dim] f32/f16/bf16.
void launch_rms_norm(cudaStream_t s, float* out, const float* in, int64_t n, int64_t dim, const Weight& w, float eps);
// x += y; out = rms_norm(x). out, x, y [n, dim] f32 (out does not alias x or y).
void launch_add_rms_norm(cudaStream_t s, float* out, float* x, const float* y, int64_t n, int64_t dim, const Weight& w,
                         float eps);
// q [n, n_heads, head_dim], k [n, n_kv_heads, head_dim] f32 in place; positions [n] i32.
void launch_rope(cudaStream_t s, float* q, float* k, const int32_t* positions, int64_t n, int64_t n_heads,
                 int64_t n_kv_heads, int64_t head_dim, float theta);
// out [numel] = silu(gate) * up (out may alias gate or up).
void launch_silu_mul(cudaStream_t s, float* out, const float* gate, const float* up, int64_t numel);
// x [numel] += y [numel].
void launch_add(cudaStream_t s, float* x, const float* y, int64_t numel);
// out [m, d] = in[rows[i]]; in [n_in, d]; a row index outside [0, n_in) gives a NaN row.
void launch_gather_rows(cudaStream_t s, float* out, const float* in, const int32_t* rows, int64_t m, int64_t d,
                        int64_t n_in);
// Softmax over n_experts logits, top-k (ties: lowest index); the k weights renormalised to sum to 1
// when `renormalize`, else the softmax probabilities themselves (Qwen3-MoE without norm_topk_prob).
// ids [n, k] i32, w [n, k] f32, logits [n, n_experts] f32. n_experts <= 256, k <= 16.
void launch_moe_route(cudaStream_t s, int32_t* ids, float* w, const float* logits, int64_t n, int64_t n_experts,
                      int64_t k, bool renormalize);

// --- fused_route.cu: the entry of an MoE layer in one kernel (CudaOptions::fused_router) ---------------
// x += y; out = rms_norm(x); logits = out R^T (f32); ids, w = the top-k routing of logits (as moe_route).
// out, x, y [n, dim]; router [n_experts, dim] any weight dtype; logits [n, n_experts]; ids, w [n, k].
bool add_rms_norm_route_supported(int64_t dim, int64_t n_experts, int64_t k);
void launch_add_rms_norm_route(cudaStream_t s, float* out, float* x, const float* y, int64_t n, int64_t dim,
                               const Weight& norm, float eps, const Weight& router, float* logits, int32_t* ids,
                               float* w, int64_t k, bool renormalize);

// --- bias.cu -------------------------------------------------------------------------------------
// x [n, d] f32 += bias [1, d] (f32/f16/bf16) on every row.
void launch_add_bias(cudaStream_t s, float* x, int64_t n, int64_t d, const Weight& bias);
// f32 -> bf16 (or f16 when to_f16) conversion of numel values.
void launch_to_half(cudaStream_t s, void* out, const float* in, int64_t numel, bool to_f16);

// --- gemv.cu: decode matrix-vector products (weight-only dequant in registers, f32 accumulation) ---
constexpr int kMaxExperts = 64;
constexpr int kMaxMats = 3;
struct GemvMat {
    const void* data[kMaxExperts];
    const void* scales[kMaxExperts];
    float* out;  // [n_tasks, rows] f32
};
// Plain mode (ids == nullptr): task t multiplies x row t by weight 0.
// Pair mode: task p multiplies x row (x_per_pair ? p : p / k) by the weight of expert ids[p].
struct GemvParams {
    GemvMat mat[kMaxMats];  // up to two matrices of the same shape and dtype in one launch (w1 and w3)
    int n_mat = 1;
    int n_experts = 1;
    DType dtype = DType::f32;
    int64_t rows = 0, cols = 0;
    const float* x = nullptr;  // [*, cols] f32
    int64_t n_tasks = 0;
    const int32_t* ids = nullptr;  // [n_tasks] expert of each task, or null
    int k = 1;
    int x_per_pair = 0;
    // Fused modes of the MoE decode step (block-K kernel, pair mode):
    // silu pair (two matrices w1, w3): mat[0].out [n_tasks, rows] = silu(W1_e x) * (W3_e x);
    // combine (one matrix w2, x_per_pair, k <= 2): mat[0].out [n_tasks / k, rows] = sum over the token's
    // k pairs of combine_w[pair] * (W2_e x_pair).
    bool silu_pair = false;
    const float* combine_w = nullptr;  // [n_tasks] f32, or null
    // --offload-compute cpu (host_expert_compute.h): pairs whose expert e has bit e set are computed on
    // the host and added afterwards. Fused modes only (block-K and tensor-core kernels): a silu-pair block
    // of such a pair does nothing (its hidden row is never read), and combine mode leaves the pair out of
    // the weighted sum without loading its weights (all of a token's pairs skipped: the row is 0).
    uint64_t skip_experts = 0;
    bool block_k = true;               // false: the one-warp-per-row kernel for every shape (benchmarks)
    // int4 / int8 shapes gemv_tc.cu supports run on the tensor cores (f16 activations); false: the
    // dp4a / f32 kernels of gemv.cu (A/B comparisons).
    bool tensor_cores = false;
    // Multi-shape mode (set by launch_gemv_multi): matrix i has mat_rows[i] rows and mat_blocks[i] blocks.
    bool multi_shape = false;
    int64_t mat_rows[kMaxMats] = {0, 0, 0};
    int64_t mat_blocks[kMaxMats] = {0, 0, 0};
};
void launch_gemv(cudaStream_t s, const GemvParams& p);
// One token times up to kMaxMats matrices of one dtype and column count but different row counts (q, k,
// v): mat[i].data[0] / scales[0] / out and mat_rows[i] set, n_mat, cols, x, dtype, n_tasks = 1. One
// launch; returns false (nothing launched) when the shapes do not allow it.
bool launch_gemv_multi(cudaStream_t s, GemvParams p);
// gemv_tc.cu: int4 (cols % 128 == 0) and int8 (cols % 64 == 0) decode GEMVs on the tensor cores, any row
// count: plain mode with 1 to 8 tokens, the silu pair and combine modes (k <= 2), and multi-shape. Each
// returns false, launching nothing, when p.tensor_cores is off or the shape is not supported.
bool gemv_tc_supported(const GemvParams& p);
bool launch_gemv_tc(cudaStream_t s, const GemvParams& p);
bool launch_gemv_tc_multi(cudaStream_t s, GemvParams p);  // the launch_gemv_multi contract
// gemv_grouped.cu: MoE pairs grouped by expert on the device (perm, offsets from launch_moe_plan).
// pair: mat[0], mat[1] = w1, w3 of every expert, x [n_tokens, cols], out [nk, rows] = silu(W1 x) * (W3 x);
// else: mat[0] = w2, x [nk, cols] (pair rows), out [nk, rows] = W2 x. n_experts, k, dtype, rows, cols set.
bool gemv_grouped_supported(const GemvParams& p);
void launch_gemv_grouped(cudaStream_t s, const GemvParams& p, const int32_t* perm, const int32_t* offsets, bool pair);
// gemv_grouped_tc.cu: the same on the tensor cores for int8 weights (cols % 64 == 0, rows % 16 == 0)
// and int4 weights (cols % 128 == 0: whole scale groups, rows % 16 == 0), with the activations converted
// to f16 first: xh [*, cols] f16 replaces p.x.
bool gemv_grouped_tc_supported(const GemvParams& p);
void launch_gemv_grouped_tc(cudaStream_t s, const GemvParams& p, const __half* xh, const int32_t* perm,
                            const int32_t* offsets, bool pair);
// gemv_grouped_tc_q4.cu: the int4 kernel behind launch_gemv_grouped_tc.
bool gemv_grouped_tc_q4_supported(const GemvParams& p);
void launch_gemv_grouped_tc_q4(cudaStream_t s, const GemvParams& p, const __half* xh, const int32_t* perm,
                               const int32_t* offsets, bool pair);
// Whether p (fully set up for silu pair or combine mode) can run fused.
bool gemv_fused_supported(const GemvParams& p);

// --- gemm.cu: prefill products through cuBLAS ------------------------------------------------------
struct GemmWorkspace {
    void* act = nullptr;       // bf16/f16 copy of the activations
    int64_t act_elems = 0;
    void* wbuf = nullptr;      // bf16 dequantized rows of a q8/q4 weight
    int64_t wbuf_elems = 0;
};
// out [n, w.rows] f32 = in [n, w.cols] f32 . W^T. The activations are rounded to bf16 (f16 for f16
// weights) for the tensor cores; f32 weights run in f32 (no TF32).
void gemm(cudaStream_t s, cublasHandle_t h, const GemmWorkspace& ws, float* out, const float* in, int64_t n,
          const Weight& w);
// The same with activations already converted (act: [n, w.cols] bf16, or f16 for f16 weights).
void gemm_converted(cudaStream_t s, cublasHandle_t h, const GemmWorkspace& ws, float* out, const void* act,
                    int64_t n, const Weight& w);
// The dtype the activations must be converted to for w (f16 for f16 weights, else bf16).
inline bool gemm_wants_f16(const Weight& w) { return w.dtype == DType::f16; }

// --- attention.cu ------------------------------------------------------------------------------------
struct AttnLaunch {
    float* out;                 // [n, n_heads * head_dim]
    const float* q;             // [n, n_heads, head_dim]
    const float* k_new;         // [n, n_kv_heads, head_dim]
    const float* v_new;
    void* k_cache;              // [n_blocks, block_size, n_kv_heads, head_dim]
    void* v_cache;
    DType cache_dtype;          // f32, f16, bf16, or i8 / f8_e4m3 codes with the scales below
    float* k_scale;             // [n_blocks * block_size, n_kv_heads] of a quantized cache (core/kv_quant.h), else null
    float* v_scale;
    const int32_t* positions;   // [n]
    const int32_t* token_seq;   // [n]
    const int32_t* slot_mapping;  // [n]
    const int32_t* block_tables;  // [n_seqs, max_blocks]
    int64_t max_blocks;
    int64_t n, n_heads, n_kv_heads, head_dim;
    int block_size;
    float scale;
    float* partials;            // split-K workspace
    int64_t partial_floats;     // its capacity
    int sm_count;
    const int32_t* token_seq_host;  // [n] host copy of token_seq, or null: picks the kernel per token run
};
void launch_attention(cudaStream_t s, const AttnLaunch& a);
// attention_prefill.cu: the tensor-core kernel for runs of one sequence's tokens (cache already written).
bool attention_prefill_supported(const AttnLaunch& a);
void launch_attention_prefill(cudaStream_t s, const AttnLaunch& a);
// Floats of split-K workspace the attention may use for these head counts.
int64_t attention_partial_floats(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int sm_count);
// The fused decode attention (CudaOptions::fused_decode_attention): rotary of q and k_new (as launch_rope,
// in registers: q and k_new are left unrotated), the cache write, split-K and the combine in ONE launch.
// Every token must be its sequence's only token in the launch (no token reads a slot another one writes).
// counters: n_counters i32, all 0 (reserve_workspace zeroes them; every launch leaves them 0). Returns
// false, launching nothing, where the shapes are not supported (head_dim 128 with 1, 2, 4 or 8 query heads
// per kv head, head_dim 64 with 1, 4 or 8) or the counters are too few.
bool launch_attention_fused(cudaStream_t s, const AttnLaunch& a, float theta, int32_t* counters, int64_t n_counters);
// Counters the fused decode attention may use (one per (token, kv head) pair that splits its keys).
int64_t attention_counter_count(int sm_count);

// --- moe.cu --------------------------------------------------------------------------------------------
// out[t] = sum_j w[t, j] * ys[row(t, j)]: row = inv ? inv[t*k + j] : t*k + j.   out [n, d]; ys [n*k, d]
void launch_moe_combine(cudaStream_t s, float* out, const float* ys, const float* w, const int32_t* inv, int64_t n,
                        int64_t k, int64_t d);
// Groups the n*k (token, expert) pairs by expert: perm [n*k] lists pair indices expert by expert,
// inv [n*k] the position of each pair in perm, offsets [n_experts + 1] the start of each expert.
// out [rows, d] = in[perm[i] / k]: the tokens of the first `rows` pairs of perm, expert by expert.
void launch_moe_gather(cudaStream_t s, float* out, const float* in, const int32_t* perm, int64_t rows, int64_t k,
                       int64_t d);
void launch_moe_plan(cudaStream_t s, int32_t* perm, int32_t* inv, int32_t* offsets, const int32_t* ids, int64_t nk,
                     int64_t n_experts);
// --offload-compute cpu: one decode token's row x [dim] and routing ids, w [k] copied into mapped host
// memory (x_host, ids_host, w_host: pinned mapped pointers), fenced for a host function that follows.
void launch_moe_to_host(cudaStream_t s, float* x_host, int32_t* ids_host, float* w_host, const float* x,
                        const int32_t* ids, const float* w, int64_t dim, int64_t k);

}  // namespace hr::cuda

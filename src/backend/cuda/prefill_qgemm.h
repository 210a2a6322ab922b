// Prefill products on the quantized tensor-core GEMM (qgemm.cu) instead of a bf16 copy of each weight
// plus cuBLAS: the MoE experts of a layer in two launches (w1/w3 with silu * up, then w2) with the
// pairs grouped on the device, and dense int8 / int4 matmuls of many tokens. Host code (C++20: the op
// arguments hold spans); the CUDA backend calls these when CudaOptions::prefill_qgemm is on.
#pragma once

#include <cstdint>

#include "backend/op_args.h"

struct CUstream_st;

namespace hr::cuda {

// Backend workspaces the MoE path uses: act (f16 [nk, ffn] for the gate activations), the moe plan
// arrays (perm, inv [pairs], offsets [n_experts + 1]).
struct QgemmWorkspace {
    void* act = nullptr;
    int64_t act_elems = 0;  // 2-byte elements
    int32_t* perm = nullptr;
    int32_t* inv = nullptr;
    int32_t* offsets = nullptr;
    int64_t pairs = 0;
};

class ExpertStager;

// Offloaded experts (Weight::host) on the staged path: the backend's stager (expert_staging.h) and its
// pinned host copy of the pair offsets [kMaxExperts + 1].
struct QgemmStaging {
    ExpertStager* stager = nullptr;
    int32_t* host_offsets = nullptr;
};

// a.out = the MoE layer (shapes already checked by the caller). Returns false, launching nothing, when
// the weights (int8 with dim, ffn % 64 == 0; int4 with dim, ffn % 128 == 0; 16-byte aligned) or the
// workspaces do not fit. Without host experts (or without `staging`): no host synchronisation,
// capturable in a CUDA graph. With host experts and staging: one host synchronisation for the expert
// counts, the resident experts in the one-launch grouped GEMM (the host ones skipped), and each host
// expert with tokens copied once into a staging buffer (double-buffered, overlapping the GEMMs) and run
// from there in a launch of its own. Read in place instead, the GEMM fetches its weights over the host
// link in 64-byte pieces, once per 128-token tile unless L2 keeps them (the first H100 run: a 2048-token
// prefill 2.8x the resident one, 0 bytes staged). Not capturable then (the caller checks).
bool moe_prefill_qgemm(CUstream_st* s, const MoeArgs& a, const QgemmWorkspace& ws,
                       const QgemmStaging* staging = nullptr);

// out [n, w.rows] f32 = in [n, w.cols] f32 . W^T for an int8 / int4 weight, the activations rounded to
// f16 into act (act_elems >= n * w.cols). Returns false, launching nothing, when unsupported.
bool matmul_qgemm(CUstream_st* s, float* out, const float* in, int64_t n, const Weight& w, void* act,
                  int64_t act_elems);

}  // namespace hr::cuda

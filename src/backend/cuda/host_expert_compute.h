// --offload-compute cpu on the CUDA backend: a batch-1 decode token's selected experts that live in
// pinned host memory are computed by the host (backend/cpu/host_experts.h) next to the GPU's work on the
// token's other experts, instead of the GPU reading their weights over the link.
//
// In stream order, for one MoE layer with host experts (mask): fork() copies the normed hidden row and
// the top-k ids / weights into small mapped host buffers (one kernel), records an event, and puts a host
// function on a second stream that waits for it; the caller then enqueues the GPU's share on the main
// stream (the fused decode GEMVs with GemvParams::skip_experts = mask), and join() makes the main stream
// wait for the host function and adds its mapped output row to the layer's output. Every step is a stream
// operation (kernel, event record / wait, cudaLaunchHostFunc), so the decode step stays CUDA-graph
// capturable: the graph holds a host node on a forked branch, joined before the add. The host function
// makes no CUDA call. Layers without host experts, batched decode and prefill never come here: with more
// than one token the weights a step streams over the link serve every token (the zero-copy GEMVs and the
// staged prefill GEMMs amortise them), while the host's GEMV rate does not grow with the tokens.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backend/op_args.h"
#include "core/status.h"

namespace hr::cuda {

class HostExpertCompute {
public:
    // Buffers for layers of up to dim columns, ffn hidden rows and k selected experts per token: one
    // pinned mapped allocation (x, ids, w, out), host scratch, a second stream and two events.
    static Result<std::unique_ptr<HostExpertCompute>> create(int64_t dim, int64_t ffn, int64_t k);
    ~HostExpertCompute();
    HostExpertCompute(const HostExpertCompute&) = delete;
    HostExpertCompute& operator=(const HostExpertCompute&) = delete;

    bool fits(int64_t dim, int64_t ffn, int64_t k) const { return dim <= dim_ && ffn <= ffn_ && k <= k_; }
    uint64_t pinned_bytes() const { return pinned_bytes_; }

    // The host's part of one token's MoE layer: a.in [1, dim], a.topk_ids / a.topk_w [1, k]; the experts
    // of `mask` (bit e: a.experts.w1[e].host) are computed on the host. Enqueued on s, nothing waits.
    void fork(cudaStream_t s, const MoeArgs& a, uint64_t mask);
    // s waits for the host's part; out [1, dim] += it.
    void join(cudaStream_t s, float* out, int64_t dim);

    // Experts the host has computed so far (/metrics; any thread).
    uint64_t experts_computed() const { return computed_.load(std::memory_order_relaxed); }

    // The host's part alone, on the calling thread (the start-up probe; not counted in experts_computed):
    // out [dim] for x [dim], ids / w [k].
    int compute_now(float* out, const float* x, const int32_t* ids, const float* w, int64_t k,
                    const ExpertWeights& experts, uint64_t mask);

private:
    HostExpertCompute(int64_t dim, int64_t ffn, int64_t k) : dim_(dim), ffn_(ffn), k_(k) {}
    // One per layer (keyed by its expert table), alive as long as this object: captured graphs hold it
    // as their host node's argument.
    struct Job {
        HostExpertCompute* self = nullptr;
        ExpertWeights experts;
        uint64_t mask = 0;
        int64_t k = 0;
    };
    static void CUDART_CB run(void* job);

    int64_t dim_, ffn_, k_;
    void* pinned_ = nullptr;  // x [dim], out [dim], ids [k], w [k], each 256-byte aligned
    uint64_t pinned_bytes_ = 0;
    float* x_ = nullptr;
    float* out_ = nullptr;
    int32_t* ids_ = nullptr;
    float* w_ = nullptr;
    std::vector<float> gate_, up_, y_;  // host scratch (only the host function uses them, one at a time)
    cudaStream_t side_ = nullptr;
    cudaEvent_t forked_ = nullptr;
    cudaEvent_t done_ = nullptr;
    std::unordered_map<const Weight*, std::unique_ptr<Job>> jobs_;
    std::atomic<uint64_t> computed_{0};
};

}  // namespace hr::cuda

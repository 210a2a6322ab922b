// The CUDA backend: the op list of backend.h on one device and one stream, device memory only through
// allocate() (counted), workspaces reserved once, and CUDA-graph capture of a step. No CUDA headers
// here, so host-only code (the app, tests) can include it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"

struct CUstream_st;
struct cublasContext;
struct CUgraphExec_st;

namespace hr::cuda {

class ExpertStager;
class HostExpertCompute;

struct CudaOptions {
    // Matmuls and MoE layers with at most this many tokens run the GEMV kernels (weights dequantized in
    // registers, f32 activations, no host sync); larger ones go through cuBLAS with bf16 activations.
    int64_t gemv_max_tokens = 8;
    // Weights with at most this many rows (MoE routers) always take the f32 GEMV: the tensor cores gain
    // nothing there, and f32 router logits pick the same experts as the f32 reference (bf16-rounded
    // activations flip near-tied top-k choices, which changes a token's output entirely).
    int64_t gemv_max_rows = 64;
    // MoE layers of moe_pair_max_tokens + 1 to grouped_max_tokens tokens (batched decode) group the
    // pairs by expert on the device and read each selected expert's weights once (gemv_grouped.cu, f32
    // math, no host sync); up to moe_pair_max_tokens one GEMV per (token, expert) pair; above
    // grouped_max_tokens the experts are dequantized to bf16 for cuBLAS (prefill).
    // Measured (bench --batches, int8, H200): grouped on the tensor cores 27.5 / 38.5 ms per step at 32 / 64
    // tokens against 74.3 / 74.6 ms through cuBLAS.
    int64_t moe_pair_max_tokens = 2;
    int64_t grouped_max_tokens = 64;
    // Grouped int8 experts on the tensor cores (activations rounded to f16); false: f32 CUDA-core GEMVs.
    bool grouped_tensor_cores = true;
    // The same for int4 (gemv_grouped_tc_q4.cu). Off by default: written without a GPU and not yet run
    // (parity tests turn it on; enable by default once test_parity passes on an H100/H200).
    bool grouped_tensor_cores_q4 = false;
    // Single-token GEMVs and MoE pairs through the block-K kernel (and the fused MoE down projection);
    // false keeps the one-warp-per-row kernel everywhere, for benchmark comparisons.
    bool gemv_block_k = true;
    // int4 / int8 GEMVs of 1 to 8 tokens (dense, qkv in one launch, the fused MoE decode pair) on the
    // tensor cores with f16 activations (gemv_tc.cu); false keeps the dp4a / f32 kernels, for A/B runs.
    // Off by default until test_parity has run on a GPU (written without one; bench --gemv tc turns it on).
    bool gemv_tensor_cores = false;
    // Prefill (more than gemv_max_tokens tokens) with int8 / int4 weights on the quantized tensor-core GEMM
    // (qgemm.cu: weights dequantized in registers, f16 activations, MoE experts grouped on the device with
    // no host sync); false: each weight dequantized to bf16, then cuBLAS (A/B runs: bench --prefill-gemm).
    // Off by default until test_parity has run on a GPU (written without one; bench --prefill-gemm tc).
    bool prefill_qgemm = false;
    // Issue 15, fewer launches per decode step. Off by default until test_parity has run on a GPU (written
    // without one; bench --fused on turns both on, --fused both measures the decode table with and without).
    // rope_attention of decode tokens (each its sequence's only token in the step) as ONE kernel: rotary on
    // q and the new key in registers, the cache write (quantized caches too), split-K over the keys, and the
    // combine done by the last split block of each (token, kv head) to finish (a per-pair counter in the
    // workspace, reset by that block). Unfused: rope, cache write, split-K, combine: four launches.
    bool fused_decode_attention = false;
    // add_rms_norm_route as ONE kernel per token row: residual add, RMSNorm, the router GEMV (f32 logits)
    // and softmax + top-k, in one block per token. Unfused: add_rms_norm, router GEMV, moe_route: three.
    bool fused_router = false;
};

// What the backend's workspaces must hold; the engine fills it from the model config and step limits.
struct WorkspaceSpec {
    int64_t max_tokens = 0;        // tokens in one step
    int64_t max_cols = 0;          // largest in-features of any weight (dim, q_dim, ffn_dim)
    int64_t max_rows = 0;          // largest out-features of any weight (vocab, ffn_dim)
    int64_t n_heads = 0;
    int64_t n_kv_heads = 0;
    int64_t head_dim = 0;
    int64_t n_experts = 0;         // 0 for dense models
    int64_t n_experts_active = 0;  // top-k
};

// Nodes of one captured graph by kind.
struct GraphNodeCounts {
    int kernels = 0;
    int copies = 0;  // memcpy and memset nodes
    int other = 0;   // host, event, child-graph nodes
};

class CudaBackend final : public Backend {
public:
    // Fails (no abort) when there is no driver or no such device.
    static Result<std::unique_ptr<CudaBackend>> create(int device, CudaOptions opts = {});
    ~CudaBackend() override;
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    DeviceKind kind() const override { return DeviceKind::cuda; }
    std::string name() const override;

    Result<void*> allocate(size_t bytes, std::string_view what) override;
    void release(void* p) override;
    uint64_t allocation_count() const override { return allocation_count_; }
    void upload(void* dst, const void* src_host, size_t bytes) override;
    void download(void* dst_host, const void* src, size_t bytes) override;
    // Pinned staging buffers and kUploadStreams copy streams (uploader.cpp); they are freed with the uploader.
    Result<std::unique_ptr<Uploader>> make_uploader(size_t slot_bytes, int n_slots) override;
    void synchronize() override;
    // cudaMemcpy2DAsync device to device on the stream: no host wait, capturable.
    void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                   size_t rows) override;
    void bind_thread() override;  // cudaSetDevice(device()) on the calling thread
    // Pinned, mapped host memory (cudaHostAlloc mapped | portable): one pointer for host and device (UVA).
    Result<void*> allocate_host(size_t bytes, std::string_view what) override;
    void release_host(void* p) override;
    // The two prefill staging buffers for offloaded experts (expert_staging.h), reserved once: a later
    // call for no more bytes per expert keeps them, one for more is an error.
    Status reserve_expert_staging(uint64_t bytes_per_expert) override;
    uint64_t host_stream_bytes() const override;
    uint64_t host_allocated_bytes() const { return host_allocated_bytes_; }
    // --offload-compute (offload_probe.cpp, host_expert_compute.h). The probe needs the staging buffers
    // (reserve_expert_staging) as device scratch and runs the real decode path on one host expert.
    Result<OffloadProbe> probe_offload_compute(const ExpertWeights& layer, int64_t expert) override;
    Status set_offload_compute(bool cpu, const ExpertWeights& layer) override;
    bool offload_compute_cpu() const override { return offload_cpu_; }
    uint64_t host_computed_experts() const override;

    void embed(Tensor out, Tensor ids, const Weight& table) override;
    void rms_norm(Tensor out, Tensor in, const Weight& weight, float eps) override;
    void add_rms_norm(Tensor out, Tensor x, Tensor y, const Weight& weight, float eps) override;
    // Decode steps (at most gemv_max_tokens tokens) never synchronise with the host: capturable.
    int64_t graph_max_tokens() const override { return opts_.gemv_max_tokens; }
    Result<int> record(const std::function<void()>& body) override { return capture_graph(body); }
    void replay(int id) override { launch_graph(id); }
    void matmuls(Tensor in, std::span<const MatmulJob> jobs) override;
    void matmul(Tensor out, Tensor in, const Weight& w) override;
    void rope(Tensor q, Tensor k, Tensor positions, float theta) override;
    void attention(const AttentionArgs& args) override;
    void silu_mul(Tensor out, Tensor gate, Tensor up) override;
    void add(Tensor x, Tensor y) override;
    void add_bias(Tensor x, const Weight& bias) override;
    void moe_route(Tensor topk_ids, Tensor topk_w, Tensor router_logits, bool renormalize) override;
    void moe_experts(const MoeArgs& args) override;
    void rope_attention(const AttentionArgs& args, float theta) override;
    void add_rms_norm_route(Tensor out, Tensor x, Tensor y, const Weight& norm, float eps, const RouteArgs& r) override;
    // Both fusion flags at once (bench --fused both: unfused and fused graphs side by side). Ops issued
    // afterwards follow them; a graph keeps the kernels it was captured with. Not during a capture.
    void set_fusion(bool on);
    // Fused ops that ran as one kernel (tests check the fused path was taken).
    uint64_t fused_attention_calls() const { return fused_attention_calls_; }
    uint64_t fused_route_calls() const { return fused_route_calls_; }
    void gather_rows(Tensor out, Tensor in, Tensor rows) override;

    // --- workspaces: call once at start-up, before the first op ------------------------------------
    // Device bytes reserve_workspace(spec) will allocate (for the memory plan). The cuBLAS workspace
    // (cublas_workspace_bytes(), allocated by create()) is not included.
    uint64_t workspace_bytes(const WorkspaceSpec& spec) const;
    static uint64_t cublas_workspace_bytes();
    // One allocation, carved into: bf16 activations for cuBLAS, a dequantized-weight chunk, the
    // attention split-K partials, the MoE grouping arrays. A second call is an error.
    Status reserve_workspace(const WorkspaceSpec& spec);

    // --- CUDA graphs ---------------------------------------------------------------------------------
    // Records the ops that `body` issues (nothing runs) and instantiates them; returns the graph's id.
    // The body must not upload, download, synchronize or allocate, and must keep MoE layers at
    // gemv_max_tokens tokens or fewer (the larger path syncs with the host).
    Result<int> capture_graph(const std::function<void()>& body);
    void launch_graph(int id);
    // What graph `id` launches per replay (counted when it was captured).
    GraphNodeCounts graph_nodes(int id) const;

    int device() const { return device_; }
    int sm_count() const { return sm_count_; }
    uint64_t allocated_bytes() const { return allocated_bytes_; }
    CUstream_st* stream() const { return stream_; }
    const CudaOptions& options() const { return opts_; }
    // Products run on the quantized tensor-core GEMM (prefill_qgemm.h): tests check the path was taken.
    uint64_t qgemm_calls() const { return qgemm_calls_; }

private:
    CudaBackend(int device, CudaOptions opts);
    Status init();
    void check_not_capturing(const char* what) const;

    int device_ = 0;
    CudaOptions opts_;
    std::string name_;
    int sm_count_ = 0;
    CUstream_st* stream_ = nullptr;
    cublasContext* cublas_ = nullptr;
    bool capturing_ = false;
    uint64_t allocation_count_ = 0;
    uint64_t allocated_bytes_ = 0;
    std::unordered_map<void*, size_t> live_;
    std::unordered_map<void*, size_t> live_host_;
    uint64_t host_allocated_bytes_ = 0;
    std::unique_ptr<ExpertStager> stager_;  // with offloaded experts only
    std::unique_ptr<HostExpertCompute> host_compute_;  // --offload-compute cpu only
    bool offload_cpu_ = false;
    std::vector<CUgraphExec_st*> graphs_;
    std::vector<GraphNodeCounts> graph_nodes_;  // per graph id

    // Workspace views (inside allocations made through allocate()).
    void* cublas_ws_ = nullptr;
    bool reserved_ = false;
    void* act_ = nullptr;
    int64_t act_elems_ = 0;
    void* wbuf_ = nullptr;
    int64_t wbuf_elems_ = 0;
    float* partials_ = nullptr;
    int64_t partial_floats_ = 0;
    int32_t* moe_perm_ = nullptr;   // [max_tokens * k]
    int32_t* moe_inv_ = nullptr;    // [max_tokens * k]
    int32_t* moe_offsets_ = nullptr;  // [kMaxExperts + 1]
    int32_t* host_offsets_ = nullptr;  // pinned host copy of moe_offsets_
    int64_t moe_pairs_ = 0;
    int32_t* attn_counters_ = nullptr;  // fused decode attention: per (token, kv head) splits done, 0 between ops
    int64_t attn_counter_count_ = 0;
    uint64_t qgemm_calls_ = 0;
    uint64_t fused_attention_calls_ = 0;
    uint64_t fused_route_calls_ = 0;
};

// The factory the app uses: a CudaBackend on `device`, or an error saying why there is none.
Result<std::unique_ptr<Backend>> make_cuda_backend(int device);

// Memory of a device as the driver reports it (cudaMemGetInfo, after this process's context exists):
// an error when there is no such device.
struct DeviceMemory {
    uint64_t total = 0;
    uint64_t free = 0;
};
Result<DeviceMemory> query_device_memory(int device);
// CUDA devices visible to this process (0 when there is no driver or no device).
int cuda_device_count();

}  // namespace hr::cuda

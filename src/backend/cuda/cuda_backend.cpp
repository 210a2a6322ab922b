// CudaBackend: device, stream, cuBLAS handle, counted allocations, workspaces, graph capture, and the
// per-op shape checks and dispatch to the kernels of the other .cu files (one dispatch per op).
#include "backend/cuda/cuda_backend.h"

#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cpu/host_experts.h"
#include "backend/cuda/expert_staging.h"
#include "backend/cuda/host_expert_compute.h"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/prefill_qgemm.h"
#include "core/kv_quant.h"
#include "core/log.h"

namespace hr::cuda {

[[noreturn]] void cuda_fatal(cudaError_t err, const char* stmt, const char* func, const char* file, int line) {
    int dev = -1;
    cudaGetDevice(&dev);
    hr::fatal(file, line,
              fmt::format("CUDA error {} ({}) on device {} in {}: {} -- the CUDA context is unusable, stopping",
                          cudaGetErrorName(err), cudaGetErrorString(err), dev, func, stmt));
}

[[noreturn]] void cublas_fatal(cublasStatus_t st, const char* stmt, const char* func, const char* file, int line) {
    int dev = -1;
    cudaGetDevice(&dev);
    hr::fatal(file, line,
              fmt::format("cuBLAS error {} ({}) on device {} in {}: {}", cublasGetStatusName(st),
                          cublasGetStatusString(st), dev, func, stmt));
}

namespace {

constexpr uint64_t kCublasWorkspace = 32ull << 20;  // NVIDIA's recommendation for Hopper
constexpr int64_t kWbufMaxElems = 64ll << 20;       // 128 MiB of bf16 per dequantized chunk

struct WsLayout {
    uint64_t act = 0, wbuf = 0, partials = 0, perm = 0, inv = 0, offsets = 0, counters = 0, total = 0;
    int64_t act_elems = 0, wbuf_elems = 0, partial_floats = 0, pairs = 0, n_counters = 0;
};

WsLayout layout_for(const WorkspaceSpec& s, int sm_count) {
    WsLayout l;
    const int64_t k = std::max<int64_t>(1, s.n_experts_active);
    l.pairs = s.max_tokens * k;
    l.act_elems = l.pairs * s.max_cols;
    l.wbuf_elems = std::max(std::min(s.max_rows * s.max_cols, kWbufMaxElems), s.max_cols);
    l.partial_floats = s.n_kv_heads > 0 ? attention_partial_floats(s.n_heads, s.n_kv_heads, s.head_dim, sm_count) : 0;
    auto al = [](uint64_t n) { return (n + 255) / 256 * 256; };
    uint64_t off = 0;
    l.act = off;
    off += al(static_cast<uint64_t>(l.act_elems) * 2);
    l.wbuf = off;
    off += al(static_cast<uint64_t>(l.wbuf_elems) * 2);
    l.partials = off;
    off += al(static_cast<uint64_t>(l.partial_floats) * 4);
    l.perm = off;
    off += al(static_cast<uint64_t>(l.pairs) * 4);
    l.inv = off;
    off += al(static_cast<uint64_t>(l.pairs) * 4);
    l.offsets = off;
    off += al((kMaxExperts + 1) * 4);
    l.n_counters = s.n_kv_heads > 0 ? attention_counter_count(sm_count) : 0;
    l.counters = off;
    off += al(static_cast<uint64_t>(l.n_counters) * 4);
    l.total = off;
    return l;
}

cudaStream_t st(CUstream_st* s) { return s; }

// The per-expert data and scale pointers of one expert matrix (w1, w3 or w2) into a GEMV matrix slot.
void set_experts(GemvMat& m, std::span<const Weight> w) {
    for (size_t e = 0; e < w.size(); ++e) {
        m.data[e] = w[e].data;
        m.scales[e] = w[e].scales;
    }
}

}  // namespace

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // no driver / no device is not sticky; clear it
        return 0;
    }
    return n;
}

CudaBackend::CudaBackend(int device, CudaOptions opts) : device_(device), opts_(opts) {}

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(int device, CudaOptions opts) {
    const int n = cuda_device_count();
    if (n == 0) return errorf("cuda: no CUDA device found (cudaGetDeviceCount reports none or no driver)");
    if (device < 0 || device >= n) return errorf("cuda: device {} requested, expected 0 to {}", device, n - 1);
    std::unique_ptr<CudaBackend> be(new CudaBackend(device, opts));
    HR_TRY(be->init());
    return be;
}

void CudaBackend::bind_thread() { HR_CUDA_CHECK(cudaSetDevice(device_)); }

Status CudaBackend::init() {
    HR_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    HR_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = fmt::format("cuda:{} ({}, sm_{}{})", device_, prop.name, prop.major, prop.minor);
    sm_count_ = prop.multiProcessorCount;
    if (prop.major < 8) return errorf("cuda: {} has compute capability {}.{}, expected 8.0 or newer", prop.name,
                                      prop.major, prop.minor);
    cudaStream_t s = nullptr;
    HR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream_ = s;
    cublasHandle_t h = nullptr;
    HR_CUBLAS_CHECK(cublasCreate(&h));
    cublas_ = h;
    HR_CUBLAS_CHECK(cublasSetStream(h, s));
    HR_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));  // no TF32 for f32 weights
    HR_ASSIGN(cublas_ws_, allocate(kCublasWorkspace, "cuBLAS workspace"));
    HR_CUBLAS_CHECK(cublasSetWorkspace(h, cublas_ws_, kCublasWorkspace));
    HR_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_offsets_), (kMaxExperts + 1) * sizeof(int32_t)));
    return ok();
}

CudaBackend::~CudaBackend() {
    // A backend destroyed at process exit may outlive the CUDA runtime (static objects): nothing is left
    // to release then. Any other error is fatal as everywhere else.
    auto check = [](cudaError_t e, const char* stmt) {
        if (e != cudaSuccess && e != cudaErrorCudartUnloading) cuda_fatal(e, stmt, "~CudaBackend", __FILE__, __LINE__);
    };
    if (stream_) check(cudaStreamSynchronize(st(stream_)), "cudaStreamSynchronize");
    for (auto* g : graphs_) check(cudaGraphExecDestroy(g), "cudaGraphExecDestroy");
    if (cublas_) cublasDestroy(cublas_);  // its status at exit carries no information
    stager_.reset();
    host_compute_.reset();  // its graphs (host nodes) are gone; its stream synchronises
    for (auto& [p, bytes] : live_) check(cudaFree(p), "cudaFree");
    for (auto& [p, bytes] : live_host_) check(cudaFreeHost(p), "cudaFreeHost");
    if (host_offsets_) check(cudaFreeHost(host_offsets_), "cudaFreeHost");
    if (stream_) check(cudaStreamDestroy(st(stream_)), "cudaStreamDestroy");
}

std::string CudaBackend::name() const { return name_; }

void CudaBackend::check_not_capturing(const char* what) const {
    HR_CHECK_MSG(!capturing_, fmt::format("cuda: {} inside a CUDA-graph capture (not capturable)", what));
}

Result<void*> CudaBackend::allocate(size_t bytes, std::string_view what) {
    check_not_capturing("allocate");
    // cudaMalloc places memory on the calling thread's current device: make it this backend's (with several
    // GPUs in one process, tensor parallel, another rank's may be current).
    HR_CUDA_CHECK(cudaSetDevice(device_));
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // out of memory is not sticky
        size_t free_b = 0, total_b = 0;
        HR_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        return errorf("cuda: allocating {} bytes for {} failed: out of memory ({} bytes free of {})", bytes, what,
                      free_b, total_b);
    }
    HR_CUDA_CHECK(err);
    ++allocation_count_;
    allocated_bytes_ += bytes;
    live_[p] = bytes;
    return p;
}

void CudaBackend::release(void* p) {
    if (p == nullptr) return;
    check_not_capturing("release");
    auto it = live_.find(p);
    HR_CHECK_MSG(it != live_.end(), "cuda: release of a pointer this backend did not allocate");
    HR_CUDA_CHECK(cudaSetDevice(device_));  // as in allocate(): this backend's device, whichever is current
    HR_CUDA_CHECK(cudaStreamSynchronize(st(stream_)));
    HR_CUDA_CHECK(cudaFree(p));
    allocated_bytes_ -= it->second;
    live_.erase(it);
}

Result<void*> CudaBackend::allocate_host(size_t bytes, std::string_view what) {
    check_not_capturing("allocate_host");
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes == 0 ? 256 : bytes, cudaHostAllocMapped | cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // not sticky
        return errorf("cuda: pinning {} bytes of host memory for {} failed (cudaHostAlloc: out of memory; the "
                      "plan's host.experts needs this much page-locked RAM)", bytes, what);
    }
    HR_CUDA_CHECK(err);
    // Kernels read it through the same pointer (UVA on every 64-bit platform CUDA 12+ supports); checked
    // once here rather than assumed.
    void* dev = nullptr;
    HR_CUDA_CHECK(cudaHostGetDevicePointer(&dev, p, 0));
    if (dev != p) {
        HR_CUDA_CHECK(cudaFreeHost(p));
        return errorf("cuda: mapped host memory for {} has a device address unlike its host address (no unified "
                      "addressing); expert offload needs it", what);
    }
    ++allocation_count_;
    host_allocated_bytes_ += bytes;
    live_host_[p] = bytes;
    return p;
}

void CudaBackend::release_host(void* p) {
    if (p == nullptr) return;
    check_not_capturing("release_host");
    auto it = live_host_.find(p);
    HR_CHECK_MSG(it != live_host_.end(), "cuda: release_host of a pointer this backend did not allocate");
    HR_CUDA_CHECK(cudaStreamSynchronize(st(stream_)));
    HR_CUDA_CHECK(cudaFreeHost(p));
    host_allocated_bytes_ -= it->second;
    live_host_.erase(it);
}

Status CudaBackend::reserve_expert_staging(uint64_t bytes_per_expert) {
    // A second model with offloaded experts on the same backend (tests) reuses buffers that are large enough.
    if (stager_ && bytes_per_expert <= stager_->buffer_bytes()) return ok();
    if (stager_)
        return errorf("cuda: the expert staging buffers hold {} bytes, {} requested (reserved once per backend)",
                      stager_->buffer_bytes(), bytes_per_expert);
    HR_ASSIGN(void* b0, allocate(bytes_per_expert, "expert staging buffer 0"));
    HR_ASSIGN(void* b1, allocate(bytes_per_expert, "expert staging buffer 1"));
    HR_ASSIGN(stager_, ExpertStager::create(b0, b1, bytes_per_expert));
    return ok();
}

uint64_t CudaBackend::host_stream_bytes() const { return stager_ ? stager_->streamed_bytes() : 0; }

void CudaBackend::upload(void* dst, const void* src_host, size_t bytes) {
    check_not_capturing("upload");
    HR_CUDA_CHECK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, st(stream_)));
    HR_CUDA_CHECK(cudaStreamSynchronize(st(stream_)));
}

void CudaBackend::download(void* dst_host, const void* src, size_t bytes) {
    check_not_capturing("download");
    HR_CUDA_CHECK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, st(stream_)));
    HR_CUDA_CHECK(cudaStreamSynchronize(st(stream_)));
}

void CudaBackend::copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                            size_t rows) {
    if (width == 0 || rows == 0) return;
    // A single row ignores the pitches (cudaMemcpy2D wants pitch >= width even for one row).
    if (rows == 1) dst_pitch = src_pitch = width;
    HR_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice,
                                    st(stream_)));
}

void CudaBackend::synchronize() {
    check_not_capturing("synchronize");
    HR_CUDA_CHECK(cudaStreamSynchronize(st(stream_)));
}

uint64_t CudaBackend::cublas_workspace_bytes() { return kCublasWorkspace; }

uint64_t CudaBackend::workspace_bytes(const WorkspaceSpec& spec) const { return layout_for(spec, sm_count_).total; }

Status CudaBackend::reserve_workspace(const WorkspaceSpec& spec) {
    if (reserved_) return errorf("cuda: reserve_workspace called twice (workspaces are allocated once)");
    if (spec.max_tokens <= 0 || spec.max_cols <= 0 || spec.max_rows <= 0)
        return errorf("cuda: workspace spec needs max_tokens, max_cols and max_rows > 0 (got {}, {}, {})",
                      spec.max_tokens, spec.max_cols, spec.max_rows);
    if (spec.n_experts > kMaxExperts)
        return errorf("cuda: {} experts, the CUDA backend supports at most {}", spec.n_experts, kMaxExperts);
    const WsLayout l = layout_for(spec, sm_count_);
    HR_ASSIGN(void* base, allocate(l.total, "CUDA workspaces"));
    auto* b = static_cast<uint8_t*>(base);
    act_ = b + l.act;
    act_elems_ = l.act_elems;
    wbuf_ = b + l.wbuf;
    wbuf_elems_ = l.wbuf_elems;
    partials_ = reinterpret_cast<float*>(b + l.partials);
    partial_floats_ = l.partial_floats;
    moe_perm_ = reinterpret_cast<int32_t*>(b + l.perm);
    moe_inv_ = reinterpret_cast<int32_t*>(b + l.inv);
    moe_offsets_ = reinterpret_cast<int32_t*>(b + l.offsets);
    moe_pairs_ = l.pairs;
    attn_counters_ = reinterpret_cast<int32_t*>(b + l.counters);
    attn_counter_count_ = l.n_counters;
    // The fused decode attention's counters start at 0 and every launch leaves them at 0.
    if (l.n_counters > 0) {
        HR_CUDA_CHECK(cudaMemsetAsync(attn_counters_, 0, static_cast<size_t>(l.n_counters) * 4, st(stream_)));
        HR_CUDA_CHECK(cudaStreamSynchronize(st(stream_)));
    }
    reserved_ = true;
    return ok();
}

// Kernel launches and copies/memsets in a captured graph: the bench's "launches per step" (each costs a few
// microseconds of GPU front-end time even inside a graph, so fewer, fused kernels are a target of their own).
static GraphNodeCounts count_graph_nodes(cudaGraph_t graph) {
    size_t n = 0;
    HR_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &n));
    std::vector<cudaGraphNode_t> nodes(n);
    HR_CUDA_CHECK(cudaGraphGetNodes(graph, nodes.data(), &n));
    GraphNodeCounts c;
    for (cudaGraphNode_t node : nodes) {
        cudaGraphNodeType type{};
        HR_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
        if (type == cudaGraphNodeTypeKernel) ++c.kernels;
        else if (type == cudaGraphNodeTypeMemcpy || type == cudaGraphNodeTypeMemset) ++c.copies;
        else ++c.other;
    }
    return c;
}

Result<int> CudaBackend::capture_graph(const std::function<void()>& body) {
    check_not_capturing("capture_graph");
    HR_CUDA_CHECK(cudaStreamBeginCapture(st(stream_), cudaStreamCaptureModeGlobal));
    capturing_ = true;
    body();
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    HR_CUDA_CHECK(cudaStreamEndCapture(st(stream_), &graph));
    graph_nodes_.push_back(count_graph_nodes(graph));
    cudaGraphExec_t exec = nullptr;
    HR_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    HR_CUDA_CHECK(cudaGraphDestroy(graph));
    graphs_.push_back(exec);
    return static_cast<int>(graphs_.size() - 1);
}

GraphNodeCounts CudaBackend::graph_nodes(int id) const {
    HR_CHECK_MSG(id >= 0 && static_cast<size_t>(id) < graph_nodes_.size(), fmt::format("cuda: no graph {}", id));
    return graph_nodes_[static_cast<size_t>(id)];
}

void CudaBackend::launch_graph(int id) {
    HR_CHECK_MSG(id >= 0 && static_cast<size_t>(id) < graphs_.size(), fmt::format("cuda: no graph {}", id));
    HR_CUDA_CHECK(cudaGraphLaunch(graphs_[static_cast<size_t>(id)], st(stream_)));
}

// --- ops --------------------------------------------------------------------------------------------------

void CudaBackend::embed(Tensor out, Tensor ids, const Weight& table) {
    HR_CHECK_MSG(out.rows() == ids.numel() && out.cols() == table.cols && ids.dtype == DType::i32,
                 fmt::format("embed: out [{}, {}], ids {}, table cols {}", out.rows(), out.cols(), ids.numel(),
                             table.cols));
    launch_embed(st(stream_), out.as<float>(), ids.as<int32_t>(), ids.numel(), table);
}

void CudaBackend::rms_norm(Tensor out, Tensor in, const Weight& weight, float eps) {
    HR_CHECK_MSG(out.numel() == in.numel() && in.cols() == weight.cols && weight.rows == 1,
                 fmt::format("rms_norm: in [{}, {}], weight [{}, {}]", in.rows(), in.cols(), weight.rows, weight.cols));
    launch_rms_norm(st(stream_), out.as<float>(), in.as<float>(), in.rows(), in.cols(), weight, eps);
}

void CudaBackend::add_rms_norm(Tensor out, Tensor x, Tensor y, const Weight& weight, float eps) {
    HR_CHECK_MSG(out.numel() == x.numel() && x.numel() == y.numel() && x.cols() == weight.cols && weight.rows == 1 &&
                     out.data != x.data && out.data != y.data,
                 fmt::format("add_rms_norm: x [{}, {}], y {}, out {}, weight [{}, {}] (out must not alias)", x.rows(),
                             x.cols(), y.numel(), out.numel(), weight.rows, weight.cols));
    launch_add_rms_norm(st(stream_), out.as<float>(), x.as<float>(), y.as<float>(), x.rows(), x.cols(), weight, eps);
}

void CudaBackend::matmul(Tensor out, Tensor in, const Weight& w) {
    const int64_t n = in.rows();
    HR_CHECK_MSG(in.cols() == w.cols && out.rows() == n && out.cols() == w.rows,
                 fmt::format("matmul: in [{}, {}], out [{}, {}], weight [{}, {}]", n, in.cols(), out.rows(), out.cols(),
                             w.rows, w.cols));
    if (n <= opts_.gemv_max_tokens || w.rows <= opts_.gemv_max_rows) {
        GemvParams p;
        p.mat[0].data[0] = w.data;
        p.mat[0].scales[0] = w.scales;
        p.mat[0].out = out.as<float>();
        p.dtype = w.dtype;
        p.rows = w.rows;
        p.cols = w.cols;
        p.x = in.as<float>();
        p.n_tasks = n;
        p.block_k = opts_.gemv_block_k;
        p.tensor_cores = opts_.gemv_tensor_cores;
        launch_gemv(st(stream_), p);
        return;
    }
    if (opts_.prefill_qgemm && matmul_qgemm(stream_, out.as<float>(), in.as<float>(), n, w, act_, act_elems_)) {
        ++qgemm_calls_;
        return;
    }
    const GemmWorkspace ws{act_, act_elems_, wbuf_, wbuf_elems_};
    gemm(st(stream_), cublas_, ws, out.as<float>(), in.as<float>(), n, w);
}

void CudaBackend::matmuls(Tensor in, std::span<const MatmulJob> jobs) {
    // One token (decode at batch 1): the products as one launch; otherwise one matmul each.
    bool one = in.rows() == 1 && !jobs.empty() && jobs.size() <= static_cast<size_t>(kMaxMats);
    for (const MatmulJob& j : jobs)
        one = one && j.w->dtype == jobs[0].w->dtype && j.w->cols == in.cols() && j.out.rows() == 1 &&
              j.out.cols() == j.w->rows && j.w->rows > opts_.gemv_max_rows;
    if (one) {
        GemvParams p;
        p.n_mat = static_cast<int>(jobs.size());
        for (size_t i = 0; i < jobs.size(); ++i) {
            p.mat[i].data[0] = jobs[i].w->data;
            p.mat[i].scales[0] = jobs[i].w->scales;
            p.mat[i].out = jobs[i].out.as<float>();
            p.mat_rows[i] = jobs[i].w->rows;
        }
        p.dtype = jobs[0].w->dtype;
        p.rows = jobs[0].w->rows;
        p.cols = in.cols();
        p.x = in.as<float>();
        p.n_tasks = 1;
        p.block_k = opts_.gemv_block_k;
        p.tensor_cores = opts_.gemv_tensor_cores;
        if (launch_gemv_multi(st(stream_), p)) return;
    }
    for (const MatmulJob& j : jobs) matmul(j.out, in, *j.w);
}

void CudaBackend::rope(Tensor q, Tensor k, Tensor positions, float theta) {
    HR_CHECK_MSG(q.ndim == 3 && k.ndim == 3 && q.dim(0) == k.dim(0) && q.dim(2) == k.dim(2) && q.dim(2) % 2 == 0 &&
                     positions.numel() == q.dim(0),
                 "rope: expected q [n, n_heads, head_dim], k [n, n_kv_heads, head_dim], positions [n], even head_dim");
    launch_rope(st(stream_), q.as<float>(), k.as<float>(), positions.as<int32_t>(), q.dim(0), q.dim(1), k.dim(1),
                q.dim(2), theta);
}

namespace {

// The kernels' view of an attention op (shapes checked).
AttnLaunch attn_launch_of(const AttentionArgs& a, float* partials, int64_t partial_floats, int sm_count) {
    const int64_t n = a.q.dim(0);
    HR_CHECK_MSG(a.q.ndim == 3 && a.k_new.ndim == 3 && a.cache.k.ndim == 4 && a.block_tables.ndim == 2 &&
                     a.k_new.dim(0) == n && a.k_new.dim(2) == a.q.dim(2) && a.cache.k.dim(2) == a.k_new.dim(1) &&
                     a.cache.k.dim(3) == a.q.dim(2) && a.cache.k.dim(1) == a.block_size &&
                     a.out.numel() == a.q.numel() && a.cache.v.dtype == a.cache.k.dtype,
                 "attention: shapes of q, k_new, cache, block_tables or out disagree");
    AttnLaunch l{};
    l.out = a.out.as<float>();
    l.q = a.q.as<float>();
    l.k_new = a.k_new.as<float>();
    l.v_new = a.v_new.as<float>();
    l.k_cache = a.cache.k.data;
    l.v_cache = a.cache.v.data;
    l.cache_dtype = a.cache.k.dtype;
    l.k_scale = a.cache.k_scale.as<float>();
    l.v_scale = a.cache.v_scale.as<float>();
    HR_CHECK_MSG(!is_quantized_kv(l.cache_dtype) || (l.k_scale != nullptr && l.v_scale != nullptr),
                 "attention: a quantized KV cache without its scales");
    l.positions = a.positions.as<int32_t>();
    l.token_seq = a.token_seq.as<int32_t>();
    l.slot_mapping = a.slot_mapping.as<int32_t>();
    l.block_tables = a.block_tables.as<int32_t>();
    l.max_blocks = a.block_tables.dim(1);
    l.n = n;
    l.n_heads = a.q.dim(1);
    l.n_kv_heads = a.k_new.dim(1);
    l.head_dim = a.q.dim(2);
    l.block_size = a.block_size;
    l.scale = a.scale;
    l.partials = partials;
    l.partial_floats = partial_floats;
    l.sm_count = sm_count;
    l.token_seq_host = static_cast<int64_t>(a.token_seq_host.size()) == n ? a.token_seq_host.data() : nullptr;
    return l;
}

}  // namespace

void CudaBackend::attention(const AttentionArgs& a) {
    launch_attention(st(stream_), attn_launch_of(a, partials_, partial_floats_, sm_count_));
}

void CudaBackend::rope_attention(const AttentionArgs& a, float theta) {
    // Fused only where the step has one token per sequence (its host copy of token_seq says so: tokens of a
    // sequence are contiguous, so no two neighbours share one): no token then reads a slot another token
    // writes in the same launch.
    const int64_t n = a.q.ndim == 3 ? a.q.dim(0) : 0;
    bool fuse = opts_.fused_decode_attention && reserved_ && n >= 1 &&
                static_cast<int64_t>(a.token_seq_host.size()) == n && a.k_new.ndim == 3 && a.q.ndim == 3 &&
                a.k_new.dim(0) == n && a.k_new.dim(1) == a.v_new.dim(1) && a.v_new.numel() == a.k_new.numel();
    for (int64_t i = 1; fuse && i < n; ++i)
        fuse = a.token_seq_host[static_cast<size_t>(i)] != a.token_seq_host[static_cast<size_t>(i - 1)];
    if (fuse) {
        const AttnLaunch l = attn_launch_of(a, partials_, partial_floats_, sm_count_);
        if (launch_attention_fused(st(stream_), l, theta, attn_counters_, attn_counter_count_)) {
            ++fused_attention_calls_;
            return;
        }
    }
    rope(a.q, a.k_new, a.positions, theta);
    attention(a);
}

void CudaBackend::set_fusion(bool on) {
    check_not_capturing("set_fusion");
    opts_.fused_decode_attention = on;
    opts_.fused_router = on;
}

void CudaBackend::silu_mul(Tensor out, Tensor gate, Tensor up) {
    HR_CHECK_MSG(out.numel() == gate.numel() && gate.numel() == up.numel(), "silu_mul: sizes disagree");
    launch_silu_mul(st(stream_), out.as<float>(), gate.as<float>(), up.as<float>(), out.numel());
}

void CudaBackend::add(Tensor x, Tensor y) {
    HR_CHECK_MSG(x.numel() == y.numel(), "add: sizes disagree");
    launch_add(st(stream_), x.as<float>(), y.as<float>(), x.numel());
}

void CudaBackend::add_bias(Tensor x, const Weight& bias) {
    HR_CHECK_MSG(bias.rows == 1 && bias.cols == x.cols(),
                 fmt::format("add_bias: x [{}, {}], bias [{}, {}] (expected [1, {}])", x.rows(), x.cols(), bias.rows,
                             bias.cols, x.cols()));
    launch_add_bias(st(stream_), x.as<float>(), x.rows(), x.cols(), bias);
}

void CudaBackend::moe_route(Tensor topk_ids, Tensor topk_w, Tensor router_logits, bool renormalize) {
    const int64_t n = router_logits.rows(), E = router_logits.cols(), k = topk_ids.cols();
    HR_CHECK_MSG(topk_ids.rows() == n && topk_w.rows() == n && topk_w.cols() == k && k <= E && E <= 256 && k <= 16 &&
                     k <= 32,
                 fmt::format("moe_route: {} tokens, {} experts, top-{} (expected k <= experts <= 256, k <= 16)", n, E,
                             k));
    launch_moe_route(st(stream_), topk_ids.as<int32_t>(), topk_w.as<float>(), router_logits.as<float>(), n, E, k,
                     renormalize);
}

void CudaBackend::add_rms_norm_route(Tensor out, Tensor x, Tensor y, const Weight& norm, float eps,
                                     const RouteArgs& r) {
    const int64_t n = x.rows(), dim = x.cols();
    const bool fuse = opts_.fused_router && r.router != nullptr && r.router->cols == dim &&
                      add_rms_norm_route_supported(dim, r.router->rows, r.topk_ids.cols());
    if (!fuse) {
        Backend::add_rms_norm_route(out, x, y, norm, eps, r);
        return;
    }
    const int64_t E = r.router->rows, k = r.topk_ids.cols();
    HR_CHECK_MSG(out.numel() == x.numel() && x.numel() == y.numel() && norm.cols == dim && norm.rows == 1 &&
                     out.data != x.data && out.data != y.data && r.router_logits.rows() == n &&
                     r.router_logits.cols() == E && r.topk_ids.rows() == n && r.topk_w.rows() == n &&
                     r.topk_w.cols() == k && r.topk_ids.dtype == DType::i32,
                 fmt::format("add_rms_norm_route: x [{}, {}], y {}, out {}, norm [{}, {}], router [{}, {}], logits "
                             "[{}, {}], top-{} ids [{}, {}] (out must not alias)",
                             n, dim, y.numel(), out.numel(), norm.rows, norm.cols, E, r.router->cols,
                             r.router_logits.rows(), r.router_logits.cols(), k, r.topk_ids.rows(), r.topk_ids.cols()));
    launch_add_rms_norm_route(st(stream_), out.as<float>(), x.as<float>(), y.as<float>(), n, dim, norm, eps, *r.router,
                              r.router_logits.as<float>(), r.topk_ids.as<int32_t>(), r.topk_w.as<float>(), k,
                              r.renormalize);
    ++fused_route_calls_;
}

void CudaBackend::moe_experts(const MoeArgs& a) {
    const int64_t n = a.in.rows(), dim = a.in.cols(), k = a.topk_ids.cols(), nk = n * k;
    const int64_t E = static_cast<int64_t>(a.experts.w1.size());
    HR_CHECK_MSG(E >= 1 && E <= kMaxExperts && a.experts.w3.size() == a.experts.w1.size() &&
                     a.experts.w2.size() == a.experts.w1.size(),
                 fmt::format("moe_experts: {} experts (expected 1 to {}, the same count for w1, w2, w3)", E,
                             kMaxExperts));
    const Weight& w1 = a.experts.w1[0];
    const int64_t ffn = w1.rows;
    for (int64_t e = 0; e < E; ++e) {
        const auto i = static_cast<size_t>(e);
        const Weight &x1 = a.experts.w1[i], &x3 = a.experts.w3[i], &x2 = a.experts.w2[i];
        HR_CHECK_MSG(x1.dtype == w1.dtype && x3.dtype == w1.dtype && x2.dtype == w1.dtype && x1.rows == ffn &&
                         x3.rows == ffn && x1.cols == dim && x3.cols == dim && x2.rows == dim && x2.cols == ffn,
                     fmt::format("moe_experts: expert {} has a shape or dtype unlike expert 0", e));
    }
    HR_CHECK_MSG(a.out.rows() == n && a.out.cols() == dim && a.topk_w.numel() == nk && a.ws_gate.rows() >= nk &&
                     a.ws_up.rows() >= nk && a.ws_out.rows() >= nk && a.ws_in.rows() >= nk,
                 "moe_experts: output or workspace shapes too small");
    const cudaStream_t s = st(stream_);
    float* gate = a.ws_gate.as<float>();
    float* up = a.ws_up.as<float>();
    float* yout = a.ws_out.as<float>();

    if (n > opts_.moe_pair_max_tokens && n <= opts_.grouped_max_tokens && reserved_ && nk <= moe_pairs_) {
        // Batched decode: pairs grouped by expert on the device, each selected expert's rows read once per
        // tile of its pairs (one pair per token-expert would read an expert once per pair).
        GemvParams p1;
        GemvParams p2;
        set_experts(p1.mat[0], a.experts.w1);
        set_experts(p1.mat[1], a.experts.w3);
        set_experts(p2.mat[0], a.experts.w2);
        p1.n_mat = 2;
        p2.n_mat = 1;
        for (GemvParams* q : {&p1, &p2}) {
            q->n_experts = static_cast<int>(E);
            q->dtype = w1.dtype;
            q->k = static_cast<int>(k);
            q->n_tasks = nk;
        }
        p1.rows = ffn;
        p1.cols = dim;
        p1.x = a.in.as<float>();
        p1.mat[0].out = gate;
        p2.rows = dim;
        p2.cols = ffn;
        p2.x = gate;
        p2.mat[0].out = yout;
        if (opts_.grouped_tensor_cores && (w1.dtype != DType::q4 || opts_.grouped_tensor_cores_q4) &&
            gemv_grouped_tc_supported(p1) && gemv_grouped_tc_supported(p2)) {
            // int8 / int4 on the tensor cores: activations rounded to f16 (the workspace holds nk x max_cols).
            auto* xh = static_cast<__half*>(act_);
            launch_moe_plan(s, moe_perm_, moe_inv_, moe_offsets_, a.topk_ids.as<int32_t>(), nk, E);
            launch_to_half(s, act_, a.in.as<float>(), n * dim, true);
            launch_gemv_grouped_tc(s, p1, xh, moe_perm_, moe_offsets_, true);   // gate[pair] = silu(W1 x) * (W3 x)
            launch_to_half(s, act_, gate, nk * ffn, true);
            launch_gemv_grouped_tc(s, p2, xh, moe_perm_, moe_offsets_, false);  // yout[pair] = W2 gate[pair]
            launch_moe_combine(s, a.out.as<float>(), yout, a.topk_w.as<float>(), nullptr, n, k, dim);
            return;
        }
        if (gemv_grouped_supported(p1) && gemv_grouped_supported(p2)) {
            launch_moe_plan(s, moe_perm_, moe_inv_, moe_offsets_, a.topk_ids.as<int32_t>(), nk, E);
            launch_gemv_grouped(s, p1, moe_perm_, moe_offsets_, true);   // gate[pair] = silu(W1 x) * (W3 x)
            launch_gemv_grouped(s, p2, moe_perm_, moe_offsets_, false);  // yout[pair] = W2 gate[pair]
            launch_moe_combine(s, a.out.as<float>(), yout, a.topk_w.as<float>(), nullptr, n, k, dim);
            return;
        }
    }

    if (n <= opts_.gemv_max_tokens) {
        // Decode: no host sync. Each (token, expert) pair is a GEMV task that reads its expert id on the device.
        GemvParams p;
        set_experts(p.mat[0], a.experts.w1);
        set_experts(p.mat[1], a.experts.w3);
        p.mat[0].out = gate;
        p.mat[1].out = up;
        p.n_mat = 2;
        p.n_experts = static_cast<int>(E);
        p.dtype = w1.dtype;
        p.rows = ffn;
        p.cols = dim;
        p.x = a.in.as<float>();
        p.n_tasks = nk;
        p.ids = a.topk_ids.as<int32_t>();
        p.k = static_cast<int>(k);
        p.x_per_pair = 0;
        p.block_k = opts_.gemv_block_k;
        p.tensor_cores = opts_.gemv_tensor_cores;
        // Fused: w1/w3 with silu(gate) * up in the epilogue, then w2 with the weighted sum of the experts.
        GemvParams ph = p;
        ph.silu_pair = true;
        GemvParams pc = p;
        set_experts(pc.mat[0], a.experts.w2);
        pc.mat[0].out = a.out.as<float>();
        pc.n_mat = 1;
        pc.rows = dim;
        pc.cols = ffn;
        pc.x = gate;
        pc.x_per_pair = 1;
        pc.combine_w = a.topk_w.as<float>();
        if (gemv_fused_supported(ph) && gemv_fused_supported(pc)) {
            // --offload-compute cpu, one token: the selected experts of this layer that live in host memory
            // are computed by the host on a forked branch while the GPU computes the others (skipped here,
            // added by join). Batched decode and prefill keep the paths below and above: with more tokens
            // the weights crossing the link serve them all, and the host's GEMV rate does not grow with them.
            const uint64_t host_mask = offload_cpu_ && n == 1 && host_compute_ ? cpu::host_expert_mask(a.experts) : 0;
            if (host_mask != 0 && host_compute_->fits(dim, ffn, k)) {
                host_compute_->fork(s, a, host_mask);
                ph.skip_experts = host_mask;
                pc.skip_experts = host_mask;
                launch_gemv(s, ph);
                launch_gemv(s, pc);
                host_compute_->join(s, a.out.as<float>(), dim);
                return;
            }
            launch_gemv(s, ph);  // gate = silu(W1 x) * (W3 x)
            launch_gemv(s, pc);  // out = sum_j w_j W2 gate_j
            return;
        }
        launch_gemv(s, p);
        launch_silu_mul(s, gate, gate, up, nk * ffn);
        GemvParams p2 = p;
        set_experts(p2.mat[0], a.experts.w2);
        p2.mat[0].out = yout;
        p2.n_mat = 1;
        p2.rows = dim;
        p2.cols = ffn;
        p2.x = gate;
        p2.x_per_pair = 1;
        launch_gemv(s, p2);
        launch_moe_combine(s, a.out.as<float>(), yout, a.topk_w.as<float>(), nullptr, n, k, dim);
        return;
    }

    // Prefill on the quantized tensor-core GEMM (int8 / int4): no bf16 copy of the experts, no host sync
    // unless the layer has offloaded experts: those are staged (one copy each per layer and chunk, one
    // host sync for the counts) rather than read in place by every token tile; inside a capture (prefill
    // is not captured today) they are read in place, which is correct and slower.
    const QgemmStaging staging{stager_.get(), host_offsets_};
    if (opts_.prefill_qgemm && reserved_ &&
        moe_prefill_qgemm(stream_, a, QgemmWorkspace{act_, act_elems_, moe_perm_, moe_inv_, moe_offsets_, moe_pairs_},
                          stager_ && !capturing_ ? &staging : nullptr)) {
        ++qgemm_calls_;
        return;
    }
    // Otherwise: group the pairs by expert (one small host sync for the counts), then one GEMM per expert.
    check_not_capturing("moe_experts with more than gemv_max_tokens tokens");
    HR_CHECK_MSG(reserved_ && nk <= moe_pairs_ && nk * std::max(dim, ffn) <= act_elems_,
                 fmt::format("moe_experts: {} pairs exceed the reserved workspace ({} pairs; call reserve_workspace "
                             "with larger max_tokens / max_cols)",
                             nk, moe_pairs_));
    launch_moe_plan(s, moe_perm_, moe_inv_, moe_offsets_, a.topk_ids.as<int32_t>(), nk, E);
    HR_CUDA_CHECK(cudaMemcpyAsync(host_offsets_, moe_offsets_, static_cast<size_t>(E + 1) * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, s));
    HR_CUDA_CHECK(cudaStreamSynchronize(s));
    const int64_t rows = host_offsets_[E];
    float* xin = a.ws_in.as<float>();
    launch_moe_gather(s, xin, a.in.as<float>(), moe_perm_, rows, k, dim);
    const GemmWorkspace ws{act_, act_elems_, wbuf_, wbuf_elems_};
    const bool f32w = w1.dtype == DType::f32;
    if (!f32w) launch_to_half(s, act_, xin, rows * dim, gemm_wants_f16(w1));
    const size_t hsz = 2;  // bytes of a bf16/f16 activation
    auto expert_gemm = [&](float* out, const float* in_f32, int64_t in_cols, int64_t off, int64_t c, const Weight& w) {
        if (f32w) gemm(s, cublas_, ws, out, in_f32 + off * in_cols, c, w);
        else gemm_converted(s, cublas_, ws, out, static_cast<uint8_t*>(act_) + off * in_cols * hsz, c, w);
    };
    // Offloaded experts (Weight::host) with tokens are copied into the staging buffers on a copy stream,
    // two ahead of the GEMMs (expert_staging.h); the others read their device weights as before. Without
    // a stager the GEMMs read mapped host memory in place (correct, slower).
    const bool stage1 = stager_ && ExpertStager::wanted(a.experts.w1, host_offsets_, E);
    if (stage1) stager_->begin(stream_, a.experts.w1, a.experts.w3, host_offsets_, E);
    for (int64_t e = 0; e < E; ++e) {
        const int64_t off = host_offsets_[e], c = host_offsets_[e + 1] - off;
        if (c == 0) continue;
        const auto i = static_cast<size_t>(e);
        const bool staged = stage1 && a.experts.w1[i].host;
        const std::array<Weight, 2> v = staged ? stager_->acquire() : std::array<Weight, 2>{a.experts.w1[i], a.experts.w3[i]};
        expert_gemm(gate + off * ffn, xin, dim, off, c, v[0]);
        expert_gemm(up + off * ffn, xin, dim, off, c, v[1]);
        if (staged) stager_->release();
    }
    launch_silu_mul(s, gate, gate, up, rows * ffn);
    if (!f32w) launch_to_half(s, act_, gate, rows * ffn, gemm_wants_f16(w1));
    const bool stage2 = stager_ && ExpertStager::wanted(a.experts.w2, host_offsets_, E);
    if (stage2) stager_->begin(stream_, a.experts.w2, {}, host_offsets_, E);
    for (int64_t e = 0; e < E; ++e) {
        const int64_t off = host_offsets_[e], c = host_offsets_[e + 1] - off;
        if (c == 0) continue;
        const auto i = static_cast<size_t>(e);
        const bool staged = stage2 && a.experts.w2[i].host;
        expert_gemm(yout + off * dim, gate, ffn, off, c, staged ? stager_->acquire()[0] : a.experts.w2[i]);
        if (staged) stager_->release();
    }
    launch_moe_combine(s, a.out.as<float>(), yout, a.topk_w.as<float>(), moe_inv_, n, k, dim);
}

void CudaBackend::gather_rows(Tensor out, Tensor in, Tensor rows) {
    HR_CHECK_MSG(out.rows() == rows.numel() && out.cols() == in.cols(), "gather_rows: shapes disagree");
    launch_gather_rows(st(stream_), out.as<float>(), in.as<float>(), rows.as<int32_t>(), rows.numel(), in.cols(),
                       in.rows());
}

Result<std::unique_ptr<Backend>> make_cuda_backend(int device) {
    auto r = CudaBackend::create(device);
    if (!r.ok()) return r.take_error();
    return std::unique_ptr<Backend>(std::move(r).value());
}

Result<DeviceMemory> query_device_memory(int device) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || device < 0 || device >= n) {
        cudaGetLastError();  // no device is not sticky
        return errorf("cuda: device {} not found ({} CUDA devices visible)", device, n);
    }
    HR_CUDA_CHECK(cudaSetDevice(device));
    size_t free_b = 0, total_b = 0;
    HR_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return DeviceMemory{total_b, free_b};
}

}  // namespace hr::cuda

// The synthetic Mixtral benchmark (see mixtral_bench.h). Runs the real forward pass (model/forward.cpp)
// on the CUDA backend; the decode step is captured once as a CUDA graph and replayed.
#include "bench/mixtral_bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "bench/synthetic.cuh"
#include "classify/label_scorer.h"
#include "core/kv_quant.h"
#include "memory/weight_format.h"
#include "runtime/local_engine.h"
#include "loader/load.h"
#include "model/activations.h"
#include "model/forward.h"
#include "quant/formats.h"

namespace hr::bench {
namespace {

using cuda::CudaBackend;

ModelConfig mixtral_8x7b() {
    ModelConfig c;
    c.arch = Architecture::mixtral;
    c.vocab_size = 32000;
    c.dim = 4096;
    c.ffn_dim = 14336;
    c.n_layers = 32;
    c.n_heads = 32;
    c.n_kv_heads = 8;
    c.head_dim = 128;
    c.n_experts = 8;
    c.n_experts_active = 2;
    c.max_position_embeddings = 32768;
    c.rope_theta = 1e6;
    c.norm_eps = 1e-5;
    return c;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

uint64_t wbytes(const Weight& w) {
    return static_cast<uint64_t>(quant::weight_data_bytes(w.dtype, w.rows, w.cols) +
                                 quant::weight_scale_bytes(w.dtype, w.rows, w.cols));
}

// Weights of the exact shapes, carved from one allocation and filled with random values on the GPU.
struct SyntheticWeights {
    ModelWeights w;
    void* base = nullptr;
    uint64_t bytes = 0;
};

struct WeightSlot {
    Weight* dst;
    DType dtype;
    int64_t rows, cols;
};

Result<SyntheticWeights> make_weights(CudaBackend& be, const ModelConfig& c, DType fmt) {
    SyntheticWeights sw;
    ModelWeights& w = sw.w;
    w.layers.resize(static_cast<size_t>(c.n_layers));
    std::vector<WeightSlot> slots;
    slots.push_back({&w.embedding, fmt, c.vocab_size, c.dim});
    for (auto& l : w.layers) {
        l.ew1.resize(static_cast<size_t>(c.n_experts));
        l.ew3.resize(static_cast<size_t>(c.n_experts));
        l.ew2.resize(static_cast<size_t>(c.n_experts));
        slots.push_back({&l.attn_norm, DType::f32, 1, c.dim});
        slots.push_back({&l.wq, fmt, c.q_dim(), c.dim});
        slots.push_back({&l.wk, fmt, c.kv_dim(), c.dim});
        slots.push_back({&l.wv, fmt, c.kv_dim(), c.dim});
        slots.push_back({&l.wo, fmt, c.dim, c.q_dim()});
        slots.push_back({&l.ffn_norm, DType::f32, 1, c.dim});
        slots.push_back({&l.router, DType::bf16, c.n_experts, c.dim});
        for (int64_t e = 0; e < c.n_experts; ++e) {
            slots.push_back({&l.ew1[static_cast<size_t>(e)], fmt, c.ffn_dim, c.dim});
            slots.push_back({&l.ew3[static_cast<size_t>(e)], fmt, c.ffn_dim, c.dim});
            slots.push_back({&l.ew2[static_cast<size_t>(e)], fmt, c.dim, c.ffn_dim});
        }
    }
    slots.push_back({&w.final_norm, DType::f32, 1, c.dim});
    slots.push_back({&w.lm_head, fmt, c.vocab_size, c.dim});

    uint64_t total = 0;
    for (const auto& s : slots)
        total += align_up(static_cast<uint64_t>(quant::weight_data_bytes(s.dtype, s.rows, s.cols))) +
                 align_up(static_cast<uint64_t>(quant::weight_scale_bytes(s.dtype, s.rows, s.cols)));
    HR_ASSIGN(sw.base, be.allocate(total, "synthetic weights"));
    sw.bytes = total;
    auto* p = static_cast<uint8_t*>(sw.base);
    cudaStream_t st = be.stream();
    uint64_t seed = 1;
    for (const auto& s : slots) {
        const auto db = static_cast<size_t>(quant::weight_data_bytes(s.dtype, s.rows, s.cols));
        const auto sb = static_cast<size_t>(quant::weight_scale_bytes(s.dtype, s.rows, s.cols));
        *s.dst = Weight{s.dtype, s.rows, s.cols, p, sb ? p + align_up(db) : nullptr};
        // Values with a standard deviation of about 1/sqrt(cols), so activations stay O(1).
        const float inv = 1.0f / std::sqrt(static_cast<float>(s.cols));
        switch (s.dtype) {
            case DType::q8:
                fill_q8(st, p, db, seed++);
                fill_f32(st, p + align_up(db), sb / 4, 0.5f * inv / 73.0f, 1.5f * inv / 73.0f, seed++);
                break;
            case DType::q4:
                HR_CHECK(db % 4 == 0);
                fill_bytes(st, p, db, seed++);
                fill_f16(st, p + align_up(db), sb / 2, 0.5f * inv / 4.6f, 1.5f * inv / 4.6f, seed++);
                break;
            case DType::bf16: fill_bf16(st, p, db / 2, -1.7f * inv, 1.7f * inv, seed++); break;
            default: fill_f32(st, p, db / 4, 0.8f, 1.2f, seed++); break;  // norm weights
        }
        p += align_up(db) + align_up(sb);
    }
    be.synchronize();
    return sw;
}

// Forwards every op to the CUDA backend; upload() is skipped while a graph is being captured (the
// batch was uploaded by an ordinary forward() just before).
class CaptureBackend final : public Backend {
public:
    explicit CaptureBackend(CudaBackend& be) : be_(be) {}
    DeviceKind kind() const override { return be_.kind(); }
    std::string name() const override { return be_.name(); }
    Result<void*> allocate(size_t b, std::string_view w) override { return be_.allocate(b, w); }
    void release(void* p) override { be_.release(p); }
    uint64_t allocation_count() const override { return be_.allocation_count(); }
    void upload(void*, const void*, size_t) override {}
    void download(void* d, const void* s, size_t b) override { be_.download(d, s, b); }
    void synchronize() override { be_.synchronize(); }
    void embed(Tensor o, Tensor i, const Weight& t) override { be_.embed(o, i, t); }
    void rms_norm(Tensor o, Tensor i, const Weight& w, float e) override { be_.rms_norm(o, i, w, e); }
    void add_rms_norm(Tensor o, Tensor x, Tensor y, const Weight& w, float e) override {
        be_.add_rms_norm(o, x, y, w, e);
    }
    void matmul(Tensor o, Tensor i, const Weight& w) override { be_.matmul(o, i, w); }
    void matmuls(Tensor i, std::span<const MatmulJob> j) override { be_.matmuls(i, j); }
    void rope(Tensor q, Tensor k, Tensor p, float t) override { be_.rope(q, k, p, t); }
    void attention(const AttentionArgs& a) override { be_.attention(a); }
    void silu_mul(Tensor o, Tensor g, Tensor u) override { be_.silu_mul(o, g, u); }
    void add(Tensor x, Tensor y) override { be_.add(x, y); }
    void add_bias(Tensor x, const Weight& b) override { be_.add_bias(x, b); }
    void moe_route(Tensor i, Tensor w, Tensor l, bool r) override { be_.moe_route(i, w, l, r); }
    void moe_experts(const MoeArgs& a) override { be_.moe_experts(a); }
    void gather_rows(Tensor o, Tensor i, Tensor r) override { be_.gather_rows(o, i, r); }

private:
    CudaBackend& be_;
};

// Times every op with a pair of CUDA events around it (the events themselves cost a little).
class TimingBackend final : public Backend {
public:
    explicit TimingBackend(CudaBackend& be) : be_(be) {}
    ~TimingBackend() override {
        for (auto e : pool_) HR_CUDA_CHECK(cudaEventDestroy(e));
    }
    DeviceKind kind() const override { return be_.kind(); }
    std::string name() const override { return be_.name(); }
    Result<void*> allocate(size_t b, std::string_view w) override { return be_.allocate(b, w); }
    void release(void* p) override { be_.release(p); }
    uint64_t allocation_count() const override { return be_.allocation_count(); }
    void upload(void* d, const void* s, size_t b) override { timed("upload", [&] { be_.upload(d, s, b); }); }
    void download(void* d, const void* s, size_t b) override { be_.download(d, s, b); }
    void synchronize() override { be_.synchronize(); }
    void embed(Tensor o, Tensor i, const Weight& t) override { timed("embed", [&] { be_.embed(o, i, t); }); }
    void rms_norm(Tensor o, Tensor i, const Weight& w, float e) override {
        timed("rms_norm", [&] { be_.rms_norm(o, i, w, e); });
    }
    void add_rms_norm(Tensor o, Tensor x, Tensor y, const Weight& w, float e) override {
        timed("add_rms_norm", [&] { be_.add_rms_norm(o, x, y, w, e); });
    }
    void matmul(Tensor o, Tensor i, const Weight& w) override {
        const char* what = w.rows == 32000 ? "matmul lm_head" : w.rows <= 64 ? "matmul router" : "matmul attention";
        timed(what, [&] { be_.matmul(o, i, w); });
    }
    void matmuls(Tensor i, std::span<const MatmulJob> j) override {
        timed("matmul qkv", [&] { be_.matmuls(i, j); });
    }
    void rope(Tensor q, Tensor k, Tensor p, float t) override { timed("rope", [&] { be_.rope(q, k, p, t); }); }
    void attention(const AttentionArgs& a) override { timed("attention", [&] { be_.attention(a); }); }
    void silu_mul(Tensor o, Tensor g, Tensor u) override { timed("silu_mul", [&] { be_.silu_mul(o, g, u); }); }
    void add(Tensor x, Tensor y) override { timed("add", [&] { be_.add(x, y); }); }
    void add_bias(Tensor x, const Weight& b) override { timed("add_bias", [&] { be_.add_bias(x, b); }); }
    void moe_route(Tensor i, Tensor w, Tensor l, bool r) override {
        timed("moe_route", [&] { be_.moe_route(i, w, l, r); });
    }
    void moe_experts(const MoeArgs& a) override { timed("moe_experts", [&] { be_.moe_experts(a); }); }
    void gather_rows(Tensor o, Tensor i, Tensor r) override {
        timed("gather_rows", [&] { be_.gather_rows(o, i, r); });
    }

    // op -> (calls, total ms) over the recorded steps; clears the record.
    std::map<std::string, std::pair<int, double>> collect() {
        be_.synchronize();
        std::map<std::string, std::pair<int, double>> out;
        for (const auto& r : records_) {
            float ms = 0.0f;
            HR_CUDA_CHECK(cudaEventElapsedTime(&ms, pool_[r.ev], pool_[r.ev + 1]));
            auto& slot = out[r.op];
            slot.first += 1;
            slot.second += ms;
        }
        records_.clear();
        used_ = 0;
        return out;
    }

private:
    struct Rec {
        std::string op;
        size_t ev;
    };
    template <class F>
    void timed(const char* op, F&& f) {
        if (used_ + 2 > pool_.size()) {
            for (int i = 0; i < 2; ++i) {
                cudaEvent_t e;
                HR_CUDA_CHECK(cudaEventCreate(&e));
                pool_.push_back(e);
            }
        }
        const size_t ev = used_;
        used_ += 2;
        HR_CUDA_CHECK(cudaEventRecord(pool_[ev], be_.stream()));
        f();
        HR_CUDA_CHECK(cudaEventRecord(pool_[ev + 1], be_.stream()));
        records_.push_back({op, ev});
    }
    CudaBackend& be_;
    std::vector<cudaEvent_t> pool_;
    size_t used_ = 0;
    std::vector<Rec> records_;
};

struct CardInfo {
    std::string name;
    double copy_gbs = 0.0;      // device-to-device copy, bytes read + written per second / 1e9
    double bf16_tflops = 0.0;   // 8192^3 cuBLAS bf16 GEMM
    size_t total_mem = 0;
};

// Measures the card with a separate backend whose memory is gone before the model is built.
Result<CardInfo> measure_card(int device) {
    CardInfo info;
    HR_ASSIGN(auto be, CudaBackend::create(device));
    cudaDeviceProp prop{};
    HR_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    info.name = prop.name;
    info.total_mem = prop.totalGlobalMem;
    const size_t bytes = size_t{2} << 30;
    HR_ASSIGN(void* src, be->allocate(bytes, "copy bandwidth source"));
    HR_ASSIGN(void* dst, be->allocate(bytes, "copy bandwidth destination"));
    cudaStream_t s = be->stream();
    fill_bytes(s, src, bytes, 7);
    fill_bytes(s, dst, bytes, 8);
    cudaEvent_t e0, e1;
    HR_CUDA_CHECK(cudaEventCreate(&e0));
    HR_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<double> ms;
    for (int r = 0; r < 12; ++r) {
        HR_CUDA_CHECK(cudaEventRecord(e0, s));
        HR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
        HR_CUDA_CHECK(cudaEventRecord(e1, s));
        HR_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0.0f;
        HR_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 2) ms.push_back(t);
    }
    info.copy_gbs = 2.0 * static_cast<double>(bytes) / (median(ms) * 1e-3) / 1e9;
    // GEMM rate on the same buffers: a, b from src (random bits as bf16 may hold NaN: use fill_bf16).
    const int n = 8192;
    const size_t mat = static_cast<size_t>(n) * n * 2;
    auto* a = static_cast<uint8_t*>(src);
    fill_bf16(s, a, static_cast<size_t>(n) * n, -1.0f, 1.0f, 11);
    fill_bf16(s, a + mat, static_cast<size_t>(n) * n, -1.0f, 1.0f, 12);
    cublasHandle_t h;
    HR_CUBLAS_CHECK(cublasCreate(&h));
    HR_CUBLAS_CHECK(cublasSetStream(h, s));
    const float gemm_ms = bf16_gemm_ms(s, h, a, a + mat, dst, n, 5);
    HR_CUBLAS_CHECK(cublasDestroy(h));
    info.bf16_tflops = 2.0 * n * static_cast<double>(n) * n / (gemm_ms * 1e-3) / 1e12;
    HR_CUDA_CHECK(cudaEventDestroy(e0));
    HR_CUDA_CHECK(cudaEventDestroy(e1));
    be->release(src);
    be->release(dst);
    return info;
}

std::string fmt_table(const std::map<std::string, std::pair<int, double>>& ops, int steps) {
    double total = 0.0;
    for (const auto& [op, v] : ops) total += v.second;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [op, v] : ops) {
        char line[200];
        std::snprintf(line, sizeof line, "| %-18s | %6d | %9.3f | %5.1f%% |\n", op.c_str(), v.first / steps,
                      v.second / steps, 100.0 * v.second / total);
        rows.push_back({-v.second, line});
    }
    std::sort(rows.begin(), rows.end());
    std::string out = "| op                 | calls  | ms / step | share  |\n|---|---|---|---|\n";
    for (auto& r : rows) out += r.second;
    return out;
}

std::string utc_now(const char* f) {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, f, &tm);
    return buf;
}

}  // namespace

int run_synthetic_bench(const BenchOptions& o) {
    if (o.model != "mixtral-8x7b") {
        std::fprintf(stderr, "bench: unknown synthetic model '%s' (expected mixtral-8x7b)\n", o.model.c_str());
        return 2;
    }
    if (o.weights != DType::q8 && o.weights != DType::q4) {
        std::fprintf(stderr, "bench: weights must be int8 or int4\n");
        return 2;
    }
    const ModelConfig cfg = mixtral_8x7b();
    auto card = measure_card(o.device);
    if (!card.ok()) {
        std::fprintf(stderr, "bench: %s\n", card.error().message.c_str());
        return 1;
    }
    std::printf("card: %s, copy bandwidth %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n", card->name.c_str(),
                card->copy_gbs, card->bf16_tflops);

    cuda::CudaOptions copts;
    copts.gemv_block_k = o.gemv_block_k;
    copts.gemv_tensor_cores = o.gemv_tensor_cores;
    copts.grouped_max_tokens = o.grouped_max_tokens;
    copts.prefill_qgemm = o.prefill_qgemm;
    auto created = CudaBackend::create(o.device, copts);
    if (!created.ok()) {
        std::fprintf(stderr, "bench: %s\n", created.error().message.c_str());
        return 1;
    }
    CudaBackend& be = **created;
    HR_CUDA_CHECK(cudaDeviceSynchronize());
    size_t free0 = 0, total = 0;
    HR_CUDA_CHECK(cudaMemGetInfo(&free0, &total));
    const uint64_t allocs0 = be.allocation_count();

    // The plan: weights, KV cache (--kv-cache, the longest context plus one block), activations for the
    // longest prompt, the backend's workspaces.
    const int max_ctx = std::max(*std::max_element(o.contexts.begin(), o.contexts.end()),
                                 *std::max_element(o.prompts.begin(), o.prompts.end()));
    const int block = 16;
    StepLimits lim;
    lim.max_tokens = *std::max_element(o.prompts.begin(), o.prompts.end());
    lim.max_seqs = o.batches.empty() ? 1 : std::max(1, *std::max_element(o.batches.begin(), o.batches.end()));
    lim.max_blocks_per_seq = (max_ctx + block - 1) / block;
    cuda::WorkspaceSpec spec;
    spec.max_tokens = lim.max_tokens;
    spec.max_cols = std::max({cfg.dim, cfg.q_dim(), cfg.max_ffn_dim()});
    spec.max_rows = std::max({cfg.vocab_size, cfg.max_ffn_dim(), cfg.q_dim()});
    spec.n_heads = cfg.n_heads;
    spec.n_kv_heads = cfg.n_kv_heads;
    spec.head_dim = cfg.head_dim;
    spec.n_experts = cfg.n_experts;
    spec.n_experts_active = cfg.n_experts_active;

    auto t_build = std::chrono::steady_clock::now();
    auto sw = make_weights(be, cfg, o.weights);
    if (!sw.ok()) {
        std::fprintf(stderr, "bench: %s\n", sw.error().message.c_str());
        return 1;
    }
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_build).count();
    const uint64_t kv_bytes = kv_cache_bytes(cfg, lim.max_blocks_per_seq, block, o.kv_dtype);
    const uint64_t act_bytes = activation_bytes(cfg, lim);
    auto kv_base = be.allocate(kv_bytes, "kv cache");
    auto act_base = kv_base.ok() ? be.allocate(act_bytes, "activations") : Result<void*>(kv_base.error());
    if (!act_base.ok()) {
        std::fprintf(stderr, "bench: %s\n", act_base.error().message.c_str());
        return 1;
    }
    Status ws = be.reserve_workspace(spec);
    if (!ws.ok()) {
        std::fprintf(stderr, "bench: %s\n", ws.error().message.c_str());
        return 1;
    }
    KvCache kv = carve_kv_cache(cfg, lim.max_blocks_per_seq, block, o.kv_dtype, *kv_base);
    Activations act = carve_activations(cfg, lim, *act_base);
    // Cached keys/values of the "earlier" tokens: values in [-1, 1], or random codes with scales that put
    // them in about that range.
    if (is_quantized_kv(o.kv_dtype)) {
        uint64_t seed = 99;
        const float qmax = kv_code_max(o.kv_dtype);
        for (const KvLayer& l : kv.layers) {
            for (const Tensor* t : {&l.k, &l.v}) {
                if (o.kv_dtype == DType::i8) fill_q8(be.stream(), t->data, t->bytes(), seed++);
                else fill_e4m3(be.stream(), t->data, t->bytes(), seed++);
            }
            for (const Tensor* t : {&l.k_scale, &l.v_scale})
                fill_f32(be.stream(), t->data, static_cast<size_t>(t->numel()), 0.5f / qmax, 1.5f / qmax, seed++);
        }
    } else if (o.kv_dtype == DType::bf16) {
        fill_bf16(be.stream(), *kv_base, kv_bytes / 2, -1.0f, 1.0f, 99);
    } else {
        fill_f16(be.stream(), *kv_base, kv_bytes / 2, -1.0f, 1.0f, 99);
    }
    be.synchronize();
    const ModelWeights& W = sw->w;

    // Start-up, part two: one decode graph per context (graph instantiation takes device memory too).
    auto decode_batch = [&](int ctx) {
        StepBatch b;
        b.token_ids = {1234};
        b.positions = {ctx - 1};
        b.token_seq = {0};
        b.slot_mapping = {ctx - 1};  // identity block table
        b.block_tables.resize(static_cast<size_t>(lim.max_blocks_per_seq));
        std::iota(b.block_tables.begin(), b.block_tables.end(), 0);
        b.logit_rows = {0};
        return b;
    };
    CaptureBackend cap(be);
    std::vector<int> graphs;
    for (int ctx : o.contexts) {
        const StepBatch b = decode_batch(ctx);
        Status st = forward(be, cfg, W, lim, act, kv, b);  // uploads the batch the graph will read
        if (!st.ok()) {
            std::fprintf(stderr, "bench: %s\n", st.error().message.c_str());
            return 1;
        }
        auto graph = be.capture_graph([&] {
            Status s3 = forward(cap, cfg, W, lim, act, kv, b);
            HR_CHECK_MSG(s3.ok(), s3.ok() ? "" : s3.error().message);
            next_token(be.stream(), act.token_ids.as<int32_t>(), cfg.vocab_size);
        });
        if (!graph.ok()) {
            std::fprintf(stderr, "bench: %s\n", graph.error().message.c_str());
            return 1;
        }
        graphs.push_back(*graph);
    }
    be.synchronize();
    size_t free1 = 0;
    HR_CUDA_CHECK(cudaMemGetInfo(&free1, &total));
    const uint64_t planned = sw->bytes + kv_bytes + act_bytes + be.workspace_bytes(spec);
    const uint64_t used = free0 - free1;
    const uint64_t allocs_ready = be.allocation_count();
    std::printf("memory: planned %.3f GB, cudaMemGetInfo used %.3f GB (%+.3f%%), %llu allocations; weights %.2f GB "
                "generated in %.2f s\n",
                planned / 1e9, used / 1e9, 100.0 * (static_cast<double>(used) - planned) / planned,
                static_cast<unsigned long long>(allocs_ready - allocs0), sw->bytes / 1e9, build_s);

    std::ostringstream md;
    const std::string fmt_name(dtype_name(o.weights));
    md << "# Synthetic Mixtral-8x7B, " << fmt_name << " weights\n\n"
       << "- date: " << utc_now("%Y-%m-%d %H:%M UTC") << "\n- card: " << card->name << " ("
       << card->total_mem / (1u << 20) << " MiB)\n- commit: " << (o.commit.empty() ? "unknown" : o.commit)
       << "\n- command: `headroom bench --synthetic mixtral-8x7b --weights " << fmt_name
       << (o.gemv_tensor_cores ? "" : o.gemv_block_k ? " --gemv block" : " --gemv warp")
       << (o.kv_dtype == DType::f16 ? "" : " --kv-cache " + std::string(kv_dtype_name(o.kv_dtype)))
       << (o.grouped_max_tokens == 64 ? "" : " --grouped-max " + std::to_string(o.grouped_max_tokens))
       << (o.prefill_qgemm ? "" : " --prefill-gemm cublas") << "`\n"
       << "- measured copy bandwidth: " << static_cast<int>(card->copy_gbs)
       << " GB/s (2 GiB device-to-device cudaMemcpy, bytes read + written, median of 10)\n"
       << "- measured bf16 GEMM: " << static_cast<int>(card->bf16_tflops) << " TFLOP/s (cuBLAS 8192^3)\n"
       << "- KV cache " << kv_dtype_name(o.kv_dtype)
       << (is_quantized_kv(o.kv_dtype) ? " (f32 scale per token and kv head)" : "") << ", block 16; weights random (" << fmt_name << " data, random scales), generated on the GPU\n";
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "- device memory: planned %.3f GB (weights %.3f, KV %.3f, activations %.3f, workspaces %.3f), "
                  "cudaMemGetInfo used %.3f GB: %+.3f%% of the plan\n",
                  planned / 1e9, sw->bytes / 1e9, kv_bytes / 1e9, act_bytes / 1e9, be.workspace_bytes(spec) / 1e9,
                  used / 1e9, 100.0 * (static_cast<double>(used) - planned) / planned);
    md << buf;

    // Bytes one decode token must read: attention weights, router, 2 of 8 experts, norms, lm_head, one
    // embedding row, and the KV cache of the context (and write one K/V row).
    uint64_t per_token_weights = wbytes(W.lm_head) + wbytes(W.final_norm) + wbytes(W.embedding) / cfg.vocab_size;
    for (const auto& l : W.layers) {
        per_token_weights += wbytes(l.wq) + wbytes(l.wk) + wbytes(l.wv) + wbytes(l.wo) + wbytes(l.router) +
                             wbytes(l.attn_norm) + wbytes(l.ffn_norm);
        per_token_weights += static_cast<uint64_t>(cfg.n_experts_active) *
                             (wbytes(l.ew1[0]) + wbytes(l.ew3[0]) + wbytes(l.ew2[0]));
    }

    // --- decode -------------------------------------------------------------------------------------------
    md << "\n## Decode, batch 1 (CUDA graph of one forward step)\n\n"
       << "| context | ms / token (graph) | tok/s (graph) | ms / token (no graph) | GB / token | achieved GB/s "
          "| fraction of copy bandwidth |\n|---|---|---|---|---|---|---|\n";
    std::string decode_breakdown;
    std::vector<std::string> summary;
    for (size_t gi = 0; gi < o.contexts.size(); ++gi) {
        const int ctx = o.contexts[gi];
        const StepBatch b = decode_batch(ctx);
        Status st = forward(be, cfg, W, lim, act, kv, b);
        if (!st.ok()) {
            std::fprintf(stderr, "bench: %s\n", st.error().message.c_str());
            return 1;
        }
        be.synchronize();
        // Without a graph: forward() uploads the batch and launches ~500 kernels from the host.
        std::vector<double> plain;
        for (int i = 0; i < std::max(5, o.iters / 5); ++i) {
            auto t0 = std::chrono::steady_clock::now();
            Status s2 = forward(be, cfg, W, lim, act, kv, b);
            be.synchronize();
            if (!s2.ok()) return 1;
            plain.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        const int graph = graphs[gi];
        cudaEvent_t e0, e1;
        HR_CUDA_CHECK(cudaEventCreate(&e0));
        HR_CUDA_CHECK(cudaEventCreate(&e1));
        for (int i = 0; i < 3; ++i) be.launch_graph(graph);
        std::vector<double> ms;
        for (int i = 0; i < o.iters; ++i) {
            HR_CUDA_CHECK(cudaEventRecord(e0, be.stream()));
            be.launch_graph(graph);
            HR_CUDA_CHECK(cudaEventRecord(e1, be.stream()));
            HR_CUDA_CHECK(cudaEventSynchronize(e1));
            float t = 0.0f;
            HR_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
            ms.push_back(t);
        }
        HR_CUDA_CHECK(cudaEventDestroy(e0));
        HR_CUDA_CHECK(cudaEventDestroy(e1));
        std::vector<float> logits(static_cast<size_t>(cfg.vocab_size));
        be.download(logits.data(), act.logits.data, logits.size() * sizeof(float));
        const size_t bad = static_cast<size_t>(std::count_if(logits.begin(), logits.end(), [](float v) {
            return !std::isfinite(v);
        }));
        const uint64_t kv_read = static_cast<uint64_t>(ctx) * kv_bytes_per_token(cfg, o.kv_dtype);
        const double bytes = static_cast<double>(per_token_weights + kv_read);
        const double t = median(ms);
        const double gbs = bytes / (t * 1e-3) / 1e9;
        std::snprintf(buf, sizeof buf, "| %d | %.3f | %.1f | %.3f | %.3f | %.0f | %.1f%% |\n", ctx, t, 1e3 / t,
                      median(plain), bytes / 1e9, gbs, 100.0 * gbs / card->copy_gbs);
        md << buf;
        std::snprintf(buf, sizeof buf, "decode ctx %d: %.1f tok/s, %.0f GB/s = %.1f%% of copy%s", ctx, 1e3 / t, gbs,
                      100.0 * gbs / card->copy_gbs, bad ? " (NON-FINITE LOGITS)" : "");
        summary.push_back(buf);
        if (bad) std::printf("warning: %zu non-finite logits after decode at context %d\n", bad, ctx);
        if (ctx == o.contexts.back()) {
            TimingBackend tb(be);
            const int steps = 5;
            for (int i = 0; i < steps; ++i) {
                Status s4 = forward(tb, cfg, W, lim, act, kv, b);
                if (!s4.ok()) return 1;
            }
            decode_breakdown = fmt_table(tb.collect(), steps);
            md << "\nPer-op time of one decode step at context " << ctx
               << " (no graph; CUDA events around each op):\n\n" << decode_breakdown;
        }
    }

    // --- batched decode ---------------------------------------------------------------------------------------
    // B sequences, one token each, their contexts side by side in the KV cache; distinct token ids, so
    // the tokens route to different experts. Launched op by op (no graph), median of 10 steps.
    if (!o.batches.empty()) {
        md << "\n## Decode, batched (B sequences, one token each; ops launched from the host, no graph)\n\n"
           << "| batch | context per sequence | ms / step | generated tok/s |\n|---|---|---|---|\n";
        const int64_t total_blocks = lim.max_blocks_per_seq;
        for (int B : o.batches) {
            const int64_t bps = total_blocks / B;  // blocks per sequence
            if (bps < 1) {
                std::snprintf(buf, sizeof buf, "| %d | (the KV cache holds %lld blocks: fewer than one per sequence) | | |\n",
                              B, static_cast<long long>(total_blocks));
                md << buf;
                continue;
            }
            const int ctx = static_cast<int>(std::min<int64_t>(512, bps * block));
            StepBatch b;
            for (int i = 0; i < B; ++i) {
                b.token_ids.push_back(static_cast<int32_t>((1234 + 7919 * i) % cfg.vocab_size));
                b.positions.push_back(ctx - 1);
                b.token_seq.push_back(i);
                b.slot_mapping.push_back(static_cast<int32_t>((i * bps + (ctx - 1) / block) * block + (ctx - 1) % block));
                for (int64_t j = 0; j < lim.max_blocks_per_seq; ++j)
                    b.block_tables.push_back(static_cast<int32_t>(j < bps ? i * bps + j : 0));
                b.logit_rows.push_back(i);
            }
            std::vector<double> ms;
            for (int it = 0; it < 13; ++it) {
                auto t0 = std::chrono::steady_clock::now();
                Status st = forward(be, cfg, W, lim, act, kv, b);
                be.synchronize();
                if (!st.ok()) {
                    std::fprintf(stderr, "bench: batched decode: %s\n", st.error().message.c_str());
                    return 1;
                }
                if (it >= 3) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            const double t = median(ms);
            std::snprintf(buf, sizeof buf, "| %d | %d | %.3f | %.0f |\n", B, ctx, t, B * 1e3 / t);
            md << buf;
            std::snprintf(buf, sizeof buf, "decode batch %d (context %d): %.3f ms / step, %.0f tok/s", B, ctx, t, B * 1e3 / t);
            summary.push_back(buf);
            if (B == o.batches.back()) {
                TimingBackend tb(be);
                for (int i = 0; i < 3; ++i) {
                    Status s5 = forward(tb, cfg, W, lim, act, kv, b);
                    if (!s5.ok()) return 1;
                }
                md << "\nPer-op time of one batch-" << B << " decode step (CUDA events around each op):\n\n"
                   << fmt_table(tb.collect(), 3);
            }
        }
    }

    // --- prefill ------------------------------------------------------------------------------------------
    md << "\n## Prefill (one prompt, one forward step; time to first token = prefill time + nothing else)\n\n"
       << "| prompt | ms (TTFT) | tok/s | floor ms (FLOPs / measured GEMM rate) |\n|---|---|---|---|\n";
    for (int P : o.prompts) {
        StepBatch b;
        b.token_ids.resize(static_cast<size_t>(P));
        b.positions.resize(static_cast<size_t>(P));
        for (int i = 0; i < P; ++i) {
            b.token_ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919 + 13) % cfg.vocab_size);
            b.positions[static_cast<size_t>(i)] = i;
        }
        b.token_seq.assign(static_cast<size_t>(P), 0);
        b.slot_mapping = b.positions;
        b.block_tables.resize(static_cast<size_t>(lim.max_blocks_per_seq));
        std::iota(b.block_tables.begin(), b.block_tables.end(), 0);
        b.logit_rows = {P - 1};
        std::vector<double> ms;
        for (int i = 0; i < 4; ++i) {
            be.synchronize();
            auto t0 = std::chrono::steady_clock::now();
            Status st = forward(be, cfg, W, lim, act, kv, b);
            be.synchronize();
            if (!st.ok()) {
                std::fprintf(stderr, "bench: %s\n", st.error().message.c_str());
                return 1;
            }
            const auto dt = std::chrono::steady_clock::now() - t0;
            if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(dt).count());  // the first warms up
        }
        // FLOPs: 2 per active weight per token, plus causal attention (QK and PV).
        const double active = static_cast<double>(per_token_weights) / (o.weights == DType::q8 ? 1.0 : 0.5);
        const double flops = 2.0 * active * P + 2.0 * 2.0 * P * (P / 2.0) * cfg.q_dim() * cfg.n_layers;
        const double floor_ms = flops / (card->bf16_tflops * 1e12) * 1e3;
        const double t = median(ms);
        std::snprintf(buf, sizeof buf, "| %d | %.1f | %.0f | %.1f |\n", P, t, P / (t * 1e-3), floor_ms);
        md << buf;
        std::snprintf(buf, sizeof buf, "prefill %d: %.1f ms (%.0f tok/s; floor %.1f ms)", P, t, P / (t * 1e-3),
                      floor_ms);
        summary.push_back(buf);
        if (P == o.prompts.back()) {
            TimingBackend tb(be);
            Status st = forward(tb, cfg, W, lim, act, kv, b);
            if (!st.ok()) return 1;
            md << "\nPer-op time of the " << P << "-token prefill (CUDA events around each op):\n\n"
               << fmt_table(tb.collect(), 1);
        }
    }
    const bool no_alloc = be.allocation_count() == allocs_ready;
    size_t free2 = 0;
    HR_CUDA_CHECK(cudaMemGetInfo(&free2, &total));
    const double free_delta_mib = (static_cast<double>(free1) - static_cast<double>(free2)) / (1 << 20);
    std::snprintf(buf, sizeof buf,
                  "\nAllocations through the backend after start-up: %llu. cudaMemGetInfo free memory after start-up "
                  "(graphs captured) minus at the end: %.1f MiB.\n",
                  static_cast<unsigned long long>(be.allocation_count() - allocs_ready), free_delta_mib);
    md << buf;

    // --- classification (after the allocation check: its engine allocates its own KV and activations once) ---
    {
        constexpr int kDocTokens = 2000, kLabels = 5;
        LoadedModel lm;
        lm.cfg = cfg;
        lm.weights = W;
        // Through an engine's scheduler, as serve and classify run it. No prefix cache: every iteration
        // pays for the whole document (the number is a cold document's).
        constexpr int kBlock = 16;
        const int64_t ctx = kDocTokens + 64;
        auto le = LocalEngine::start(be, lm, {.context = ctx, .max_seqs = 16,
                                              // chunks no larger than the workspaces reserved above
                                              .max_tokens = std::min<int64_t>(2048, lim.max_tokens),
                                              .n_kv_blocks = (ctx + kBlock - 1) / kBlock + kLabels * 2,
                                              .block_size = kBlock, .kv_dtype = o.kv_dtype,
                                              .prefix_caching = false});
        if (!le.ok()) {
            std::fprintf(stderr, "bench: classify: %s\n", le.error().message.c_str());
            return 1;
        }
        LabelScorer scorer((*le)->engine());
        std::vector<int32_t> prompt(kDocTokens);
        for (int i = 0; i < kDocTokens; ++i) prompt[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919 + 13) % cfg.vocab_size);
        std::vector<std::vector<int32_t>> labels;
        for (int j = 0; j < kLabels; ++j) labels.push_back({static_cast<int32_t>(1000 + 17 * j), static_cast<int32_t>(2000 + j), 2});
        std::vector<double> ms;
        for (int i = 0; i < 4; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            auto r = scorer.score(prompt, labels);
            if (!r.ok()) {
                std::fprintf(stderr, "bench: classify: %s\n", r.error().message.c_str());
                return 1;
            }
            if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::snprintf(buf, sizeof buf,
                      "\n## Classification\n\nA %d-token document, %d labels of 3 tokens (end token included): "
                      "through the engine's scheduler (the prompt's full blocks once in 2048-token chunks, then the labels "
                      "batched), no prefix cache; median of 3 after a warm-up: **%.1f ms** per document.\n",
                      kDocTokens, kLabels, median(ms));
        md << buf;
        std::snprintf(buf, sizeof buf, "classify %d-token document, %d labels: %.1f ms", kDocTokens, kLabels, median(ms));
        summary.push_back(buf);
    }
    std::printf("%s\n", md.str().c_str());
    if (!o.out.empty()) {
        std::ofstream f(o.out);
        f << md.str();
        if (!f) std::fprintf(stderr, "bench: cannot write %s\n", o.out.c_str());
    }
    std::printf("== summary (%s, %s) ==\n", card->name.c_str(), fmt_name.c_str());
    for (const auto& s : summary) std::printf("%s\n", s.c_str());
    std::printf("copy bandwidth %.0f GB/s; memory used/plan %+.3f%%; allocations after start-up: %s; free memory "
                "change during the run %.1f MiB\n",
                card->copy_gbs, 100.0 * (static_cast<double>(used) - planned) / planned, no_alloc ? "none" : "SOME",
                free_delta_mib);
    be.release(*act_base);
    be.release(*kv_base);
    be.release(sw->base);
    return no_alloc ? 0 : 1;
}

}  // namespace hr::bench

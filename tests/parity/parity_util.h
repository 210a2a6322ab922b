// Helpers of the CUDA parity tests: one shared CUDA backend (skipped without a GPU), random host data,
// the same data placed on the CPU oracle and on the GPU, and error measures.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/half.h"
#include "quant/formats.h"
#include "quant/quantize.h"

namespace hr::test {

// Workspaces large enough for every op-level parity test.
inline cuda::WorkspaceSpec parity_workspace_spec() {
    cuda::WorkspaceSpec s;
    s.max_tokens = 256;
    s.max_cols = 1024;
    s.max_rows = 4096;
    s.n_heads = 8;
    s.n_kv_heads = 1;
    s.head_dim = 256;
    s.n_experts = 8;
    s.n_experts_active = 4;
    return s;
}

// A CUDA backend with the parity workspaces reserved; null (and a test failure) when creation fails.
inline std::unique_ptr<cuda::CudaBackend> make_parity_gpu(cuda::CudaOptions opts) {
    if (cuda::cuda_device_count() == 0) return nullptr;
    auto r = cuda::CudaBackend::create(0, opts);
    if (!r.ok()) {
        ADD_FAILURE() << r.error().message;
        return nullptr;
    }
    Status st = (*r)->reserve_workspace(parity_workspace_spec());
    if (!st.ok()) {
        ADD_FAILURE() << st.error().message;
        return nullptr;
    }
    return std::move(r).value();
}

// The kernels a parity run must cover, the defaults' off-by-default candidates included (the int4 / int8
// tensor-core GEMVs, the int4 grouped tensor-core experts, the quantized prefill GEMM, the fused decode
// attention and router of issue 15): a GPU run of the suite is what lets them become defaults.
inline cuda::CudaOptions candidate_options() {
    cuda::CudaOptions o;
    o.gemv_tensor_cores = true;
    o.grouped_tensor_cores_q4 = true;
    o.prefill_qgemm = true;
    o.fused_decode_attention = true;
    o.fused_router = true;
    return o;
}

// One CUDA backend per test process (a context takes a while to create); null without a device.
inline cuda::CudaBackend* gpu() {
    static std::unique_ptr<cuda::CudaBackend> be = make_parity_gpu(candidate_options());
    return be.get();
}

// A second backend with the int4 / int8 tensor-core GEMVs off (CudaOptions::gemv_tensor_cores): the dp4a
// and f32 GEMV kernels stay covered, since they remain selectable (bench --gemv block) and serve the
// shapes the tensor-core kernels do not take.
inline cuda::CudaBackend* gpu_no_gemv_tc() {
    static std::unique_ptr<cuda::CudaBackend> be = [] {
        cuda::CudaOptions o;
        o.gemv_tensor_cores = false;
        o.grouped_tensor_cores_q4 = false;
        o.prefill_qgemm = false;
        o.fused_decode_attention = false;  // and the unfused rope, KV write, attention, combine, router path
        o.fused_router = false;
        return make_parity_gpu(o);
    }();
    return be.get();
}

// Both of the above (the ones that exist).
inline std::vector<cuda::CudaBackend*> gpus() {
    std::vector<cuda::CudaBackend*> v;
    for (cuda::CudaBackend* b : {gpu(), gpu_no_gemv_tc()})
        if (b != nullptr) v.push_back(b);
    return v;
}

// Whether a GEMV of n tokens over `cols` inputs runs on the tensor cores (gemv_tc.cu) on this backend:
// int4 in whole 128-column groups, int8 in 64-column steps, 1 to 8 tokens.
inline bool gemv_on_tensor_cores(const cuda::CudaBackend& be, DType dt, int64_t cols, int64_t n) {
    return be.options().gemv_tensor_cores && n >= 1 && n <= 8 &&
           ((dt == DType::q4 && cols % 128 == 0) || (dt == DType::q8 && cols % 64 == 0));
}

inline cpu::CpuBackend& cpu_oracle() {
    static cpu::CpuBackend be;
    return be;
}

#define HR_REQUIRE_GPU()                                                  \
    do {                                                                  \
        if (::hr::test::gpu() == nullptr) GTEST_SKIP() << "no CUDA device"; \
    } while (0)

struct Rng {
    std::mt19937_64 gen;
    explicit Rng(uint64_t seed) : gen(seed) {}
    std::vector<float> normal(size_t n, float scale = 1.0f) {
        std::normal_distribution<float> d(0.0f, scale);
        std::vector<float> v(n);
        for (auto& x : v) x = d(gen);
        return v;
    }
    std::vector<int32_t> ints(size_t n, int32_t lo, int32_t hi) {  // [lo, hi]
        std::uniform_int_distribution<int32_t> d(lo, hi);
        std::vector<int32_t> v(n);
        for (auto& x : v) x = d(gen);
        return v;
    }
};

// Backend memory holding a copy of host bytes; released with the buffer.
class DevBuf {
public:
    DevBuf() = default;
    DevBuf(Backend& be, const void* host, size_t bytes) : be_(&be) {
        auto r = be.allocate(bytes == 0 ? 1 : bytes, "parity test");
        HR_CHECK_MSG(r.ok(), r.ok() ? "" : r.error().message);
        p_ = *r;
        if (bytes) be.upload(p_, host, bytes);
    }
    DevBuf(DevBuf&& o) noexcept : be_(o.be_), p_(o.p_) { o.p_ = nullptr; }
    DevBuf& operator=(DevBuf&& o) noexcept {
        std::swap(be_, o.be_);
        std::swap(p_, o.p_);
        return *this;
    }
    ~DevBuf() {
        if (p_) be_->release(p_);
    }
    void* get() const { return p_; }

private:
    Backend* be_ = nullptr;
    void* p_ = nullptr;
};

// A tensor of host data placed on a backend.
struct DevTensor {
    DevBuf buf;
    Tensor t;
};

template <class T>
DevTensor place(Backend& be, const std::vector<T>& host, DType dt, std::initializer_list<int64_t> shape) {
    DevTensor d{DevBuf(be, host.data(), host.size() * sizeof(T)), {}};
    d.t = Tensor::make(dt, d.buf.get(), shape);
    HR_CHECK(static_cast<size_t>(d.t.numel()) == host.size());
    return d;
}

// An f32 output tensor filled with NaN, so that an element the op does not write shows up.
inline DevTensor poisoned(Backend& be, std::initializer_list<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<float> nan(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    return place(be, nan, DType::f32, shape);
}

template <class T = float>
std::vector<T> fetch(Backend& be, const Tensor& t) {
    std::vector<T> v(static_cast<size_t>(t.numel()));
    be.synchronize();
    be.download(v.data(), t.data, v.size() * sizeof(T));
    return v;
}

// A weight in a storage dtype, held on the host: random N(0, scale) values, converted or quantized.
struct HostWeight {
    DType dtype = DType::f32;
    int64_t rows = 0, cols = 0;
    std::vector<uint8_t> data, scales;

    static HostWeight random(Rng& rng, DType dt, int64_t rows, int64_t cols, float scale) {
        HostWeight w{dt, rows, cols, {}, {}};
        const std::vector<float> f = rng.normal(static_cast<size_t>(rows * cols), scale);
        w.data.resize(static_cast<size_t>(quant::weight_data_bytes(dt, rows, cols)));
        w.scales.resize(static_cast<size_t>(quant::weight_scale_bytes(dt, rows, cols)));
        if (dt == DType::q8 || dt == DType::q4) {
            Status st = quant::quantize_matrix(dt, f.data(), DType::f32, rows, cols, w.data.data(), w.scales.data());
            HR_CHECK_MSG(st.ok(), st.ok() ? "" : st.error().message);
            return w;
        }
        for (size_t i = 0; i < f.size(); ++i) {
            if (dt == DType::f32) std::memcpy(w.data.data() + 4 * i, &f[i], 4);
            else {
                const uint16_t h = dt == DType::f16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
                std::memcpy(w.data.data() + 2 * i, &h, 2);
            }
        }
        return w;
    }
};

struct DevWeight {
    DevBuf data, scales;
    Weight w;
};

inline DevWeight place(Backend& be, const HostWeight& h) {
    DevWeight d{DevBuf(be, h.data.data(), h.data.size()), DevBuf(be, h.scales.data(), h.scales.size()), {}};
    d.w = Weight{h.dtype, h.rows, h.cols, d.data.get(), h.scales.empty() ? nullptr : d.scales.get()};
    return d;
}

struct Err {
    double rel_l2 = 0.0;
    double max_abs = 0.0;
    bool shapes_match = true;
    bool nan_mismatch = false;  // a NaN (or unwritten element) on one side only
};

inline Err compare(const std::vector<float>& got, const std::vector<float>& ref) {
    Err e;
    e.shapes_match = got.size() == ref.size();
    double d2 = 0.0, r2 = 0.0;
    for (size_t i = 0; i < got.size() && i < ref.size(); ++i) {
        if (std::isnan(got[i]) != std::isnan(ref[i])) e.nan_mismatch = true;
        if (std::isnan(ref[i])) continue;
        const double d = static_cast<double>(got[i]) - ref[i];
        d2 += d * d;
        r2 += static_cast<double>(ref[i]) * ref[i];
        e.max_abs = std::max(e.max_abs, std::abs(d));
    }
    e.rel_l2 = r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
    return e;
}

inline ::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& ref, double tol) {
    const Err e = compare(got, ref);
    if (e.shapes_match && !e.nan_mismatch && e.rel_l2 <= tol) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "rel_l2 " << e.rel_l2 << " (tolerance " << tol << "), max_abs "
                                         << e.max_abs << (e.nan_mismatch ? ", NaN or unwritten element" : "")
                                         << (e.shapes_match ? "" : ", sizes differ");
}

}  // namespace hr::test

// CPU backend: memory (counted allocations) and the small element-wise ops.
#include "backend/cpu/cpu_backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/thread_pool.h"

namespace hr::cpu {

std::string CpuBackend::name() const { return "cpu"; }

Result<void*> CpuBackend::allocate(size_t bytes, std::string_view what) {
    const size_t rounded = (bytes + 255) / 256 * 256;
    void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
    if (!p) return errorf("cpu backend: cannot allocate {} bytes for {}", bytes, what);
    allocations_.fetch_add(1);
    return p;
}

void CpuBackend::release(void* p) { std::free(p); }

void CpuBackend::upload(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::download(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                           size_t rows) {
    // note: ops run in call order on the calling thread, so a plain memcpy is already "on the stream".
    for (size_t r = 0; r < rows && width > 0; ++r) {
        std::memcpy(static_cast<uint8_t*>(dst) + r * dst_pitch, static_cast<const uint8_t*>(src) + r * src_pitch,
                    width);
    }
}

void CpuBackend::embed(Tensor out, Tensor ids, const Weight& table) {
    const int64_t n = ids.numel(), dim = table.cols;
    HR_CHECK(out.rows() == n && out.cols() == dim);
    const int32_t* id = ids.as<int32_t>();
    float* o = out.as<float>();
    for (int64_t t = 0; t < n; ++t) {
        HR_CHECK(id[t] >= 0 && id[t] < table.rows);
        weight_row_f32(table, id[t], o + t * dim);
    }
}

void CpuBackend::rms_norm(Tensor out, Tensor in, const Weight& weight, float eps) {
    const int64_t n = in.rows(), dim = in.cols();
    HR_CHECK(out.rows() == n && out.cols() == dim && weight.cols == dim && weight.rows == 1);
    const float* x = in.as<float>();
    float* o = out.as<float>();
    // note: a decode step's few rows cost less than waking a thread.
    auto rows = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const float* xr = x + t * dim;
        float* orow = o + t * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        // note: matches transformers: x * rsqrt(mean(x^2) + eps), then times the weight (in place allowed)
        const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
        for (int64_t i = 0; i < dim; ++i) orow[i] = (xr[i] * inv) * load_elem(weight.dtype, weight.data, i);
      }
    };
    if (n > 4) parallel_for(n, rows);
    else rows(0, n);
}

void CpuBackend::silu_mul(Tensor out, Tensor gate, Tensor up) {
    const int64_t n = gate.numel();
    HR_CHECK(out.numel() == n && up.numel() == n);
    const float* g = gate.as<float>();
    const float* u = up.as<float>();
    float* o = out.as<float>();
    auto part = [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    };
    if (n > 65536) parallel_for(n, part);
    else part(0, n);
}

void CpuBackend::add(Tensor x, Tensor y) {
    const int64_t n = x.numel();
    HR_CHECK(y.numel() == n);
    float* a = x.as<float>();
    const float* b = y.as<float>();
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void CpuBackend::gather_rows(Tensor out, Tensor in, Tensor rows) {
    const int64_t m = rows.numel(), d = in.cols();
    HR_CHECK(out.rows() == m && out.cols() == d);
    const int32_t* r = rows.as<int32_t>();
    for (int64_t i = 0; i < m; ++i) {
        HR_CHECK(r[i] >= 0 && r[i] < in.rows());
        std::memmove(out.as<float>() + i * d, in.as<float>() + r[i] * d, static_cast<size_t>(d) * sizeof(float));
    }
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace hr::cpu

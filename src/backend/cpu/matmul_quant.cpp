// Quantized CPU matmuls: run-time choice of path, the scalar kernels, and the driver that splits
// work over output rows (the backend's thread pool) and blocks of inputs (each weight row read once per block).
#include "backend/cpu/matmul_quant.h"

#include <algorithm>

#include "backend/cpu/matmul_quant_kernels.h"
#include "backend/cpu/thread_pool.h"
#include "core/half.h"
#include "quant/formats.h"

namespace hr::cpu {

namespace detail {

void q8_rows_scalar(const int8_t* w, float scale, int64_t cols, const float* in, int64_t in_stride, int nb,
                    float* out, int64_t out_stride) {
    float acc[kInBlock] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t c = 0; c < cols; ++c) {
        const float wv = static_cast<float>(w[c]);
        for (int t = 0; t < nb; ++t) acc[t] += wv * in[t * in_stride + c];
    }
    for (int t = 0; t < nb; ++t) out[t * out_stride] = scale * acc[t];
}

void q4_rows_scalar(const uint8_t* w, const uint16_t* scales, int64_t cols, const float* in, int64_t in_stride,
                    int nb, float* out, int64_t out_stride) {
    float acc[kInBlock] = {0.0f, 0.0f, 0.0f, 0.0f};
    const int64_t n_groups = quant::q4_groups(cols);
    for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t c0 = g * quant::kQ4Group;
        const int64_t c1 = std::min<int64_t>(cols, c0 + quant::kQ4Group);
        float gacc[kInBlock] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t c = c0; c < c1; ++c) {
            const uint8_t b = w[c / 2];
            const float wv = static_cast<float>(((c & 1) ? (b >> 4) : (b & 0x0f)) - 8);
            for (int t = 0; t < nb; ++t) gacc[t] += wv * in[t * in_stride + c];
        }
        const float s = f16_to_f32(scales[g]);
        for (int t = 0; t < nb; ++t) acc[t] += s * gacc[t];
    }
    for (int t = 0; t < nb; ++t) out[t * out_stride] = acc[t];
}

}  // namespace detail

namespace {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
#else
    return false;
#endif
}

// Inputs per outer chunk: the chunk [chunk, cols] f32 stays in cache while all weight rows stream past.
constexpr int64_t kInChunk = 64;
// Below this many weight elements the product runs on one thread (thread wake-up would dominate).
constexpr int64_t kParallelMinElems = int64_t{1} << 15;

// Drives a per-row kernel: row_fn(r, in_block, nb, out_block) computes out_block[t * rows] for the
// weight row r and nb inputs starting at in_block.
template <class RowFn>
void drive(float* out, const float* in, int64_t n, int64_t rows, int64_t cols, RowFn row_fn) {
    const bool par = rows * cols >= kParallelMinElems && rows > 1;
    for (int64_t t0 = 0; t0 < n; t0 += kInChunk) {
        const int64_t t1 = std::min(n, t0 + kInChunk);
        auto part = [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                for (int64_t t = t0; t < t1; t += detail::kInBlock) {
                    const int nb = static_cast<int>(std::min<int64_t>(detail::kInBlock, t1 - t));
                    row_fn(r, in + t * cols, nb, out + t * rows + r);
                }
            }
        };
        if (par) parallel_for(rows, part);
        else part(0, rows);
    }
}

void check_weight(const Weight& w, DType expected, int64_t n, const float* out, const float* in) {
    HR_CHECK_MSG(w.dtype == expected, "matmul_quant: weight dtype does not match the kernel");
    HR_CHECK(w.rows >= 0 && w.cols >= 0 && n >= 0);
    HR_CHECK(w.rows * w.cols == 0 || (w.data != nullptr && w.scales != nullptr));
    HR_CHECK(n == 0 || (out != nullptr && in != nullptr));
}

}  // namespace

QuantIsa best_quant_isa() { return cpu_has_avx2_fma() ? QuantIsa::avx2_fma : QuantIsa::scalar; }

bool quant_isa_supported(QuantIsa isa) { return isa == QuantIsa::scalar || cpu_has_avx2_fma(); }

const char* quant_isa_name(QuantIsa isa) { return isa == QuantIsa::scalar ? "scalar" : "avx2+fma"; }

void matmul_q8_isa(QuantIsa isa, float* out, const float* in, int64_t n, const Weight& w) {
    check_weight(w, DType::q8, n, out, in);
    HR_CHECK_MSG(quant_isa_supported(isa), "matmul_q8: the CPU lacks the requested instruction set");
    if (n == 0 || w.rows == 0) return;
    const auto* data = static_cast<const int8_t*>(w.data);
    const auto* scales = static_cast<const float*>(w.scales);
    const int64_t rows = w.rows, cols = w.cols;
    auto* fn = isa == QuantIsa::avx2_fma ? detail::q8_rows_avx2 : detail::q8_rows_scalar;
    drive(out, in, n, rows, cols, [&](int64_t r, const float* x, int nb, float* o) {
        fn(data + r * cols, scales[r], cols, x, cols, nb, o, rows);
    });
}

void matmul_q4_isa(QuantIsa isa, float* out, const float* in, int64_t n, const Weight& w) {
    check_weight(w, DType::q4, n, out, in);
    HR_CHECK_MSG(quant_isa_supported(isa), "matmul_q4: the CPU lacks the requested instruction set");
    if (n == 0 || w.rows == 0) return;
    const auto* data = static_cast<const uint8_t*>(w.data);
    const auto* scales = static_cast<const uint16_t*>(w.scales);
    const int64_t rows = w.rows, cols = w.cols;
    const int64_t row_bytes = quant::q4_row_bytes(cols), groups = quant::q4_groups(cols);
    auto* fn = isa == QuantIsa::avx2_fma ? detail::q4_rows_avx2 : detail::q4_rows_scalar;
    drive(out, in, n, rows, cols, [&](int64_t r, const float* x, int nb, float* o) {
        fn(data + r * row_bytes, scales + r * groups, cols, x, cols, nb, o, rows);
    });
}

void matmul_q8(float* out, const float* in, int64_t n, const Weight& w) {
    matmul_q8_isa(best_quant_isa(), out, in, n, w);
}

void matmul_q4(float* out, const float* in, int64_t n, const Weight& w) {
    matmul_q4_isa(best_quant_isa(), out, in, n, w);
}

}  // namespace hr::cpu

// The tiled CPU matmul's driver: run-time choice of instruction-set path, the decode (GEMV) shape and the
// prefill (GEMM) shape with cache blocking over inputs; work split over weight rows on the backend's
// thread pool (thread_pool.h).
#include "backend/cpu/matmul_ggml.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/cpu/matmul_ggml_kernels.h"
#include "backend/cpu/thread_pool.h"
#include "core/status.h"
#include "quant/formats.h"
#include "quant/ggml_blocks.h"

namespace hr::cpu {

namespace {

bool cpu_has(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                             __builtin_cpu_supports("f16c");
    static const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                               __builtin_cpu_supports("avx512vl");
    switch (isa) {
        case CpuIsa::scalar: return true;
        case CpuIsa::avx2: return avx2;
        case CpuIsa::avx512: return avx512;
    }
    return false;
#else
    return isa == CpuIsa::scalar;
#endif
}

CpuIsa pick_isa() {
    CpuIsa best = cpu_has(CpuIsa::avx512) ? CpuIsa::avx512 : cpu_has(CpuIsa::avx2) ? CpuIsa::avx2 : CpuIsa::scalar;
    // note: the variable can only lower the choice; an unknown value or a path the CPU lacks keeps `best`.
    if (const char* env = std::getenv("HEADROOM_CPU_ISA")) {
        const std::string_view v(env);
        if (v == "scalar") best = CpuIsa::scalar;
        else if (v == "avx2" && cpu_has(CpuIsa::avx2)) best = CpuIsa::avx2;
    }
    return best;
}

const detail::IsaKernels& kernels(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::avx512: return detail::avx512_kernels();
        case CpuIsa::avx2: return detail::avx2_kernels();
        default: return detail::scalar_kernels();
    }
}

detail::RowDecoder decoder_for(const detail::IsaKernels& k, DType dt) {
    detail::RowDecoder d = k.decoder(dt);
    return d ? d : detail::scalar_decoder(dt);
}

// A per-thread buffer of at least `n` floats, 64-byte aligned, kept between calls (bounded by the
// largest weight tile or input chunk seen). which: 0 a decoded row, 1 a decoded tile, 2 packed inputs.
float* thread_buffer(size_t n, int which) {
    static thread_local std::vector<float> bufs[3];
    std::vector<float>& b = bufs[which];
    if (b.size() < n + 16) b.assign(n + 16, 0.0f);
    auto p = reinterpret_cast<uintptr_t>(b.data());
    return reinterpret_cast<float*>((p + 63) & ~uintptr_t{63});
}

// Below this many weight elements a decode-shape product runs on one thread (waking the other costs more).
constexpr int64_t kParallelMinElems = int64_t{1} << 16;
// Packed inputs per chunk stay under this many bytes (in L2 while all weight tiles stream past).
constexpr int64_t kChunkBytes = int64_t{1} << 20;

// Decodes rows [r0, r0 + nr) of w into tile [rows_alloc][cols] (or points at them when w is f32 and
// nr == rows_alloc) and returns the rows' start; tile rows nr..rows_alloc-1 are zero (the kernels read them).
const float* decode_rows(detail::RowDecoder dec, const Weight& w, int64_t r0, int nr, int rows_alloc, float* tile) {
    const int64_t cols = w.cols;
    if (w.dtype == DType::f32 && nr == rows_alloc) return static_cast<const float*>(w.data) + r0 * cols;
    for (int i = 0; i < rows_alloc; ++i) {
        float* dst = tile + i * cols;
        if (i < nr) {
            const float* src = dec(w, r0 + i, dst);
            if (src != dst) std::memcpy(dst, src, static_cast<size_t>(cols) * 4);
        } else {
            std::memset(dst, 0, static_cast<size_t>(cols) * 4);
        }
    }
    return tile;
}

// One product of a (possibly multi-product) call: all share the input.
struct Product {
    float* out;
    const Weight* w;
    detail::RowDecoder dec;
};

// Work unit u of the products (units_of(p) each, in order) -> (product index, unit within it).
template <class UnitsOf>
std::pair<size_t, int64_t> locate(std::span<const Product> prods, int64_t u, UnitsOf units_of) {
    size_t i = 0;
    while (u >= units_of(prods[i])) u -= units_of(prods[i++]);
    return {i, u};
}

void gemv(const detail::IsaKernels& k, std::span<const Product> prods, const float* in, int64_t n) {
    constexpr int R = detail::kDotRows;
    const int64_t cols = prods[0].w->cols;
    auto groups_of = [](const Product& p) { return (p.w->rows + R - 1) / R; };
    int64_t total = 0, elems = 0;
    for (const Product& p : prods) {
        total += groups_of(p);
        elems += p.w->rows * cols;
    }
    auto body = [&](int64_t g0, int64_t g1) {
        float* scratch = thread_buffer(static_cast<size_t>(R * cols), 0);
        for (int64_t g = g0; g < g1; ++g) {
            const auto [pi, pg] = locate(prods, g, groups_of);
            const Product& p = prods[pi];
            const int64_t rows = p.w->rows, r0 = pg * R;
            const int nr = static_cast<int>(std::min<int64_t>(R, rows - r0));
            const float* wr = decode_rows(p.dec, *p.w, r0, nr, R, scratch);
            k.dot(wr, cols, nr, cols, in, static_cast<int>(n), p.out + r0, rows);
        }
    };
    if (elems >= kParallelMinElems) parallel_for(total, body);
    else body(0, total);
}

void gemm(const detail::IsaKernels& kr, std::span<const Product> prods, const float* in, int64_t n) {
    const int64_t cols = prods[0].w->cols;
    const int P = kr.p, NR = kr.nr;
    const int64_t chunk = std::max<int64_t>(P, kChunkBytes / (cols * 4) / P * P);
    const int64_t max_panels = (std::min(chunk, n) + P - 1) / P;
    // note: the calling thread's buffer, kept between calls (no page faults per product).
    float* ap_all = thread_buffer(static_cast<size_t>(max_panels * P * cols), 2);
    auto tiles_of = [NR](const Product& p) { return (p.w->rows + NR - 1) / NR; };
    int64_t n_tiles = 0;
    for (const Product& p : prods) n_tiles += tiles_of(p);
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
        const int64_t m_chunk = std::min(chunk, n - t0);
        const int64_t panels = (m_chunk + P - 1) / P;
        parallel_for(panels, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p)
                kr.pack(in, cols, t0 + p * P, std::min<int64_t>(P, m_chunk - p * P), P, ap_all + p * P * cols);
        });
        parallel_for(n_tiles, [&](int64_t i0, int64_t i1) {
            float* tile = thread_buffer(static_cast<size_t>(NR * cols), 1);
            for (int64_t ti = i0; ti < i1; ++ti) {
                const auto [pi, pt] = locate(prods, ti, tiles_of);
                const Product& pr = prods[pi];
                const int64_t rows = pr.w->rows, r0 = pt * NR;
                const int nr = static_cast<int>(std::min<int64_t>(NR, rows - r0));
                const float* wt = decode_rows(pr.dec, *pr.w, r0, nr, NR, tile);
                for (int64_t p = 0; p < panels; ++p) {
                    const int m = static_cast<int>(std::min<int64_t>(P, m_chunk - p * P));
                    kr.tile(wt, cols, ap_all + p * P * cols, cols, m, nr, pr.out + (t0 + p * P) * rows + r0, rows);
                }
            }
        });
    }
}

void check_weight(const Weight& w, int64_t n, const float* out, const float* in) {
    HR_CHECK_MSG(tiled_matmul_supports(w.dtype), "matmul_tiled: weight dtype has no CPU kernel");
    HR_CHECK(w.rows >= 0 && w.cols >= 0 && n >= 0);
    HR_CHECK(w.rows * w.cols == 0 || w.data != nullptr);
    HR_CHECK(!(w.dtype == DType::q8 || w.dtype == DType::q4) || w.rows * w.cols == 0 || w.scales != nullptr);
    HR_CHECK(!is_ggml_block_dtype(w.dtype) || w.cols % quant::ggml_block_elems(w.dtype) == 0);
    HR_CHECK(n == 0 || (out != nullptr && in != nullptr));
}

}  // namespace

CpuIsa best_cpu_isa() {
    static const CpuIsa isa = pick_isa();
    return isa;
}

bool cpu_isa_supported(CpuIsa isa) { return cpu_has(isa); }

const char* cpu_isa_name(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::scalar: return "scalar";
        case CpuIsa::avx2: return "avx2";
        case CpuIsa::avx512: return "avx512";
    }
    return "?";
}

bool tiled_matmul_supports(DType dt) { return detail::scalar_decoder(dt) != nullptr; }

void matmul_tiled_isa(CpuIsa isa, float* out, const float* in, int64_t n, const Weight& w) {
    check_weight(w, n, out, in);
    HR_CHECK_MSG(cpu_has(isa), "matmul_tiled: the CPU lacks the requested instruction set");
    if (n == 0 || w.rows == 0) return;
    if (w.cols == 0) {
        std::fill(out, out + n * w.rows, 0.0f);
        return;
    }
    const detail::IsaKernels& k = kernels(isa);
    const Product prod{out, &w, decoder_for(k, w.dtype)};
    if (n <= kGemvMaxTokens) gemv(k, {&prod, 1}, in, n);
    else gemm(k, {&prod, 1}, in, n);
}

void matmul_tiled_multi(const float* in, int64_t n, std::span<const TiledJob> jobs) {
    if (jobs.empty()) return;
    const CpuIsa isa = best_cpu_isa();
    const detail::IsaKernels& k = kernels(isa);
    std::vector<Product> prods;
    for (const TiledJob& j : jobs) {
        check_weight(*j.w, n, j.out, in);
        HR_CHECK(j.w->cols == jobs[0].w->cols);
        if (j.w->rows > 0) prods.push_back(Product{j.out, j.w, decoder_for(k, j.w->dtype)});
    }
    if (n == 0 || prods.empty()) return;
    if (prods[0].w->cols == 0) {
        for (const Product& p : prods) std::fill(p.out, p.out + n * p.w->rows, 0.0f);
        return;
    }
    if (n <= kGemvMaxTokens) gemv(k, prods, in, n);
    else gemm(k, prods, in, n);
}

void matmul_tiled(float* out, const float* in, int64_t n, const Weight& w) {
    matmul_tiled_isa(best_cpu_isa(), out, in, n, w);
}

void decode_row_exact(const Weight& w, int64_t r, float* out) {
    const detail::RowDecoder dec = detail::scalar_decoder(w.dtype);
    HR_CHECK_MSG(dec != nullptr, "decode_row_exact: weight dtype has no CPU decoder");
    const float* src = dec(w, r, out);
    if (src != out) std::memcpy(out, src, static_cast<size_t>(w.cols) * 4);
}

}  // namespace hr::cpu

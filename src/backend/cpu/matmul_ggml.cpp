// The tiled CPU matmul's driver: run-time choice of instruction-set path, the decode (GEMV) shape and the
// prefill (GEMM) shape with cache blocking over inputs, OpenMP work split over weight rows.
#include "backend/cpu/matmul_ggml.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
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

// Decodes rows [r0, r0 + nr) of w into tile [nr][cols] (or points at them when w is f32) and returns the
// rows' start; rows nr..rows_alloc-1 of the tile are zero when `pad` (the micro-kernels read them).
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

void gemv(const detail::IsaKernels& k, detail::RowDecoder dec, float* out, const float* in, int64_t n,
          const Weight& w) {
    const int64_t rows = w.rows, cols = w.cols;
    constexpr int R = detail::kDotRows;
    const int64_t groups = (rows + R - 1) / R;
    const bool par = rows * cols >= kParallelMinElems;
    const int64_t row_bytes = quant::weight_data_bytes(w.dtype, 1, cols);
    const auto* base = static_cast<const char*>(w.data);
    auto body = [&](int64_t g0, int64_t g1) {
        float* scratch = thread_buffer(static_cast<size_t>(R * cols), 0);
        for (int64_t g = g0; g < g1; ++g) {
            const int64_t r0 = g * R;
            // note: the weights stream from memory once per token; asking for the group after next now
            // hides the load latency that otherwise stalls the decoder.
            if (r0 + 3 * R <= rows)
                for (int64_t b = 0; b < R * row_bytes; b += 64) __builtin_prefetch(base + (r0 + 2 * R) * row_bytes + b);
            const int nr = static_cast<int>(std::min<int64_t>(R, rows - r0));
            const float* wr = decode_rows(dec, w, r0, nr, R, scratch);
            k.dot(wr, cols, nr, cols, in, static_cast<int>(n), out + r0, rows);
        }
    };
    if (par) parallel_for(groups, body);
    else body(0, groups);
}

void gemm(const detail::IsaKernels& kr, detail::RowDecoder dec, float* out, const float* in, int64_t n,
          const Weight& w) {
    const int64_t rows = w.rows, cols = w.cols;
    const int P = kr.p, NR = kr.nr;
    const int64_t chunk = std::max<int64_t>(P, kChunkBytes / (cols * 4) / P * P);
    const int64_t max_panels = (std::min(chunk, n) + P - 1) / P;
    // note: the calling thread's buffer, kept between calls (no page faults per product).
    float* ap_all = thread_buffer(static_cast<size_t>(max_panels * P * cols), 2);
    const int64_t n_tiles = (rows + NR - 1) / NR;
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
                const int64_t r0 = ti * NR;
                const int nr = static_cast<int>(std::min<int64_t>(NR, rows - r0));
                const float* wt = decode_rows(dec, w, r0, nr, NR, tile);
                for (int64_t p = 0; p < panels; ++p) {
                    const int m = static_cast<int>(std::min<int64_t>(P, m_chunk - p * P));
                    kr.tile(wt, cols, ap_all + p * P * cols, cols, m, nr, out + (t0 + p * P) * rows + r0, rows);
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
    const detail::RowDecoder dec = decoder_for(k, w.dtype);
    if (n <= kGemvMaxTokens) {
        gemv(k, dec, out, in, n, w);
    } else {
        gemm(k, dec, out, in, n, w);
    }
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

// Scalar reference quantize / dequantize for q8 and q4 (formats.h), and whole-matrix helpers that
// convert f32/f16/bf16 sources and split large matrices over threads by rows.
#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "core/half.h"
#include "quant/formats.h"

namespace hr::quant {
namespace {

Status non_finite_error(int64_t col, float v) {
    return errorf("quantize: expected finite weights, found {} at column {}", v, col);
}

// Absmax of w[0..n); a non-finite value is reported by its column (offset `base`).
Status absmax_of(const float* w, int64_t n, int64_t base, float* out) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(w[i])) return non_finite_error(base + i, w[i]);
        m = std::max(m, std::fabs(w[i]));
    }
    *out = m;
    return ok();
}

// Smallest non-negative f16 s with qmax * s >= absmax (checked in double, where the product is
// exact), so that round(w / s) never leaves [-qmax, qmax]. Returns 0x7c00 (inf) on overflow.
uint16_t f16_scale_at_least(float absmax, int qmax) {
    const double need = static_cast<double>(absmax);
    uint16_t s = f32_to_f16(absmax / static_cast<float>(qmax));
    // note: positive f16 bit patterns are ordered like their values, so +1 is the next f16.
    while (s < 0x7c00u && static_cast<double>(f16_to_f32(s)) * qmax < need) ++s;
    return s;
}

float f32_scale_at_least(float absmax, int qmax) {
    const double need = static_cast<double>(absmax);
    float s = absmax / static_cast<float>(qmax);
    while (static_cast<double>(s) * qmax < need) s = std::nextafter(s, INFINITY);
    return s;
}

}  // namespace

Status quantize_row_q8(const float* w, int64_t cols, int8_t* q, float* scale) {
    float amax = 0.0f;
    HR_TRY(absmax_of(w, cols, 0, &amax));
    if (amax == 0.0f) {
        std::memset(q, 0, static_cast<size_t>(cols));
        *scale = 0.0f;
        return ok();
    }
    const float s = f32_scale_at_least(amax, kQ8Max);
    for (int64_t c = 0; c < cols; ++c) {
        float v = std::round(w[c] / s);
        v = std::clamp(v, -static_cast<float>(kQ8Max), static_cast<float>(kQ8Max));  // note: never binds, see scale
        q[c] = static_cast<int8_t>(v);
    }
    *scale = s;
    return ok();
}

void dequantize_row_q8(const int8_t* q, float scale, int64_t cols, float* out) {
    for (int64_t c = 0; c < cols; ++c) out[c] = scale * static_cast<float>(q[c]);
}

Status quantize_row_q4(const float* w, int64_t cols, uint8_t* q, uint16_t* scales_f16) {
    std::memset(q, 0, static_cast<size_t>(q4_row_bytes(cols)));
    const int64_t n_groups = q4_groups(cols);
    for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t c0 = g * kQ4Group;
        const int64_t len = std::min<int64_t>(kQ4Group, cols - c0);
        float amax = 0.0f;
        HR_TRY(absmax_of(w + c0, len, c0, &amax));
        uint16_t s16 = 0;
        if (amax > 0.0f) {
            s16 = f16_scale_at_least(amax, kQ4Max);
            if (s16 >= 0x7c00u) {
                return errorf("quantize int4: group {} (columns {}..{}) has absmax {}, whose scale absmax/7 "
                              "exceeds the f16 range (expected absmax <= {})",
                              g, c0, c0 + len - 1, amax, 65504.0 * kQ4Max);
            }
        }
        scales_f16[g] = s16;
        const float s = f16_to_f32(s16);
        for (int64_t i = 0; i < len; ++i) {
            const int64_t c = c0 + i;
            int v = 0;
            if (s > 0.0f) {
                float r = std::round(w[c] / s);
                r = std::clamp(r, -static_cast<float>(kQ4Max), static_cast<float>(kQ4Max));
                v = static_cast<int>(r);
            }
            const auto nib = static_cast<uint8_t>(v + 8);
            q[c / 2] |= static_cast<uint8_t>((c & 1) ? (nib << 4) : nib);
        }
    }
    return ok();
}

void dequantize_row_q4(const uint8_t* q, const uint16_t* scales_f16, int64_t cols, float* out) {
    for (int64_t c = 0; c < cols; ++c) {
        const uint8_t b = q[c / 2];
        const int nib = (c & 1) ? (b >> 4) : (b & 0x0f);
        out[c] = f16_to_f32(scales_f16[c / kQ4Group]) * static_cast<float>(nib - 8);
    }
}

namespace {

// Converts row r of src into f32.
void load_row_f32(const void* src, DType dt, int64_t r, int64_t cols, float* out) {
    const size_t off = static_cast<size_t>(r) * static_cast<size_t>(cols);
    switch (dt) {
        case DType::f32: std::memcpy(out, static_cast<const float*>(src) + off, static_cast<size_t>(cols) * 4); break;
        case DType::f16: {
            const uint16_t* p = static_cast<const uint16_t*>(src) + off;
            for (int64_t c = 0; c < cols; ++c) out[c] = f16_to_f32(p[c]);
            break;
        }
        case DType::bf16: {
            const uint16_t* p = static_cast<const uint16_t*>(src) + off;
            for (int64_t c = 0; c < cols; ++c) out[c] = bf16_to_f32(p[c]);
            break;
        }
        default: HR_CHECK_MSG(false, "load_row_f32: unchecked dtype");
    }
}

Status quantize_rows(DType target, const void* src, DType src_dtype, int64_t r0, int64_t r1, int64_t cols,
                     void* data_out, void* scales_out) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
        load_row_f32(src, src_dtype, r, cols, row.data());
        Status st;
        if (target == DType::q8) {
            st = quantize_row_q8(row.data(), cols, static_cast<int8_t*>(data_out) + r * cols,
                                 static_cast<float*>(scales_out) + r);
        } else {
            st = quantize_row_q4(row.data(), cols, static_cast<uint8_t*>(data_out) + r * q4_row_bytes(cols),
                                 static_cast<uint16_t*>(scales_out) + r * q4_groups(cols));
        }
        if (!st.ok()) return errorf("row {}: {}", r, st.error().message);
    }
    return ok();
}

// Elements per thread below which threading costs more than it saves.
constexpr int64_t kMinElemsPerThread = int64_t{1} << 20;

}  // namespace

Status quantize_matrix(DType target, const void* src, DType src_dtype, int64_t rows, int64_t cols,
                       void* data_out, void* scales_out) {
    if (target != DType::q8 && target != DType::q4)
        return errorf("quantize_matrix: expected target int8 or int4, found {}", dtype_name(target));
    if (src_dtype != DType::f32 && src_dtype != DType::f16 && src_dtype != DType::bf16)
        return errorf("quantize_matrix: expected a f32, f16 or bf16 source, found {}", dtype_name(src_dtype));
    if (rows < 0 || cols < 0) return errorf("quantize_matrix: expected a non-negative shape, found [{}, {}]", rows, cols);
    if (rows == 0 || cols == 0) return ok();
    if (src == nullptr || data_out == nullptr || scales_out == nullptr)
        return make_error("quantize_matrix: null buffer");

    const int64_t hw = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
    const int64_t n_threads = std::clamp<int64_t>(rows * cols / kMinElemsPerThread, 1, std::min(hw, rows));
    if (n_threads == 1) return quantize_rows(target, src, src_dtype, 0, rows, cols, data_out, scales_out);

    std::vector<Status> results(static_cast<size_t>(n_threads));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(n_threads));
    for (int64_t t = 0; t < n_threads; ++t) {
        const int64_t r0 = rows * t / n_threads;
        const int64_t r1 = rows * (t + 1) / n_threads;
        threads.emplace_back([=, &results] {
            results[static_cast<size_t>(t)] = quantize_rows(target, src, src_dtype, r0, r1, cols, data_out, scales_out);
        });
    }
    for (auto& th : threads) th.join();
    for (auto& st : results)
        if (!st.ok()) return st;  // note: the lowest failing row block, so the message is deterministic
    return ok();
}

Status dequantize_matrix(DType dtype, const void* data, const void* scales, int64_t rows, int64_t cols,
                         float* out) {
    if (dtype != DType::q8 && dtype != DType::q4)
        return errorf("dequantize_matrix: expected int8 or int4, found {}", dtype_name(dtype));
    if (rows < 0 || cols < 0)
        return errorf("dequantize_matrix: expected a non-negative shape, found [{}, {}]", rows, cols);
    for (int64_t r = 0; r < rows; ++r) {
        if (dtype == DType::q8) {
            dequantize_row_q8(static_cast<const int8_t*>(data) + r * cols, static_cast<const float*>(scales)[r], cols,
                              out + r * cols);
        } else {
            dequantize_row_q4(static_cast<const uint8_t*>(data) + r * q4_row_bytes(cols),
                              static_cast<const uint16_t*>(scales) + r * q4_groups(cols), cols, out + r * cols);
        }
    }
    return ok();
}

}  // namespace hr::quant

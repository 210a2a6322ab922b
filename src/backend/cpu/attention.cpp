// CPU attention over the paged KV cache: write new k/v into their slots, then causal grouped-query
// attention in f32 (a quantized int8/fp8 cache is decoded to f32 rows as it is read). Two paths with the same
// result up to f32 rounding:
//   SIMD (AVX2 / AVX-512, attention_simd.inc): per (sequence, kv head, chunk of 32 of its tokens) the keys
//     and values of positions 0..max are gathered once to f32 (keys transposed in blocks of 64), then each token's query
//     heads get scores, a softmax and the value sum from vector kernels;
//   scalar: per (token, head) a streaming (online) softmax, the reference the SIMD path is tested against.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/attention_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/matmul_ggml.h"
#include "backend/cpu/thread_pool.h"
#include "core/kv_quant.h"

namespace hr::cpu {

namespace detail {

AttnFn attention_kernel(CpuIsa isa, int64_t hd) {
    switch (isa) {
        case CpuIsa::avx512: return attention_kernel_avx512(hd);
        case CpuIsa::avx2: return attention_kernel_avx2(hd);
        default: return nullptr;
    }
}

}  // namespace detail

namespace {

struct Dims {
    int64_t n, n_heads, hd, n_kv, group, bs, max_blocks, slot_stride;
    DType cdt;
    const float* k_scale;  // [slots, n_kv] of a quantized cache, else null
    const float* v_scale;
};

Dims dims_of(const AttentionArgs& a) {
    Dims d{};
    d.n = a.q.dim(0);
    d.n_heads = a.q.dim(1);
    d.hd = a.q.dim(2);
    d.n_kv = a.k_new.dim(1);
    HR_CHECK(d.n_kv > 0 && d.n_heads % d.n_kv == 0);
    d.group = d.n_heads / d.n_kv;
    d.bs = a.block_size;
    d.max_blocks = a.block_tables.dim(1);
    d.slot_stride = d.n_kv * d.hd;  // elements per cache slot
    d.cdt = a.cache.k.dtype;
    HR_CHECK(a.cache.v.dtype == d.cdt);
    d.k_scale = d.v_scale = nullptr;
    if (is_quantized_kv(d.cdt)) {
        HR_CHECK_MSG(a.cache.k_scale.data != nullptr && a.cache.v_scale.data != nullptr,
                     "attention: a quantized KV cache without its scales");
        d.k_scale = a.cache.k_scale.as<float>();
        d.v_scale = a.cache.v_scale.as<float>();
    }
    return d;
}

// Row (slot, kv head) of the k or v cache as f32 into dst [hd]: a plain cache converted, a quantized one
// decoded and scaled (core/kv_quant.h).
void load_row(const Dims& d, const void* base, const float* scales, int64_t slot, int64_t kvh, float* dst) {
    const int64_t off = slot * d.slot_stride + kvh * d.hd;
    if (scales != nullptr) {
        kv_dequantize_row(static_cast<const uint8_t*>(base) + off, scales[slot * d.n_kv + kvh], d.hd, d.cdt, dst);
        return;
    }
    if (d.cdt == DType::f32) {
        const float* s = static_cast<const float*>(base) + off;
        std::copy(s, s + d.hd, dst);
        return;
    }
    for (int64_t i = 0; i < d.hd; ++i) dst[i] = load_elem(d.cdt, base, off + i);
}

void attention_scalar(const AttentionArgs& a, const Dims& d) {
    const int32_t* pos = a.positions.as<int32_t>();
    const int32_t* seq = a.token_seq.as<int32_t>();
    const int32_t* tables = a.block_tables.as<int32_t>();
#pragma omp parallel
    {
        std::vector<float> acc(static_cast<size_t>(d.hd)), kr(static_cast<size_t>(d.hd)), vr(static_cast<size_t>(d.hd));
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int64_t t = 0; t < d.n; ++t) {
            for (int64_t h = 0; h < d.n_heads; ++h) {
                const float* qv = a.q.as<float>() + (t * d.n_heads + h) * d.hd;
                const int64_t kvh = h / d.group;
                const int32_t* table = tables + static_cast<int64_t>(seq[t]) * d.max_blocks;
                float m = -std::numeric_limits<float>::infinity();
                float l = 0.0f;
                for (auto& v : acc) v = 0.0f;
                for (int64_t p = 0; p <= pos[t]; ++p) {
                    const int64_t slot = static_cast<int64_t>(table[p / d.bs]) * d.bs + p % d.bs;
                    load_row(d, a.cache.k.data, d.k_scale, slot, kvh, kr.data());
                    load_row(d, a.cache.v.data, d.v_scale, slot, kvh, vr.data());
                    float s = 0.0f;
                    for (int64_t i = 0; i < d.hd; ++i) s += qv[i] * kr[static_cast<size_t>(i)];
                    s *= a.scale;
                    const float m_new = std::max(m, s);
                    const float corr = std::exp(m - m_new);  // 0 on the first step (m = -inf)
                    const float pexp = std::exp(s - m_new);
                    l = l * corr + pexp;
                    for (int64_t i = 0; i < d.hd; ++i)
                        acc[static_cast<size_t>(i)] = acc[static_cast<size_t>(i)] * corr + pexp * vr[static_cast<size_t>(i)];
                    m = m_new;
                }
                float* o = a.out.as<float>() + (t * d.n_heads + h) * d.hd;
                for (int64_t i = 0; i < d.hd; ++i) o[i] = acc[static_cast<size_t>(i)] / l;
            }
        }
    }
}

// Tokens of one sequence handled by one work item (the keys of 0..max position are gathered once).
constexpr int64_t kTokChunk = 32;

struct Item {
    int32_t seq;
    int32_t kvh;
    int64_t first;  // index into the sequence's token list
};

void attention_simd(const AttentionArgs& a, const Dims& d, detail::AttnFn fn) {
    const int32_t* pos = a.positions.as<int32_t>();
    const int32_t* seq = a.token_seq.as<int32_t>();
    const int32_t* tables = a.block_tables.as<int32_t>();
    const int64_t n_seqs = a.block_tables.dim(0);
    std::vector<std::vector<int32_t>> by_seq(static_cast<size_t>(n_seqs));
    int64_t max_pos = 0;
    for (int64_t t = 0; t < d.n; ++t) {
        HR_CHECK(seq[t] >= 0 && seq[t] < n_seqs);
        by_seq[static_cast<size_t>(seq[t])].push_back(static_cast<int32_t>(t));
        max_pos = std::max<int64_t>(max_pos, pos[t]);
    }
    std::vector<Item> items;
    for (int64_t s = 0; s < n_seqs; ++s)
        for (int64_t c = 0; c < static_cast<int64_t>(by_seq[static_cast<size_t>(s)].size()); c += kTokChunk)
            for (int64_t g = 0; g < d.n_kv; ++g)
                items.push_back(Item{static_cast<int32_t>(s), static_cast<int32_t>(g), c});
    // note: one decode token against a short context is a few microseconds: not worth waking a thread.
    const bool par = d.n * d.n_heads * d.hd * (max_pos + 1) >= (int64_t{1} << 18);
    auto body = [&](int64_t it) {
        static thread_local std::vector<float> kt, vv, scores;
        static thread_local std::vector<const float*> krows, vrows;
        const float* qp[kTokChunk];
        float* op[kTokChunk];
        int32_t tp[kTokChunk];
        {
            const Item& item = items[static_cast<size_t>(it)];
            const std::vector<int32_t>& toks = by_seq[static_cast<size_t>(item.seq)];
            const int64_t nt = std::min<int64_t>(kTokChunk, static_cast<int64_t>(toks.size()) - item.first);
            int64_t np = 0;
            for (int64_t i = 0; i < nt; ++i) {
                const int32_t t = toks[static_cast<size_t>(item.first + i)];
                qp[i] = a.q.as<float>() + (t * d.n_heads + item.kvh * d.group) * d.hd;
                op[i] = a.out.as<float>() + (t * d.n_heads + item.kvh * d.group) * d.hd;
                tp[i] = pos[t];
                np = std::max<int64_t>(np, static_cast<int64_t>(pos[t]) + 1);
            }
            const int64_t ldk = (np + detail::kAttnKeyStep - 1) / detail::kAttnKeyStep * detail::kAttnKeyStep;
            if (scores.size() < static_cast<size_t>(8 * ldk)) scores.resize(static_cast<size_t>(8 * ldk));
            const int32_t* table = tables + static_cast<int64_t>(item.seq) * d.max_blocks;
            // note: a single token (decode) reads an f32 cache in place; gathering would copy every key and
            // value once per token for one use.
            const bool direct = nt == 1 && d.cdt == DType::f32;
            if (direct) {
                krows.resize(static_cast<size_t>(np));
                vrows.resize(static_cast<size_t>(np));
                for (int64_t p = 0; p < np; ++p) {
                    const int64_t slot = static_cast<int64_t>(table[p / d.bs]) * d.bs + p % d.bs;
                    const int64_t off = slot * d.slot_stride + item.kvh * d.hd;
                    krows[static_cast<size_t>(p)] = static_cast<const float*>(a.cache.k.data) + off;
                    vrows[static_cast<size_t>(p)] = static_cast<const float*>(a.cache.v.data) + off;
                }
            } else {
                if (kt.size() < static_cast<size_t>(d.hd * ldk)) kt.resize(static_cast<size_t>(d.hd * ldk));
                if (vv.size() < static_cast<size_t>(ldk * d.hd)) vv.resize(static_cast<size_t>(ldk * d.hd));
                float* krow = scores.data();  // scratch for one key row before the transpose
                for (int64_t p = 0; p < np; ++p) {
                    const int64_t slot = static_cast<int64_t>(table[p / d.bs]) * d.bs + p % d.bs;
                    load_row(d, a.cache.k.data, d.k_scale, slot, item.kvh, krow);
                    float* kb = kt.data() + (p / detail::kAttnKeyStep) * d.hd * detail::kAttnKeyStep + p % detail::kAttnKeyStep;
                    for (int64_t i = 0; i < d.hd; ++i) kb[i * detail::kAttnKeyStep] = krow[i];
                    load_row(d, a.cache.v.data, d.v_scale, slot, item.kvh, vv.data() + p * d.hd);
                }
                for (int64_t p = np; p < ldk; ++p) {  // zero keys up to the block end
                    float* kb = kt.data() + (p / detail::kAttnKeyStep) * d.hd * detail::kAttnKeyStep + p % detail::kAttnKeyStep;
                    for (int64_t i = 0; i < d.hd; ++i) kb[i * detail::kAttnKeyStep] = 0.0f;
                }
            }
            detail::AttnBlock b;
            b.kt = kt.data();
            b.v = vv.data();
            b.ldk = ldk;
            b.np = np;
            b.hd = d.hd;
            b.group = static_cast<int>(d.group);
            b.n_tok = static_cast<int>(nt);
            b.q = qp;
            b.out = op;
            b.pos = tp;
            b.scale = a.scale;
            b.scores = scores.data();
            if (direct) {
                b.krows = krows.data();
                b.vrows = vrows.data();
            }
            fn(b);
        }
    };
    const int64_t n_items = static_cast<int64_t>(items.size());
    if (par) parallel_for_dynamic(n_items, body);
    else
        for (int64_t it = 0; it < n_items; ++it) body(it);
}

}  // namespace

void CpuBackend::attention(const AttentionArgs& a) {
    const Dims d = dims_of(a);
    const int32_t* slots = a.slot_mapping.as<int32_t>();

    // 1. New keys and values into the cache (all of them before any token attends); a quantized cache
    // takes each (token, kv head) row as codes and a scale.
    for (int64_t t = 0; t < d.n; ++t) {
        const int64_t base = static_cast<int64_t>(slots[t]) * d.slot_stride;
        const float* kn = a.k_new.as<float>() + t * d.slot_stride;
        const float* vn = a.v_new.as<float>() + t * d.slot_stride;
        if (d.k_scale != nullptr) {
            for (int64_t h = 0; h < d.n_kv; ++h) {
                const int64_t row = static_cast<int64_t>(slots[t]) * d.n_kv + h;
                kv_quantize_row(kn + h * d.hd, d.hd, d.cdt, static_cast<uint8_t*>(a.cache.k.data) + base + h * d.hd,
                                a.cache.k_scale.as<float>() + row);
                kv_quantize_row(vn + h * d.hd, d.hd, d.cdt, static_cast<uint8_t*>(a.cache.v.data) + base + h * d.hd,
                                a.cache.v_scale.as<float>() + row);
            }
            continue;
        }
        if (d.cdt == DType::f32) {
            std::copy(kn, kn + d.slot_stride, static_cast<float*>(a.cache.k.data) + base);
            std::copy(vn, vn + d.slot_stride, static_cast<float*>(a.cache.v.data) + base);
            continue;
        }
        for (int64_t i = 0; i < d.slot_stride; ++i) {
            store_elem(d.cdt, a.cache.k.data, base + i, kn[i]);
            store_elem(d.cdt, a.cache.v.data, base + i, vn[i]);
        }
    }

    // 2. Each (token, head) attends to positions [0, pos] of its sequence.
    attend_cached(best_cpu_isa(), a);
}

void attend_cached(CpuIsa isa, const AttentionArgs& a) {
    const Dims d = dims_of(a);
    HR_CHECK_MSG(cpu_isa_supported(isa), "attend_cached: the CPU lacks the requested instruction set");
    if (const detail::AttnFn fn = detail::attention_kernel(isa, d.hd)) attention_simd(a, d, fn);
    else attention_scalar(a, d);
}

}  // namespace hr::cpu

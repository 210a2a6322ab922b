// CPU attention over the paged KV cache: write new k/v into their slots, then causal grouped-query
// attention per (token, head) with a streaming (online) softmax in f32.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"

namespace hr::cpu {

void CpuBackend::attention(const AttentionArgs& a) {
    const int64_t n = a.q.dim(0), n_heads = a.q.dim(1), hd = a.q.dim(2), n_kv = a.k_new.dim(1);
    HR_CHECK(n_heads % n_kv == 0);
    const int64_t group = n_heads / n_kv;
    const int64_t bs = a.block_size;
    const int64_t max_blocks = a.block_tables.dim(1);
    const DType cdt = a.cache.k.dtype;
    const int64_t slot_stride = n_kv * hd;  // elements per cache slot
    const int32_t* slots = a.slot_mapping.as<int32_t>();
    const int32_t* pos = a.positions.as<int32_t>();
    const int32_t* seq = a.token_seq.as<int32_t>();
    const int32_t* tables = a.block_tables.as<int32_t>();

    // 1. New keys and values into the cache (all of them before any token attends).
    for (int64_t t = 0; t < n; ++t) {
        const int64_t base = static_cast<int64_t>(slots[t]) * slot_stride;
        const float* kn = a.k_new.as<float>() + t * slot_stride;
        const float* vn = a.v_new.as<float>() + t * slot_stride;
        for (int64_t i = 0; i < slot_stride; ++i) {
            store_elem(cdt, a.cache.k.data, base + i, kn[i]);
            store_elem(cdt, a.cache.v.data, base + i, vn[i]);
        }
    }

    // 2. Each (token, head) attends to positions [0, pos] of its sequence.
#pragma omp parallel
    {
        std::vector<float> acc(static_cast<size_t>(hd));
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int64_t t = 0; t < n; ++t) {
            for (int64_t h = 0; h < n_heads; ++h) {
                const float* qv = a.q.as<float>() + (t * n_heads + h) * hd;
                const int64_t kvh = h / group;
                const int32_t* table = tables + static_cast<int64_t>(seq[t]) * max_blocks;
                float m = -std::numeric_limits<float>::infinity();
                float l = 0.0f;
                for (auto& v : acc) v = 0.0f;
                for (int64_t p = 0; p <= pos[t]; ++p) {
                    const int64_t slot = static_cast<int64_t>(table[p / bs]) * bs + p % bs;
                    const int64_t off = slot * slot_stride + kvh * hd;
                    float s = 0.0f;
                    for (int64_t i = 0; i < hd; ++i) s += qv[i] * load_elem(cdt, a.cache.k.data, off + i);
                    s *= a.scale;
                    const float m_new = std::max(m, s);
                    const float corr = std::exp(m - m_new);  // 0 on the first step (m = -inf)
                    const float pexp = std::exp(s - m_new);
                    l = l * corr + pexp;
                    for (int64_t i = 0; i < hd; ++i)
                        acc[static_cast<size_t>(i)] =
                            acc[static_cast<size_t>(i)] * corr + pexp * load_elem(cdt, a.cache.v.data, off + i);
                    m = m_new;
                }
                float* o = a.out.as<float>() + (t * n_heads + h) * hd;
                for (int64_t i = 0; i < hd; ++i) o[i] = acc[static_cast<size_t>(i)] / l;
            }
        }
    }
}

}  // namespace hr::cpu

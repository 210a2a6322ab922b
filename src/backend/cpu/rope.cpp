// CPU rotary embedding, as transformers applies it (rotate_half: pairs (i, i + head_dim/2)).
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/thread_pool.h"

namespace hr::cpu {

namespace {

// x [n_heads, head_dim] rotated in place with the given cos/sin tables [head_dim/2].
void rotate(float* x, int64_t n_heads, int64_t head_dim, const float* cs, const float* sn) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
            const float a = v[i], b = v[i + half];
            v[i] = a * cs[i] - b * sn[i];
            v[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

}  // namespace

void CpuBackend::rope(Tensor q, Tensor k, Tensor positions, float theta) {
    const int64_t n = q.dim(0), hq = q.dim(1), hd = q.dim(2), hk = k.dim(1);
    HR_CHECK(k.dim(0) == n && k.dim(2) == hd && positions.numel() == n && hd % 2 == 0);
    const int64_t half = hd / 2;
    // note: inverse frequencies and angles in f32, as transformers computes them.
    std::vector<float> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
        inv_freq[static_cast<size_t>(i)] =
            1.0f / static_cast<float>(std::pow(static_cast<double>(theta),
                                               static_cast<double>(static_cast<float>(2 * i) / static_cast<float>(hd))));
    const int32_t* pos = positions.as<int32_t>();
    auto rows = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
        for (int64_t i = 0; i < half; ++i) {
            const float angle = static_cast<float>(pos[t]) * inv_freq[static_cast<size_t>(i)];
            cs[static_cast<size_t>(i)] = std::cos(angle);
            sn[static_cast<size_t>(i)] = std::sin(angle);
        }
        rotate(q.as<float>() + t * hq * hd, hq, hd, cs.data(), sn.data());
        rotate(k.as<float>() + t * hk * hd, hk, hd, cs.data(), sn.data());
      }
    };
    if (n > 8) parallel_for(n, rows);
    else rows(0, n);
}

}  // namespace hr::cpu

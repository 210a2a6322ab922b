// Token sampling: greedy, temperature, top-k, top-p (nucleus), seeded.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace hr {

Status validate_sampling(const SamplingParams& p) {
    if (!std::isfinite(p.temperature) || p.temperature < 0.0f || p.temperature > 2.0f)
        return errorf("temperature must be a number in [0, 2], found {}", p.temperature);
    if (!std::isfinite(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f)
        return errorf("top_p must be a number in (0, 1], found {}", p.top_p);
    if (p.top_k < 0) return errorf("top_k must be >= 0 (0 disables it), found {}", p.top_k);
    return ok();
}

int32_t argmax(std::span<const float> logits) {
    int32_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
    return best;
}

Result<int32_t> sample_token(std::span<const float> logits, const SamplingParams& p, std::mt19937_64& rng) {
    if (logits.empty()) return errorf("sampling: empty logits row");
    for (size_t i = 0; i < logits.size(); ++i) {
        if (!std::isfinite(logits[i]))
            return errorf("sampling: logit {} of token {} is not finite; the request fails instead of sampling",
                          logits[i], i);
    }
    HR_TRY(validate_sampling(p));
    if (p.temperature == 0.0f || p.top_k == 1) return argmax(logits);

    // Candidates sorted by logit (descending), cut to top_k.
    std::vector<int32_t> idx(logits.size());
    std::iota(idx.begin(), idx.end(), 0);
    size_t k = idx.size();
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < k) k = static_cast<size_t>(p.top_k);
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), [&](int32_t a, int32_t b) {
        return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
               (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
    });
    idx.resize(k);
    const double mx = logits[static_cast<size_t>(idx[0])];
    std::vector<double> prob(k);
    double sum = 0.0;
    for (size_t i = 0; i < k; ++i) {
        prob[i] = std::exp((logits[static_cast<size_t>(idx[i])] - mx) / p.temperature);
        sum += prob[i];
    }
    // Nucleus: the smallest prefix whose mass reaches top_p (at least one token).
    size_t keep = k;
    if (p.top_p < 1.0f) {
        double cum = 0.0;
        for (size_t i = 0; i < k; ++i) {
            cum += prob[i] / sum;
            if (cum >= p.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double kept_sum = 0.0;
    for (size_t i = 0; i < keep; ++i) kept_sum += prob[i];
    std::uniform_real_distribution<double> u(0.0, kept_sum);
    double r = u(rng), acc = 0.0;
    for (size_t i = 0; i < keep; ++i) {
        acc += prob[i];
        if (r < acc) return idx[i];
    }
    return idx[keep - 1];
}

}  // namespace hr

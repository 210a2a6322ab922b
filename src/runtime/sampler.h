// Token sampling from one row of logits: greedy, temperature, top-k, top-p; seeded and reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "core/status.h"

namespace hr {

struct SamplingParams {
    float temperature = 1.0f;  // 0: greedy
    float top_p = 1.0f;        // (0, 1]
    int top_k = 0;             // 0: no limit
    uint64_t seed = 0;
    bool has_seed = false;
};

// Checks ranges: temperature in [0, 2], top_p in (0, 1], top_k >= 0, all finite.
Status validate_sampling(const SamplingParams& p);

// Index of the largest logit (the lowest index on ties).
int32_t argmax(std::span<const float> logits);

// Samples one token. Non-finite logits are an error (never sampled from); so is an empty row.
Result<int32_t> sample_token(std::span<const float> logits, const SamplingParams& p, std::mt19937_64& rng);

}  // namespace hr

// Router statistics of a calibration run (`headroom quantize --calibrate`): how often the router
// selected each (layer, expert) over T prompt tokens. Stored in a pre-quantized checkpoint's metadata
// under kExpertHitsKey; --offload-experts then keeps the coldest experts in host memory
// (expert_offload.h). Pure: no files, no device. See docs/memory.md, "Hot experts".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace hr {

// __metadata__ key: {"tokens": T, "layers": [[c_0, ..., c_{E-1}], ...]}, one row per layer (an empty
// row for a dense layer), c = tokens whose top-k selection included that expert.
inline constexpr const char* kExpertHitsKey = "headroom.expert_hits";

struct ExpertHits {
    int64_t tokens = 0;                         // T: calibration tokens, each routed once per MoE layer
    std::vector<std::vector<int64_t>> layers;   // [n_layers][n_experts]; empty rows for dense layers

    // Measured selection frequency p(l, e) = hits / T: the probability that a token reads expert e of
    // layer l. Over the experts of a layer it sums to k (every token selects k distinct experts).
    double frequency(int64_t layer, int64_t expert) const;
    // An all-zero table for cfg (tokens 0), to count into.
    static ExpertHits zeros(const ModelConfig& cfg);
};

// The metadata value, compact JSON.
std::string expert_hits_json(const ExpertHits& h);

// Parses and checks a metadata value against cfg: valid JSON with exactly "tokens" (> 0) and "layers"
// (n_layers rows; n_experts non-negative counts, at most tokens, for a MoE layer, summing to tokens x k;
// empty for a dense layer). Errors name `source`, the key and what was expected.
Result<ExpertHits> parse_expert_hits(std::string_view json, const ModelConfig& cfg, const std::string& source);

// The checkpoint's statistics: nullptr when its metadata has no kExpertHitsKey.
Result<std::shared_ptr<const ExpertHits>> expert_hits_of(const std::map<std::string, std::string>& metadata,
                                                         const ModelConfig& cfg, const std::string& source);

}  // namespace hr

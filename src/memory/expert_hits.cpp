// Router statistics: the metadata value's format and its checks.
#include "memory/expert_hits.h"

#include <nlohmann/json.hpp>

namespace hr {

using json = nlohmann::json;

double ExpertHits::frequency(int64_t layer, int64_t expert) const {
    if (tokens <= 0 || layer < 0 || layer >= static_cast<int64_t>(layers.size())) return 0;
    const auto& row = layers[static_cast<size_t>(layer)];
    if (expert < 0 || expert >= static_cast<int64_t>(row.size())) return 0;
    return static_cast<double>(row[static_cast<size_t>(expert)]) / static_cast<double>(tokens);
}

ExpertHits ExpertHits::zeros(const ModelConfig& cfg) {
    ExpertHits h;
    h.layers.resize(static_cast<size_t>(std::max<int64_t>(cfg.n_layers, 0)));
    for (int64_t l = 0; l < cfg.n_layers; ++l)
        if (cfg.layer_is_moe(l)) h.layers[static_cast<size_t>(l)].assign(static_cast<size_t>(cfg.n_experts), 0);
    return h;
}

std::string expert_hits_json(const ExpertHits& h) {
    json j;
    j["tokens"] = h.tokens;
    j["layers"] = h.layers;
    return j.dump();
}

Result<ExpertHits> parse_expert_hits(std::string_view text, const ModelConfig& cfg, const std::string& source) {
    auto bad = [&](const std::string& what) {
        return errorf("{}: metadata {}: {}", source, kExpertHitsKey, what);
    };
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return bad("expected a JSON object {\"tokens\": T, \"layers\": [[...]]}");
    if (j.size() != 2 || !j.contains("tokens") || !j.contains("layers"))
        return bad("expected exactly the keys \"tokens\" and \"layers\"");
    const json& t = j["tokens"];
    if (!t.is_number_integer() || t.get<int64_t>() <= 0) return bad("\"tokens\": expected a positive integer");
    ExpertHits h;
    h.tokens = t.get<int64_t>();
    const json& ls = j["layers"];
    if (!ls.is_array() || static_cast<int64_t>(ls.size()) != cfg.n_layers)
        return bad(fmt::format("\"layers\": expected an array of {} rows (one per layer)", cfg.n_layers));
    h.layers.resize(ls.size());
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        const json& row = ls[static_cast<size_t>(l)];
        const int64_t want = cfg.layer_is_moe(l) ? cfg.n_experts : 0;
        if (!row.is_array() || static_cast<int64_t>(row.size()) != want)
            return bad(fmt::format("layer {}: expected {} counts", l, want));
        int64_t sum = 0;
        for (const json& c : row) {
            if (!c.is_number_integer() || c.get<int64_t>() < 0 || c.get<int64_t>() > h.tokens)
                return bad(fmt::format("layer {}: expected counts between 0 and tokens ({})", l, h.tokens));
            h.layers[static_cast<size_t>(l)].push_back(c.get<int64_t>());
            sum += c.get<int64_t>();
        }
        if (want > 0 && sum != h.tokens * cfg.n_experts_active)
            return bad(fmt::format("layer {}: counts sum to {}, expected tokens x k = {} x {}", l, sum, h.tokens,
                                   cfg.n_experts_active));
    }
    return h;
}

Result<std::shared_ptr<const ExpertHits>> expert_hits_of(const std::map<std::string, std::string>& metadata,
                                                         const ModelConfig& cfg, const std::string& source) {
    const auto it = metadata.find(kExpertHitsKey);
    if (it == metadata.end()) return std::shared_ptr<const ExpertHits>{};
    HR_ASSIGN(ExpertHits h, parse_expert_hits(it->second, cfg, source));
    return std::shared_ptr<const ExpertHits>(std::make_shared<ExpertHits>(std::move(h)));
}

}  // namespace hr

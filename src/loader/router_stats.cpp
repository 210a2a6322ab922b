// Router statistics: counting the top-k ids a tapped forward selected.
#include "loader/router_stats.h"

#include <algorithm>
#include <charconv>

#include "loader/session.h"

namespace hr {

RouterCounter::RouterCounter(Backend& be, const ModelConfig& cfg)
    : be_(be), cfg_(cfg), hits_(ExpertHits::zeros(cfg)) {
    for (int64_t l = 0; l < cfg.n_layers && first_moe_ < 0; ++l)
        if (cfg.layer_is_moe(l)) first_moe_ = l;
}

ActivationTap RouterCounter::tap() {
    return [this](std::string_view name, const Tensor& t) {
        constexpr std::string_view kSuffix = ".topk_ids";
        if (!status_.ok() || !name.starts_with("layer") || !name.ends_with(kSuffix)) return;
        const std::string_view num = name.substr(5, name.size() - 5 - kSuffix.size());
        int64_t l = -1;
        if (std::from_chars(num.data(), num.data() + num.size(), l).ec != std::errc{}) return;
        count(l, t);
    };
}

void RouterCounter::count(int64_t l, const Tensor& ids) {
    const int64_t k = cfg_.n_experts_active, E = cfg_.n_experts;
    if (l < 0 || l >= cfg_.n_layers || !cfg_.layer_is_moe(l) || ids.dtype != DType::i32 || ids.cols() != k) {
        status_ = errorf("router statistics: layer {} top-k ids are not i32 [T, {}] of a MoE layer", l, k);
        return;
    }
    be_.synchronize();
    buf_.resize(static_cast<size_t>(ids.numel()));
    be_.download(buf_.data(), ids.data, buf_.size() * sizeof(int32_t));
    auto& row = hits_.layers[static_cast<size_t>(l)];
    for (const int32_t e : buf_) {
        if (e < 0 || e >= E) {
            status_ = errorf("router statistics: layer {} selected expert {} (expected 0..{})", l, e, E - 1);
            return;
        }
        ++row[static_cast<size_t>(e)];
    }
    if (l == first_moe_) hits_.tokens += ids.rows();
}

Result<ExpertHits> count_expert_hits(Backend& be, const LoadedModel& model,
                                     std::span<const std::vector<int32_t>> prompts, int64_t max_tokens,
                                     int64_t max_prompt_tokens, const CalibrationProgress& progress) {
    const ModelConfig& cfg = model.cfg;
    if (!cfg.is_moe() || cfg.n_moe_layers() == 0)
        return errorf("--calibrate: the model has no MoE layers (router statistics need experts)");
    if (max_tokens <= 0) return errorf("--calibrate-tokens: expected a positive number, found {}", max_tokens);
    const int64_t per_prompt =
        std::max<int64_t>(1, std::min({max_prompt_tokens, cfg.max_position_embeddings, max_tokens}));
    // The token budget, prompt by prompt: each cut to per_prompt, the last one to what is left.
    std::vector<std::span<const int32_t>> runs;
    int64_t total = 0;
    for (const auto& p : prompts) {
        if (total >= max_tokens) break;
        const int64_t n = std::min({static_cast<int64_t>(p.size()), per_prompt, max_tokens - total});
        if (n <= 0) continue;
        runs.emplace_back(p.data(), static_cast<size_t>(n));
        total += n;
    }
    if (total == 0) return errorf("--calibrate: the calibration prompts hold no tokens");
    int64_t longest = 0;
    for (const auto& r : runs) longest = std::max<int64_t>(longest, static_cast<int64_t>(r.size()));
    constexpr int64_t kChunk = 256;
    HR_ASSIGN(std::unique_ptr<Session> s,
              Session::create(be, model, SessionOptions{.context = longest, .chunk = kChunk}));
    RouterCounter counter(be, cfg);
    s->set_tap(counter.tap());
    std::vector<float> last;
    int64_t done = 0;
    for (const auto& r : runs) {
        s->reset();
        // Chunk by chunk through the session, so that progress moves within a long prompt.
        for (size_t off = 0; off < r.size(); off += static_cast<size_t>(kChunk)) {
            const auto piece = r.subspan(off, std::min(r.size() - off, static_cast<size_t>(kChunk)));
            HR_TRY(s->append(piece, last, nullptr));
            HR_TRY(Status(counter.status()));
            done += static_cast<int64_t>(piece.size());
            if (progress) progress(done, total);
        }
    }
    return counter.hits();
}

}  // namespace hr

// Router statistics of a calibration run (`headroom quantize --calibrate`): per (layer, expert), how many
// prompt tokens the router selected it for (top-k), observed through the forward's activation tap
// ("layer<l>.topk_ids", model/blocks.h). Nothing is observed unless a tap is set, so a normal forward
// pays nothing. The counts go to the pre-quantized checkpoint (memory/expert_hits.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "loader/load.h"
#include "memory/expert_hits.h"
#include "model/blocks.h"

namespace hr {

// Counts the experts each tapped step's router selected. tokens = rows seen by the first MoE layer.
class RouterCounter {
public:
    RouterCounter(Backend& be, const ModelConfig& cfg);
    // A tap for Session::set_tap(); the counter must outlive the session's use of it. It synchronises
    // the backend and downloads the [T, k] i32 ids (only the ids: T x k x 4 bytes per MoE layer).
    ActivationTap tap();
    const ExpertHits& hits() const { return hits_; }
    // The first inconsistency seen (an id out of range, a wrong shape): the counts are then not to be used.
    const Status& status() const { return status_; }

private:
    void count(int64_t layer, const Tensor& ids);
    Backend& be_;
    ModelConfig cfg_;
    int64_t first_moe_ = -1;
    ExpertHits hits_;
    std::vector<int32_t> buf_;
    Status status_ = ok();
};

// Runs the prompts (prefill only, each from position 0 in one session) through `model` until
// max_tokens prompt tokens have been routed (the last prompt is cut; each prompt at most
// `max_prompt_tokens`), counting the router's selections. progress(done, total) after each chunk.
// Errors: no MoE layers, no tokens, a forward error.
using CalibrationProgress = std::function<void(int64_t done_tokens, int64_t total_tokens)>;
Result<ExpertHits> count_expert_hits(Backend& be, const LoadedModel& model,
                                     std::span<const std::vector<int32_t>> prompts, int64_t max_tokens,
                                     int64_t max_prompt_tokens = 2048, const CalibrationProgress& progress = {});

}  // namespace hr

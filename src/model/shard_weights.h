// One rank's weights for tensor parallel (model/shard.h): every matrix cut to the rank's rows or columns,
// the replicated ones (embedding, norms, router, head, q/k norms) whole, copied into ONE allocation on the
// rank's backend (the allocate-once rule holds per rank).
//   rows:    wq, wk, wv (the rank's heads), w1, w3 and every expert's w1, w3 (its FFN columns)
//   columns: wo (its heads), w2 and every expert's w2 (its FFN columns), the q/k/v biases
// The source is the whole model in host-readable memory (a model loaded on the CPU backend); a GPU rank
// gets its slices through Backend::upload. serve and generate do not load that way any more: each rank
// reads its slices from the checkpoint (loader/rank_load.h), equal to this bit for bit; this cut stays the
// reference the loader is tested against, and the path for a model already in memory. Quantized formats are cut on their block boundaries
// (check_shard_format), so the rank's values are exactly the whole model's.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "model/config.h"
#include "model/shard.h"
#include "model/weights.h"

namespace hr {

struct RankWeights {
    ModelWeights weights;          // shaped for shard_config(cfg, plan)
    std::shared_ptr<void> region;  // the one allocation on the rank's backend
    uint64_t bytes = 0;
};

// Errors: a format whose blocks the split would cut, a weight in host memory (--offload-experts: not
// implemented with tensor parallel).
Result<RankWeights> shard_weights(const ModelConfig& cfg, const ShardPlan& plan, int rank, const ModelWeights& full,
                                  Backend& be);

}  // namespace hr

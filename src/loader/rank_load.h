// Tensor-parallel loading (docs/parallel.md, issue 18): every rank reads only its part of each tensor
// straight from the memory-mapped checkpoint (safetensors, headroom's pre-quantized format, GGUF) into ONE
// allocation on its own backend, through the load pipeline (reader threads, the backend's uploader,
// progress in bytes). The split is shard_slice's (model/shard.h):
//   rows     wq, wk, wv, w1, w3, every expert's w1 and w3: only the rank's rows are read and converted;
//   columns  wo, w2, every expert's w2, q/k/v biases: the rank's columns of every row
//            (loader/column_slice.h says which formats convert whole rows first, and why);
//   whole    embedding, norms, q/k norms, router, lm_head: read by every rank.
// No copy of the model is made in host memory: per rank, its weights on its backend (a CPU rank's backend
// is host memory: 1/N of the model plus the replicated tensors) plus the staging buffers and per-chunk
// scratch that LoadOptions::memory counts. Ranks load one after the other, each with the reader threads.
// The result equals shard_weights(load_model(...)) bit for bit (tests/unit/model/rank_load_test.cpp).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "loader/load.h"
#include "model/shard_weights.h"

namespace hr {

struct ShardedModel {
    // The model's description (cfg, formats, checkpoint dtype, load_seconds); no weights region of its own
    // (each rank holds its part); weight_bytes is rank 0's.
    LoadedModel model;
    std::vector<RankWeights> ranks;  // ranks[r] on backends[r], shaped for shard_config(cfg, plan)
};

// backends[r] is rank r's (at least one). Of `opts`: weights, threads, staging_bytes, device_quantize,
// progress, log_progress/progress_tty, injected_delay_s, memory. Errors: those of load_model, plan_shards
// (a dimension that does not divide), a column cut that is not on its format's block (naming the tensor),
// --offload-experts (not implemented with tensor parallel).
Result<ShardedModel> load_sharded(const std::string& path, std::span<Backend* const> backends, const LoadOptions& opts);

}  // namespace hr

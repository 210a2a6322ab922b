// The rank's columns of a column-cut weight (tensor parallel: wo, w2, every expert's w2, the q/k/v biases),
// read from the checkpoint for loader/rank_load.h.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "loader/checkpoint.h"
#include "loader/load_memory.h"

namespace hr {

// Rows [row0, row0 + n_rows) of columns [c0, c0 + n_cols) of ck.specs[i] in ck.storage[i]: per row the
// slice's data bytes (weight_data_bytes(storage, 1, n_cols)) to `data` and its scales to `scales` (int8:
// the row's one scale; int4: the slice's groups). The cut must fall on the storage format's column block
// (quant: int4 groups of 128, ggml blocks; the caller checks). Exactly the bytes shard_weights cuts from
// the whole tensor as load_model stores it. Scratch (at most n_rows whole rows) is counted in `memory`.
Status fill_column_slice(const Checkpoint& ck, size_t i, int64_t c0, int64_t n_cols, int64_t row0, int64_t n_rows,
                         uint8_t* data, uint8_t* scales, LoadMemory* memory);

}  // namespace hr

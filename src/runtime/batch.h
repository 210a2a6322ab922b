// Turns a Schedule into the flat StepBatch that forward() runs (tokens, positions, slot mapping,
// block tables, logits rows, the copy-on-write block copies).
#pragma once

#include "model/forward.h"
#include "runtime/scheduler.h"

namespace hr {

// Fills `out` (its vectors are cleared and reused, so steady state allocates nothing).
// Row i of block_tables is schedule item i; logit_rows lists, in item order, the last token row of
// every item with wants_logits and the score_rows scored rows of every score item (or, when none wants any, the step's last token: forward() computes
// at least one row; the engine reads rows of wants_logits items only).
void build_step_batch(const Schedule& s, int block_size, int64_t max_blocks_per_seq, StepBatch& out);

}  // namespace hr

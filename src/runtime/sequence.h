// Per-request state inside the engine: its tokens, how many are in the KV cache, its block table
// and reservation, its sampler state and its timing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "runtime/embed.h"
#include "runtime/kv_blocks.h"
#include "runtime/request.h"
#include "runtime/score_group.h"

namespace hr {

struct Sequence {
    uint64_t id = 0;
    GenerationRequest req;
    std::shared_ptr<RequestStream> stream;
    std::vector<int32_t> tokens;       // [n_prompt + n_generated]
    int64_t n_prompt = 0;
    int64_t n_computed = 0;            // tokens whose K/V are in the cache (positions [0, n_computed))
    std::vector<int32_t> block_table;  // KV blocks in position order
    int64_t reserved_blocks = 0;       // promised by the pool at admission, not yet allocated
    int64_t n_cached_tokens = 0;       // prompt tokens whose K/V came from the prefix cache at admission
    int64_t n_indexed_blocks = 0;      // leading full blocks already offered to the prefix cache
    PrefixLink prefix_link;            // the prefix cache's chain after those blocks
    // Scoring (score_group.h): every token is given; the logits at positions [score_from, size) score
    // the token that follows (a label's next token) instead of sampling. score_from -1: not scoring.
    std::shared_ptr<ScoreGroup> group;  // set for a group's prompt and label sequences
    int64_t label = -1;                 // index in group->labels; -1: the group's prompt sequence
    int64_t score_from = -1;
    // Embedding (embed.h): a prompt-only sequence whose layer outputs are pooled; never samples, never
    // uses or fills the prefix cache (a cached position's hidden states would be missing).
    std::shared_ptr<EmbedJob> embed;
    std::mt19937_64 rng;
    Clock::time_point submitted_at{};
    Clock::time_point admitted_at{};
    Clock::time_point first_token_at{};
    Clock::time_point last_token_at{};

    int64_t n_generated() const { return static_cast<int64_t>(tokens.size()) - n_prompt; }
    // Tokens not yet in the KV cache: the rest of the prompt, or the one token sampled last step.
    int64_t n_pending() const { return static_cast<int64_t>(tokens.size()) - n_computed; }
    bool in_prefill() const { return n_computed < n_prompt; }
    bool scores() const { return score_from >= 0; }
    bool is_group_prompt() const { return group && label < 0; }
    // Logits rows of positions [a, a + n) that score a token (score sequences only).
    int64_t score_rows(int64_t a, int64_t n) const {
        if (score_from < 0) return 0;
        const int64_t lo = std::max(a, score_from), hi = std::min(a + n, static_cast<int64_t>(tokens.size()));
        return hi > lo ? hi - lo : 0;
    }
};

}  // namespace hr

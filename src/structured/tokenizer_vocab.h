// The TokenVocab of a model's tokenizer (the bytes each id contributes to a text).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

namespace hr {

// Ids [0, n_ids) of the tokenizer (n_ids: the ids both the tokenizer and the model's head know); eos_id
// ends a complete answer.
Result<TokenVocab> build_token_vocab(const Tokenizer& tok, int64_t n_ids, int32_t eos_id);

}  // namespace hr

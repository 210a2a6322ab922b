// build_token_vocab (see tokenizer_vocab.h).
#include "structured/tokenizer_vocab.h"

#include <string>
#include <vector>

namespace hr {

Result<TokenVocab> build_token_vocab(const Tokenizer& tok, int64_t n_ids, int32_t eos_id) {
    if (n_ids <= 0 || n_ids > tok.vocab_size()) {
        return errorf("token vocabulary size must be in [1, {}], found {}", tok.vocab_size(), n_ids);
    }
    std::vector<std::string> bytes(static_cast<size_t>(n_ids));
    std::vector<bool> special(static_cast<size_t>(n_ids));
    for (int64_t i = 0; i < n_ids; ++i) {
        const auto id = static_cast<int32_t>(i);
        special[static_cast<size_t>(i)] = tok.is_special(id);
        bytes[static_cast<size_t>(i)] = tok.token_bytes(id);
    }
    return TokenVocab::create(std::move(bytes), std::move(special), eos_id);
}

}  // namespace hr

// The tokenizer and chat template of a GGUF file (llama.cpp's `tokenizer.*` metadata keys) as an
// hr::Tokenizer: the metadata is read into a plain GgufVocab, which is turned into the tokenizer.json
// and tokenizer_config.json that Hugging Face uses for that model family, then loaded by the same code
// as those files. See docs/tokenizer.md ("GGUF") for the mapping and where it differs from transformers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace hr {

namespace io {
class GgufFile;
}

namespace tok {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class GgufTokenType : int32_t {
    undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6,
};

// The tokenizer metadata of a GGUF file. Absent keys are empty / nullopt.
struct GgufVocab {
    std::string model;                  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    std::string pre;                    // tokenizer.ggml.pre ("" when absent)
    std::vector<std::string> tokens;    // tokenizer.ggml.tokens, index = id
    std::vector<float> scores;          // tokenizer.ggml.scores (SentencePiece), empty or one per token
    std::vector<int32_t> token_types;   // tokenizer.ggml.token_type, empty or one per token
    std::vector<std::string> merges;    // tokenizer.ggml.merges, "a b" in rank order
    std::optional<int64_t> bos_id, eos_id, unk_id, pad_id;
    std::optional<bool> add_bos, add_eos, add_space_prefix;
    std::string chat_template;          // tokenizer.chat_template
};

// Reads the tokenizer.* keys; a key of the wrong type is an error naming it.
Result<GgufVocab> read_gguf_vocab(const io::GgufFile& file);

// The tokenizer.ggml.pre names headroom maps to a pre-tokenizer (for "gpt2" vocabularies).
const std::vector<std::string>& known_gguf_pre_names();

// The tokenizer.json (first) and tokenizer_config.json (second) this vocabulary stands for.
Result<std::pair<nlohmann::json, nlohmann::json>> gguf_vocab_to_hf_json(const GgufVocab& v);

// transformers' generate_merges for a vocabulary with scores and no merge list: every split of a token
// into two tokens, best score first. Exposed for tests.
Result<std::vector<std::pair<std::string, std::string>>> merges_from_scores(const std::vector<std::string>& tokens,
                                                                           const std::vector<float>& scores);

}  // namespace tok

Result<std::unique_ptr<Tokenizer>> tokenizer_from_gguf_vocab(const tok::GgufVocab& v);
Result<std::unique_ptr<Tokenizer>> tokenizer_from_gguf(const io::GgufFile& file);

}  // namespace hr

// hr::Tokenizer: Hugging Face tokenizer.json (BPE: SentencePiece-style and byte-level) to ids and back,
// exactly as the `tokenizers` library does; streaming detokenization; chat templates from
// tokenizer_config.json. All const methods are thread-safe (no mutable shared state).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/pretokenize.h"

namespace hr {

namespace tok {
// An entry of tokenizer.json's "added_tokens"; matched in the input before the model runs.
struct AddedToken {
    std::string content;
    std::string match_content;  // content, or its normalized form when `normalized` (what is matched)
    int32_t id = -1;
    bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Leftmost-longest matcher over a set of added tokens (a byte trie).
class AddedMatcher {
public:
    void add(const std::string& s, int32_t token_index);
    bool empty() const { return nodes_.size() <= 1; }
    // Longest token that starts at text[pos]: (token_index, end) or (-1, pos).
    std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos) const;
    bool may_start(uint8_t b) const { return first_[b]; }

private:
    struct Node {
        std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
        int32_t token = -1;
    };
    std::vector<Node> nodes_{Node{}};
    bool first_[256] = {};
};

// Post-processor: what encode(add_special=true) wraps around the sequence.
struct PostProcessor {
    std::vector<int32_t> prefix;
    std::vector<int32_t> suffix;
};
}  // namespace tok

// One decoded-so-far state for streaming output; see StreamDecoder below.
class StreamDecoder;

class Tokenizer {
public:
    // Loads tokenizer.json only: bos_id() comes from the post-processor's leading special token,
    // eos_id() and the chat template are unknown.
    static Result<std::unique_ptr<Tokenizer>> from_file(const std::string& tokenizer_json_path);
    // Loads dir/tokenizer.json and dir/tokenizer_config.json (bos/eos tokens, chat_template; a
    // dir/chat_template.jinja file is used when the config has no template). A path ending in ".gguf"
    // is a GGUF file instead: its tokenizer.* metadata (see from_gguf).
    static Result<std::unique_ptr<Tokenizer>> from_model_dir(const std::string& dir);
    // The tokenizer and chat template of a GGUF file (tokenizer/gguf_vocab.h).
    static Result<std::unique_ptr<Tokenizer>> from_gguf(const std::string& path);
    // A tokenizer.json and a tokenizer_config.json already parsed (config may be null); the GGUF path
    // builds both from metadata.
    static Result<std::unique_ptr<Tokenizer>> from_json_and_config(const nlohmann::json& tokenizer_json,
                                                                   const nlohmann::json& config);
    // Parses tokenizer.json text (tests and tools build variants in memory).
    static Result<std::unique_ptr<Tokenizer>> from_json_text(std::string_view json_text);

    // Text (valid UTF-8) -> ids. add_special applies the post-processor (e.g. BOS for Llama/Mistral).
    Result<std::vector<int32_t>> encode(std::string_view text, bool add_special) const;
    // Ids -> text. An id outside the vocabulary is an error (Hugging Face silently drops it).
    Result<std::string> decode(std::span<const int32_t> ids, bool skip_special) const;

    // One past the largest id (model vocabulary and added tokens).
    int64_t vocab_size() const { return vocab_size_; }
    std::optional<int32_t> bos_id() const { return bos_id_; }
    std::optional<int32_t> eos_id() const { return eos_id_; }
    bool is_special(int32_t id) const;
    bool is_valid_id(int32_t id) const;
    std::optional<int32_t> token_to_id(std::string_view token) const;
    // The token's string as stored in the vocabulary (added tokens: their content); empty if invalid.
    std::string id_to_token(int32_t id) const;

    // The raw bytes token `id` contributes when decoded after at least one other token: "▁the" -> " the",
    // "<0xE2>" -> the single byte 0xE2, byte-level "Ġthe" -> " the"; may be partial UTF-8.
    // note (leading-space rule): as the FIRST token of a decode, SentencePiece-style decoders (Strip
    // start=1, or Metaspace with a prepend scheme) drop one leading space, so "▁the" decodes to "the"
    // there; byte-level decoders never drop it. Special tokens give their content.
    std::string token_bytes(int32_t id) const;

    // Chat template (empty if none) and the special-token strings it sees.
    const std::string& chat_template() const { return chat_template_; }
    const std::string& bos_token() const { return bos_token_; }
    const std::string& eos_token() const { return eos_token_; }
    // Renders chat_template() with messages (a JSON array of {role, content, ...}) as transformers'
    // apply_chat_template(tokenize=False) does. The template's raise_exception message is the error.
    Result<std::string> apply_chat_template(const nlohmann::json& messages, bool add_generation_prompt) const;
    // Same, keeping the messages' key order (what tojson prints).
    Result<std::string> apply_chat_template(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;

    // note: internal decode step shared with StreamDecoder; ids must be valid.
    std::string decode_valid(std::span<const int32_t> ids) const;
    bool is_byte_fallback_token(int32_t id) const;
    bool skipped_when_skipping_special(int32_t id) const;

private:
    Tokenizer() = default;
    static Result<std::unique_ptr<Tokenizer>> from_json(const nlohmann::json& j);
    Status load_config(const nlohmann::json& cfg, const std::string& dir);
    void split_added(std::string_view text, const tok::AddedMatcher& m, bool at_origin,
                     std::vector<std::pair<int32_t, tok::Piece>>& out) const;
    Status encode_piece(tok::Piece piece, std::vector<int32_t>& out) const;

    tok::BpeModel model_;
    tok::Normalizer normalizer_;
    tok::PreTokenizer pre_tokenizer_;
    tok::Decoder decoder_;
    tok::PostProcessor post_;
    std::vector<tok::AddedToken> added_;
    std::unordered_map<int32_t, size_t> added_by_id_;
    std::unordered_set<std::string> special_contents_;
    tok::AddedMatcher raw_matcher_, normalized_matcher_;
    std::unique_ptr<tok::Regex> word_start_re_, word_end_re_;  // single_word checks
    int64_t vocab_size_ = 0;
    std::optional<int32_t> bos_id_, eos_id_;
    std::string bos_token_, eos_token_, unk_token_, pad_token_;
    std::string chat_template_;
};

// Incremental detokenizer: push ids one at a time and get only newly complete UTF-8 text; the
// concatenation of all push() results and finish() equals tokenizer.decode(all ids, skip_special).
// note: holds output while the last token is a byte-fallback token or the text ends in an
// incomplete/replacement character, because later tokens can still change those bytes.
class StreamDecoder {
public:
    StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(&tok), skip_special_(skip_special) {}
    // id must be valid (HR_CHECK): ids come from the sampler, which only samples inside the vocabulary.
    std::string push(int32_t id);
    // Same, for ids from outside (e.g. a request): an invalid id is an error and changes nothing.
    Result<std::string> try_push(int32_t id);
    // Emits whatever is still held and resets the decoder for a new sequence.
    std::string finish();

private:
    const Tokenizer* tok_;
    bool skip_special_;
    std::vector<int32_t> window_;  // ids still needed as context or not yet emitted
    size_t prefix_len_ = 0;        // window_[0, prefix_len_) are already emitted context
    std::string prefix_text_;      // decode of that context
};

}  // namespace hr

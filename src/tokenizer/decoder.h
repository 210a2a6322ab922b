// The decoder chain of tokenizer.json (Sequence of Replace, ByteFallback, Fuse, Strip, ByteLevel,
// Metaspace): token strings -> text, as Hugging Face's decode_chain + join does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace hr::tok {

struct DecoderStep {
    enum class Kind { replace, byte_fallback, fuse, strip, byte_level, metaspace };
    Kind kind;
    std::string literal;   // replace: string pattern; strip: the character; metaspace: replacement
    std::string content;   // replace: replacement text
    std::shared_ptr<Regex> regex;
    size_t start = 0, stop = 0;  // strip counts
    bool prepend = true;         // metaspace: prepend_scheme != never
};

class Decoder {
public:
    // null -> no decoder (Hugging Face then joins tokens with " ").
    static Result<Decoder> from_json(const nlohmann::json& j);

    // Decodes a list of token strings into text (valid UTF-8).
    std::string decode(std::vector<std::string> tokens) const;

    // The raw bytes one token contributes when it is not the first token of the decoded sequence
    // (no leading-space strip; byte tokens give their byte; no UTF-8 repair).
    std::string token_bytes(const std::string& token) const;

private:
    Status add(const nlohmann::json& j);
    std::vector<DecoderStep> steps_;
    bool present_ = false;
};

// Parses "<0xXX>" byte tokens as Hugging Face's ByteFallback does; -1 if token is not one.
int parse_byte_token(const std::string& token);

}  // namespace hr::tok

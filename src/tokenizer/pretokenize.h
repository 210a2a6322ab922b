// Normalizers and pre-tokenizers of tokenizer.json (the subset that Llama/Mistral/GPT-2/Llama-3/
// Qwen/SmolLM-style files use), applied to pieces of text the way Hugging Face's PreTokenizedString does.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace hr::tok {

// A piece of the input on its way to the model. note: `at_origin` tracks Hugging Face's
// "offsets_original().0 == 0" (the piece starts at byte 0 of the original text), which Metaspace's
// prepend_scheme "first" depends on.
struct Piece {
    std::string text;
    bool at_origin = false;
};

// Unicode normalization forms of the NFC/NFD/NFKC/NFKD normalizers (done by ICU).
enum class UnicodeForm { nfc, nfd, nfkc, nfkd };

// One normalizer step: Prepend, Replace (string or regex pattern) or a Unicode normalization form.
struct NormalizerStep {
    enum class Kind { prepend, replace, unicode };
    Kind kind;
    std::string literal;           // Prepend text, or Replace's string pattern
    std::string content;           // Replace's replacement
    std::shared_ptr<Regex> regex;  // Replace's regex pattern (null for a string pattern)
    UnicodeForm form = UnicodeForm::nfc;  // unicode
};

class Normalizer {
public:
    // Parses the "normalizer" value (null, an object, or a Sequence); unsupported types are errors naming them.
    static Result<Normalizer> from_json(const nlohmann::json& j);
    bool empty() const { return steps_.empty(); }
    Result<std::string> apply(std::string s) const;

private:
    Status add(const nlohmann::json& j);
    std::vector<NormalizerStep> steps_;
};

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct PreTokenizerStep {
    enum class Kind { byte_level, split, metaspace, digits };
    Kind kind;
    // byte_level
    bool add_prefix_space = false;
    bool use_regex = true;
    // split (and byte_level's built-in GPT-2 regex)
    std::shared_ptr<Regex> regex;
    std::string literal;  // split on a string pattern when regex is null
    SplitBehavior behavior = SplitBehavior::isolated;
    bool invert = false;
    // metaspace
    std::string replacement;
    enum class Prepend { always, first, never } prepend = Prepend::always;
    bool split = true;
    // digits: split uses regex (\p{N}, each numeric character one match) with behavior isolated
    // (individual_digits) or contiguous.
};

class PreTokenizer {
public:
    static Result<PreTokenizer> from_json(const nlohmann::json& j);
    // Splits each piece further, in order, dropping empty pieces.
    Status apply(std::vector<Piece>& pieces) const;
    bool empty() const { return steps_.empty(); }

private:
    Status add(const nlohmann::json& j);
    std::vector<PreTokenizerStep> steps_;
};

// Splits text by a list of (begin, end, is_match) ranges as Hugging Face's NormalizedString::split does.
using MatchRanges = std::vector<std::pair<std::pair<size_t, size_t>, bool>>;
std::vector<std::pair<size_t, size_t>> split_by_behavior(const MatchRanges& matches, SplitBehavior behavior);

}  // namespace hr::tok

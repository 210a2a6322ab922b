// GgufVocab -> the tokenizer.json / tokenizer_config.json Hugging Face uses for that model family ->
// hr::Tokenizer. The GGUF keys carry only the vocabulary, merges or scores, token types and special ids;
// the normalizer, pre-tokenizer, decoder and post-processor come from tokenizer.ggml.model/pre here.
#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/log.h"
#include "tokenizer/utf8.h"

namespace hr {
namespace tok {

namespace {

// Split regexes of the tokenizer.json files of the model families (public tokenizer definitions).
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// note: a token longer than this cannot come from a real vocabulary, and deriving merges costs the
// square of a token's length, so it is refused rather than risking quadratic time on a hostile file.
constexpr size_t kMaxTokenBytes = 4096;

struct PreSpec {
    const char* name;
    enum class Kind { gpt2_regex, digits_then_gpt2, llama3, qwen2 } kind;
};

// tokenizer.ggml.pre -> the pre-tokenizer of that family's tokenizer.json.
constexpr PreSpec kPreSpecs[] = {
    {"default", PreSpec::Kind::gpt2_regex},   {"gpt-2", PreSpec::Kind::gpt2_regex},
    {"smollm", PreSpec::Kind::digits_then_gpt2},
    {"llama-bpe", PreSpec::Kind::llama3},     {"llama3", PreSpec::Kind::llama3},
    {"llama-v3", PreSpec::Kind::llama3},
    {"qwen2", PreSpec::Kind::qwen2},          {"deepseek-r1-qwen", PreSpec::Kind::qwen2},
};

nlohmann::json byte_level(bool use_regex) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

nlohmann::json split_then_byte_level(const char* regex) {
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
              byte_level(false)}}};
}

std::string known_pre_list() {
    std::string s;
    for (const auto& n : known_gguf_pre_names()) s += (s.empty() ? "" : ", ") + n;
    return s;
}

bool in_byte_alphabet(std::string_view s) {
    if (utf8::first_invalid(s)) return false;
    for (size_t i = 0; i < s.size();) {
        if (utf8::cp_to_byte(utf8::next_cp(s, i)) < 0) return false;
    }
    return true;
}

std::string to_byte_alphabet(std::string_view s) {
    std::string out;
    for (char c : s) utf8::append_cp(out, utf8::byte_to_cp(static_cast<uint8_t>(c)));
    return out;
}

// Code-point boundaries of a valid UTF-8 string: offsets of each character start, plus s.size().
std::vector<size_t> char_bounds(std::string_view s) {
    std::vector<size_t> b;
    for (size_t i = 0; i < s.size();) {
        b.push_back(i);
        utf8::next_cp(s, i);
    }
    b.push_back(s.size());
    return b;
}

}  // namespace

const std::vector<std::string>& known_gguf_pre_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const auto& p : kPreSpecs) n.emplace_back(p.name);
        return n;
    }();
    return names;
}

Result<std::vector<std::pair<std::string, std::string>>> merges_from_scores(const std::vector<std::string>& tokens,
                                                                           const std::vector<float>& scores) {
    if (scores.size() != tokens.size()) {
        return errorf("GGUF tokenizer: expected one score per token ({} tokens), found {} scores", tokens.size(),
                      scores.size());
    }
    // As a Python dict built from (token, index) / zip(tokens, scores): a repeated token keeps the
    // position of its first occurrence and the index / score of its last.
    std::unordered_map<std::string_view, int64_t> index;
    std::unordered_map<std::string_view, float> score;
    std::vector<std::string_view> order;
    index.reserve(tokens.size());
    score.reserve(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string& t = tokens[i];
        if (std::isnan(scores[i])) return errorf("GGUF tokenizer: token {} {:?} has a NaN score", i, t);
        if (index.emplace(t, static_cast<int64_t>(i)).second) order.push_back(t);
        index[t] = static_cast<int64_t>(i);
        score[t] = scores[i];
    }
    struct M {
        std::string_view l, r;
        float score;
        size_t len_l, len_r;  // in characters, as Python's len()
    };
    std::vector<M> merges;
    std::vector<M> local;
    for (std::string_view t : order) {
        if (utf8::first_invalid(t)) continue;  // rejected later by the vocabulary check
        if (t.size() > kMaxTokenBytes) {
            return errorf("GGUF tokenizer: token {:?}... is {} bytes long (expected under {} bytes)", t.substr(0, 16),
                          t.size(), kMaxTokenBytes);
        }
        const std::vector<size_t> b = char_bounds(t);
        const size_t n = b.size() - 1;
        local.clear();
        for (size_t k = 1; k < n; ++k) {
            const std::string_view l = t.substr(0, b[k]), r = t.substr(b[k]);
            if (index.count(l) && index.count(r)) local.push_back(M{l, r, score[t], k, n - k});
        }
        std::sort(local.begin(), local.end(), [&](const M& a, const M& c) {
            const int64_t al = index[a.l], cl = index[c.l];
            return al != cl ? al < cl : index[a.r] < index[c.r];
        });
        merges.insert(merges.end(), local.begin(), local.end());
    }
    // Python's sorted(key=(score, len_l, len_r), reverse=True) is stable: equal keys keep their order.
    std::stable_sort(merges.begin(), merges.end(), [](const M& a, const M& c) {
        if (a.score != c.score) return a.score > c.score;
        if (a.len_l != c.len_l) return a.len_l > c.len_l;
        return a.len_r > c.len_r;
    });
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(merges.size());
    for (const M& m : merges) out.emplace_back(std::string(m.l), std::string(m.r));
    return out;
}

Result<std::pair<nlohmann::json, nlohmann::json>> gguf_vocab_to_hf_json(const GgufVocab& v) {
    const size_t n = v.tokens.size();
    if (n == 0) return make_error("GGUF tokenizer: tokenizer.ggml.tokens is missing or empty");
    if (n >= static_cast<size_t>(INT32_MAX)) return errorf("GGUF tokenizer: {} tokens do not fit 32-bit ids", n);
    if (!v.token_types.empty() && v.token_types.size() != n) {
        return errorf("GGUF tokenizer: tokenizer.ggml.token_type has {} entries, expected one per token ({})",
                      v.token_types.size(), n);
    }
    if (!v.scores.empty() && v.scores.size() != n) {
        return errorf("GGUF tokenizer: tokenizer.ggml.scores has {} entries, expected one per token ({})",
                      v.scores.size(), n);
    }
    const auto type_of = [&](size_t i) {
        return v.token_types.empty() ? static_cast<int32_t>(GgufTokenType::normal) : v.token_types[i];
    };
    for (size_t i = 0; i < v.token_types.size(); ++i) {
        if (v.token_types[i] < 0 || v.token_types[i] > 6) {
            return errorf("GGUF tokenizer: token {} {:?} has token_type {} (expected 0..6: undefined, normal, "
                          "unknown, control, user_defined, unused, byte)", i, v.tokens[i], v.token_types[i]);
        }
    }
    const auto check_id = [&](const std::optional<int64_t>& id, const char* key) -> Status {
        if (id && (*id < 0 || *id >= static_cast<int64_t>(n))) {
            return errorf("GGUF tokenizer: tokenizer.ggml.{} is {}, outside the vocabulary (expected 0 <= id < {})",
                          key, *id, n);
        }
        return ok();
    };
    HR_TRY(check_id(v.bos_id, "bos_token_id"));
    HR_TRY(check_id(v.eos_id, "eos_token_id"));
    HR_TRY(check_id(v.unk_id, "unknown_token_id"));
    HR_TRY(check_id(v.pad_id, "padding_token_id"));

    const bool gpt2 = v.model == "gpt2";
    const bool llama = v.model == "llama";
    if (!gpt2 && !llama) {
        return errorf("GGUF tokenizer: tokenizer.ggml.model is {:?}; headroom supports \"gpt2\" (byte-level BPE) and "
                      "\"llama\" (SentencePiece BPE)", v.model.empty() ? std::string("<missing>") : v.model);
    }

    // Tokens that are matched whole in the text: control and user-defined ones, and the special ids.
    std::vector<uint8_t> added(n, 0), special(n, 0);
    for (size_t i = 0; i < n; ++i) {
        const int32_t t = type_of(i);
        if (t == static_cast<int32_t>(GgufTokenType::control)) added[i] = special[i] = 1;
        if (t == static_cast<int32_t>(GgufTokenType::user_defined)) added[i] = 1;
        if (llama && t == static_cast<int32_t>(GgufTokenType::byte) && parse_byte_token(v.tokens[i]) < 0) {
            return errorf("GGUF tokenizer: token {} {:?} has token_type byte but is not named <0xXX>", i, v.tokens[i]);
        }
    }
    for (const auto& id : {v.bos_id, v.eos_id, v.unk_id, v.pad_id}) {
        if (id) added[*id] = special[*id] = 1;
    }

    nlohmann::json tj = nlohmann::json::object();
    nlohmann::json model = {{"type", "BPE"}, {"dropout", nullptr}};
    nlohmann::json vocab = nlohmann::json::object();
    for (size_t i = 0; i < n; ++i) {
        const std::string& t = v.tokens[i];
        if (added[i] && utf8::first_invalid(t)) {
            return errorf("GGUF tokenizer: special or user-defined token {} is not valid UTF-8", i);
        }
        // note: transformers respells a byte-level token that uses characters outside the byte alphabet
        // into it (byte by byte); control and user-defined tokens keep their text, since they are matched
        // literally in the input (transformers respells those too and then cannot match them).
        if (gpt2 && !added[i] && !in_byte_alphabet(t)) vocab[to_byte_alphabet(t)] = i;
        else vocab[t] = i;
    }
    model["vocab"] = std::move(vocab);

    nlohmann::json merges = nlohmann::json::array();
    if (!v.merges.empty()) {
        for (size_t i = 0; i < v.merges.size(); ++i) {
            const std::string& m = v.merges[i];
            const size_t sp = m.find(' ');
            if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos) {
                return errorf("GGUF tokenizer: tokenizer.ggml.merges[{}] is {:?} (expected two tokens separated by "
                              "one space)", i, m);
            }
            merges.push_back({m.substr(0, sp), m.substr(sp + 1)});
        }
    } else if (gpt2) {
        return make_error("GGUF tokenizer: a \"gpt2\" (byte-level BPE) vocabulary needs tokenizer.ggml.merges, "
                          "which is missing or empty");
    } else {
        if (v.scores.empty()) {
            return make_error("GGUF tokenizer: a \"llama\" vocabulary needs tokenizer.ggml.merges or "
                              "tokenizer.ggml.scores to rank merges; both are missing");
        }
        HR_ASSIGN(auto derived, merges_from_scores(v.tokens, v.scores));
        for (auto& [a, b] : derived) merges.push_back({std::move(a), std::move(b)});
    }
    model["merges"] = std::move(merges);

    nlohmann::json normalizer = nullptr, pre = nullptr, decoder = nullptr;
    if (gpt2) {
        model["fuse_unk"] = false;
        model["byte_fallback"] = false;
        std::string pre_name = v.pre;
        if (pre_name.empty()) {
            log_warn("GGUF tokenizer: no tokenizer.ggml.pre; using \"default\" (GPT-2's ByteLevel regex)");
            pre_name = "default";
        }
        const PreSpec* spec = nullptr;
        for (const auto& p : kPreSpecs) {
            if (pre_name == p.name) spec = &p;
        }
        if (spec == nullptr) {
            return errorf("GGUF tokenizer: unsupported tokenizer.ggml.pre {:?} (known: {})", pre_name, known_pre_list());
        }
        switch (spec->kind) {
            case PreSpec::Kind::gpt2_regex: pre = byte_level(true); break;
            case PreSpec::Kind::digits_then_gpt2:
                // SmolLM2's tokenizer.json (StarCoder's): each digit on its own, then GPT-2's ByteLevel.
                pre = {{"type", "Sequence"},
                       {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
                break;
            case PreSpec::Kind::llama3:
                pre = split_then_byte_level(kLlama3Split);
                model["ignore_merges"] = true;  // as Llama 3's tokenizer.json (and llama.cpp) has it
                break;
            case PreSpec::Kind::qwen2:
                normalizer = {{"type", "NFC"}};  // Qwen2's tokenizer.json normalizes to NFC
                pre = split_then_byte_level(kQwen2Split);
                break;
        }
        decoder = byte_level(true);
    } else {
        // SentencePiece BPE as transformers' LlamaTokenizer builds it: Metaspace ("first": only at the
        // start of the text), byte fallback, fused unknowns; add_space_prefix=false drops the prefix space.
        if (!v.pre.empty() && v.pre != "default") {
            log_warn("GGUF tokenizer: tokenizer.ggml.pre {:?} is ignored for a \"llama\" (SentencePiece) vocabulary", v.pre);
        }
        const bool prefix = v.add_space_prefix.value_or(true);
        model["fuse_unk"] = true;
        model["byte_fallback"] = true;
        pre = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", prefix ? "first" : "never"},
               {"split", false}};
        nlohmann::json steps = {
            {{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
            {{"type", "ByteFallback"}},
            {{"type", "Fuse"}}};
        if (prefix) steps.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
        decoder = {{"type", "Sequence"}, {"decoders", std::move(steps)}};
    }
    tj["model"] = std::move(model);
    tj["normalizer"] = std::move(normalizer);
    tj["pre_tokenizer"] = std::move(pre);
    tj["decoder"] = std::move(decoder);

    nlohmann::json added_tokens = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
        if (!added[i]) continue;
        added_tokens.push_back({{"id", i}, {"content", v.tokens[i]}, {"single_word", false}, {"lstrip", false},
                                {"rstrip", false}, {"normalized", false}, {"special", special[i] != 0}});
    }
    tj["added_tokens"] = std::move(added_tokens);

    // BOS/EOS around every encoding: transformers defaults add_bos_token to true for "llama"
    // vocabularies and to false otherwise; add_eos_token defaults to false.
    const bool add_bos = v.add_bos.value_or(llama);
    const bool add_eos = v.add_eos.value_or(false);
    nlohmann::json single = nlohmann::json::array();
    nlohmann::json specials = nlohmann::json::object();
    const auto special_item = [&](const std::optional<int64_t>& id, const char* what) -> Status {
        if (!id) return errorf("GGUF tokenizer: tokenizer.ggml.add_{}_token is true but there is no {}_token_id", what, what);
        const std::string& t = v.tokens[*id];
        single.push_back({{"SpecialToken", {{"id", t}, {"type_id", 0}}}});
        specials[t] = {{"id", t}, {"ids", {*id}}, {"tokens", {t}}};
        return ok();
    };
    if (add_bos) HR_TRY(special_item(v.bos_id, "bos"));
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    if (add_eos) HR_TRY(special_item(v.eos_id, "eos"));
    tj["post_processor"] = {{"type", "TemplateProcessing"}, {"single", std::move(single)},
                            {"special_tokens", std::move(specials)}};

    nlohmann::json cfg = nlohmann::json::object();
    const auto cfg_token = [&](const char* key, const std::optional<int64_t>& id) {
        if (id) cfg[key] = v.tokens[*id];
    };
    cfg_token("bos_token", v.bos_id);
    cfg_token("eos_token", v.eos_id);
    cfg_token("unk_token", v.unk_id);
    cfg_token("pad_token", v.pad_id);
    if (!v.chat_template.empty()) cfg["chat_template"] = v.chat_template;
    return std::make_pair(std::move(tj), std::move(cfg));
}

}  // namespace tok

Result<std::unique_ptr<Tokenizer>> tokenizer_from_gguf_vocab(const tok::GgufVocab& v) {
    HR_ASSIGN(auto parts, tok::gguf_vocab_to_hf_json(v));
    auto t = Tokenizer::from_json_and_config(parts.first, parts.second);
    if (!t.ok()) return errorf("GGUF tokenizer: {}", t.error().message);
    return t;
}

}  // namespace hr

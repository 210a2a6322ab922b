// Normalizers (Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD via ICU) and pre-tokenizers (Sequence, ByteLevel, Split, Metaspace,
// Digits)
// with Hugging Face's split semantics; anything else is rejected by name at load time.
#include "tokenizer/pretokenize.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uniset.h>
#include <unicode/unistr.h>
#include <unicode/utypes.h>

#include "tokenizer/utf8.h"

namespace hr::tok {

namespace {

// GPT-2's pre-tokenization regex, used by the ByteLevel pre-tokenizer when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<std::shared_ptr<Regex>> gpt2_regex() {
    static const std::shared_ptr<Regex> shared = [] {
        auto r = Regex::compile(kGpt2Pattern);
        return r.ok() ? std::shared_ptr<Regex>(std::move(r).value().release()) : std::shared_ptr<Regex>();
    }();
    if (!shared) return make_error("ByteLevel pre-tokenizer: the GPT-2 regex does not compile (PCRE2 without Unicode?)");
    return shared;
}

// Digits: Hugging Face splits on Rust's char::is_numeric, i.e. general categories Nd, Nl and No, one
// match per character; PCRE2's \p{N} is the same set (Unicode-version caveats as in docs/tokenizer.md).
Result<std::shared_ptr<Regex>> numeric_regex() {
    static const std::shared_ptr<Regex> shared = [] {
        auto r = Regex::compile(R"(\p{N})");
        return r.ok() ? std::shared_ptr<Regex>(std::move(r).value().release()) : std::shared_ptr<Regex>();
    }();
    if (!shared) return make_error("Digits pre-tokenizer: the \\p{N} regex does not compile (PCRE2 without Unicode?)");
    return shared;
}

std::string type_of(const nlohmann::json& j) {
    return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : std::string();
}

// note: `tokenizers` normalizes with the unicode-normalization-alignments crate, whose tables are
// Unicode 9.0: a character assigned later (e.g. U+1DF8, ccc 228 since Unicode 10) is to it a starter
// that never decomposes or composes, so marks around it are not reordered. ICU 72 has Unicode 15 data,
// so its normalizers are filtered to the characters assigned by Unicode 9.0; ICU leaves the others
// unchanged and normalizes the spans between them independently, which is exactly what 9.0 tables do.
// Unicode's stability policy keeps decompositions and combining classes of assigned characters fixed.
constexpr const char* kHfUnicodeSet = "[:age=9.0:]";

// One normalizer per form; the singletons and the frozen set are immutable, so this is thread-safe.
struct IcuForm {
    icu::UnicodeSet set;
    std::unique_ptr<icu::FilteredNormalizer2> filtered;
    std::string error;
};

IcuForm make_form(UnicodeForm form) {
    IcuForm f;
    UErrorCode err = U_ZERO_ERROR;
    const icu::Normalizer2* base = nullptr;
    switch (form) {
        case UnicodeForm::nfc: base = icu::Normalizer2::getNFCInstance(err); break;
        case UnicodeForm::nfd: base = icu::Normalizer2::getNFDInstance(err); break;
        case UnicodeForm::nfkc: base = icu::Normalizer2::getNFKCInstance(err); break;
        case UnicodeForm::nfkd: base = icu::Normalizer2::getNFKDInstance(err); break;
    }
    if (U_SUCCESS(err)) f.set.applyPattern(icu::UnicodeString(kHfUnicodeSet, -1, US_INV), err);
    if (U_FAILURE(err) || base == nullptr || f.set.isEmpty()) {
        f.error = fmt::format("tokenizer: ICU normalizer data is unavailable ({})", u_errorName(err));
        return f;
    }
    f.set.freeze();
    f.filtered = std::make_unique<icu::FilteredNormalizer2>(*base, f.set);
    return f;
}

Result<const icu::Normalizer2*> icu_normalizer(UnicodeForm form) {
    static const IcuForm forms[] = {make_form(UnicodeForm::nfc), make_form(UnicodeForm::nfd),
                                    make_form(UnicodeForm::nfkc), make_form(UnicodeForm::nfkd)};
    const IcuForm& f = forms[static_cast<int>(form)];
    if (!f.filtered) return make_error(f.error);
    return static_cast<const icu::Normalizer2*>(f.filtered.get());
}

// Normalizes valid UTF-8 (encode() validates its input; added-token contents come from parsed JSON).
// note: ICU works on the UTF-8 bytes directly, and quick-checks first, so text that is already in the
// form (almost all text for NFC) is copied without a UTF-16 round trip.
Result<std::string> unicode_normalize(std::string s, UnicodeForm form) {
    HR_ASSIGN(const icu::Normalizer2* n, icu_normalizer(form));
    if (s.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        return errorf("tokenizer: expected text under 2 GiB for Unicode normalization, found {} bytes", s.size());
    }
    UErrorCode err = U_ZERO_ERROR;
    const icu::StringPiece in(s.data(), static_cast<int32_t>(s.size()));
    if (n->isNormalizedUTF8(in, err) && U_SUCCESS(err)) return s;
    err = U_ZERO_ERROR;
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    icu::StringByteSink<std::string> sink(&out);
    n->normalizeUTF8(0, in, sink, nullptr, err);
    if (U_FAILURE(err)) return errorf("tokenizer: Unicode normalization failed ({})", u_errorName(err));
    return out;
}

bool get_bool(const nlohmann::json& j, const char* key, bool dflt) {
    return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : dflt;
}

// Parses {"String": s} or {"Regex": r} into (literal, regex).
Status parse_pattern(const nlohmann::json& j, const char* owner, std::string& literal, std::shared_ptr<Regex>& regex) {
    if (!j.is_object()) return errorf("tokenizer.json: {} pattern must be an object with String or Regex", owner);
    if (j.contains("String") && j["String"].is_string()) {
        literal = j["String"].get<std::string>();
        return ok();
    }
    if (j.contains("Regex") && j["Regex"].is_string()) {
        auto r = Regex::compile(j["Regex"].get<std::string>());
        if (!r.ok()) return r.take_error();
        regex = std::shared_ptr<Regex>(std::move(r).value().release());
        return ok();
    }
    return errorf("tokenizer.json: {} pattern must have a String or Regex field", owner);
}

// Matches of a literal pattern, leftmost non-overlapping, with the gaps between them.
MatchRanges literal_matches(std::string_view text, std::string_view lit) {
    MatchRanges out;
    if (lit.empty()) {
        out.push_back({{0, text.size()}, false});
        return out;
    }
    size_t prev = 0, pos = 0;
    while ((pos = text.find(lit, pos)) != std::string_view::npos) {
        if (pos != prev) out.push_back({{prev, pos}, false});
        out.push_back({{pos, pos + lit.size()}, true});
        pos += lit.size();
        prev = pos;
    }
    if (prev != text.size()) out.push_back({{prev, text.size()}, false});
    return out;
}

Result<MatchRanges> regex_matches(std::string_view text, const Regex& re) {
    MatchRanges out;
    if (text.empty()) {
        out.push_back({{0, 0}, false});
        return out;
    }
    HR_ASSIGN(auto found, re.find_all(text));
    size_t prev = 0;
    for (auto [b, e] : found) {
        if (b != prev) out.push_back({{prev, b}, false});
        out.push_back({{b, e}, true});
        prev = e;
    }
    if (prev != text.size()) out.push_back({{prev, text.size()}, false});
    return out;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    if (from.empty()) return std::string(s);
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    while (true) {
        const size_t f = s.find(from, pos);
        if (f == std::string_view::npos) break;
        out.append(s.substr(pos, f - pos));
        out.append(to);
        pos = f + from.size();
    }
    out.append(s.substr(pos));
    return out;
}

std::string to_byte_level(std::string_view s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (char c : s) utf8::append_cp(out, utf8::byte_to_cp(static_cast<uint8_t>(c)));
    return out;
}

}  // namespace

std::vector<std::pair<size_t, size_t>> split_by_behavior(const MatchRanges& matches, SplitBehavior behavior) {
    std::vector<std::pair<size_t, size_t>> out;
    switch (behavior) {
        case SplitBehavior::isolated:
            for (const auto& m : matches) out.push_back(m.first);
            break;
        case SplitBehavior::removed:
            for (const auto& m : matches) {
                if (!m.second) out.push_back(m.first);
            }
            break;
        case SplitBehavior::contiguous: {
            bool prev_match = false;
            for (const auto& m : matches) {
                if (m.second == prev_match && !out.empty()) out.back().second = m.first.second;
                else out.push_back(m.first);
                prev_match = m.second;
            }
            break;
        }
        case SplitBehavior::merged_with_previous: {
            bool prev_match = false;
            for (const auto& m : matches) {
                if (m.second && !prev_match && !out.empty()) out.back().second = m.first.second;
                else out.push_back(m.first);
                prev_match = m.second;
            }
            break;
        }
        case SplitBehavior::merged_with_next: {
            bool prev_match = false;
            for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
                if (it->second && !prev_match && !out.empty()) out.back().first = it->first.first;
                else out.push_back(it->first);
                prev_match = it->second;
            }
            std::reverse(out.begin(), out.end());
            break;
        }
    }
    return out;
}

Result<Normalizer> Normalizer::from_json(const nlohmann::json& j) {
    Normalizer n;
    if (!j.is_null()) HR_TRY(n.add(j));
    return n;
}

Status Normalizer::add(const nlohmann::json& j) {
    const std::string type = type_of(j);
    if (type == "Sequence") {
        if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
            return make_error("tokenizer.json: Sequence normalizer needs a \"normalizers\" array");
        }
        for (const auto& sub : j["normalizers"]) HR_TRY(add(sub));
        return ok();
    }
    if (type == "Prepend") {
        if (!j.contains("prepend") || !j["prepend"].is_string()) {
            return make_error("tokenizer.json: Prepend normalizer needs a \"prepend\" string");
        }
        steps_.push_back({NormalizerStep::Kind::prepend, j["prepend"].get<std::string>(), {}, nullptr});
        return ok();
    }
    if (type == "Replace") {
        NormalizerStep s{NormalizerStep::Kind::replace, {}, {}, nullptr};
        HR_TRY(parse_pattern(j.value("pattern", nlohmann::json()), "Replace normalizer", s.literal, s.regex));
        if (!j.contains("content") || !j["content"].is_string()) {
            return make_error("tokenizer.json: Replace normalizer needs a \"content\" string");
        }
        s.content = j["content"].get<std::string>();
        steps_.push_back(std::move(s));
        return ok();
    }
    static constexpr std::pair<const char*, UnicodeForm> kForms[] = {
        {"NFC", UnicodeForm::nfc}, {"NFD", UnicodeForm::nfd}, {"NFKC", UnicodeForm::nfkc}, {"NFKD", UnicodeForm::nfkd}};
    for (auto [name, form] : kForms) {
        if (type != name) continue;
        HR_TRY(icu_normalizer(form));  // fail at load time, not on the first encode, if ICU lacks its data
        NormalizerStep s{NormalizerStep::Kind::unicode, {}, {}, nullptr, form};
        steps_.push_back(std::move(s));
        return ok();
    }
    return errorf("tokenizer.json: unsupported normalizer {:?} (supported: Sequence, Prepend, Replace, NFC, NFD, "
                  "NFKC, NFKD)",
                  type.empty() ? j.dump() : type);
}

Result<std::string> Normalizer::apply(std::string s) const {
    for (const NormalizerStep& st : steps_) {
        if (st.kind == NormalizerStep::Kind::prepend) {
            if (!s.empty()) s.insert(0, st.literal);
        } else if (st.kind == NormalizerStep::Kind::unicode) {
            HR_ASSIGN(s, unicode_normalize(std::move(s), st.form));
        } else if (st.regex == nullptr) {
            s = replace_all(s, st.literal, st.content);
        } else {
            HR_ASSIGN(auto found, st.regex->find_all(s));
            std::string out;
            size_t prev = 0;
            for (auto [b, e] : found) {
                out.append(s, prev, b - prev);
                out.append(st.content);
                prev = e;
            }
            out.append(s, prev, std::string::npos);
            s = std::move(out);
        }
    }
    return s;
}

Result<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& j) {
    PreTokenizer p;
    if (!j.is_null()) HR_TRY(p.add(j));
    return p;
}

Status PreTokenizer::add(const nlohmann::json& j) {
    const std::string type = type_of(j);
    if (type == "Sequence") {
        if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
            return make_error("tokenizer.json: Sequence pre-tokenizer needs a \"pretokenizers\" array");
        }
        for (const auto& sub : j["pretokenizers"]) HR_TRY(add(sub));
        return ok();
    }
    PreTokenizerStep s;
    if (type == "ByteLevel") {
        s.kind = PreTokenizerStep::Kind::byte_level;
        s.add_prefix_space = get_bool(j, "add_prefix_space", true);
        s.use_regex = get_bool(j, "use_regex", true);
        if (s.use_regex) {
            HR_ASSIGN(s.regex, gpt2_regex());
        }
    } else if (type == "Split") {
        s.kind = PreTokenizerStep::Kind::split;
        HR_TRY(parse_pattern(j.value("pattern", nlohmann::json()), "Split pre-tokenizer", s.literal, s.regex));
        const std::string b = j.value("behavior", std::string());
        if (b == "Removed") s.behavior = SplitBehavior::removed;
        else if (b == "Isolated") s.behavior = SplitBehavior::isolated;
        else if (b == "MergedWithPrevious") s.behavior = SplitBehavior::merged_with_previous;
        else if (b == "MergedWithNext") s.behavior = SplitBehavior::merged_with_next;
        else if (b == "Contiguous") s.behavior = SplitBehavior::contiguous;
        else return errorf("tokenizer.json: Split pre-tokenizer has unknown behavior {:?}", b);
        s.invert = get_bool(j, "invert", false);
    } else if (type == "Metaspace") {
        s.kind = PreTokenizerStep::Kind::metaspace;
        s.replacement = j.value("replacement", std::string("\xE2\x96\x81"));
        if (size_t i = 0; s.replacement.empty() || utf8::first_invalid(s.replacement) ||
                          (utf8::next_cp(s.replacement, i), i != s.replacement.size())) {
            return make_error("tokenizer.json: Metaspace replacement must be exactly one character");
        }
        if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
            const std::string ps = j["prepend_scheme"].get<std::string>();
            if (ps == "always") s.prepend = PreTokenizerStep::Prepend::always;
            else if (ps == "first") s.prepend = PreTokenizerStep::Prepend::first;
            else if (ps == "never") s.prepend = PreTokenizerStep::Prepend::never;
            else return errorf("tokenizer.json: Metaspace has unknown prepend_scheme {:?}", ps);
        } else {
            // Files from before prepend_scheme existed carry add_prefix_space instead.
            s.prepend = get_bool(j, "add_prefix_space", true) ? PreTokenizerStep::Prepend::always
                                                              : PreTokenizerStep::Prepend::never;
        }
        s.split = get_bool(j, "split", true);
    } else if (type == "Digits") {
        // individual_digits: every numeric character its own piece; else runs of them stay together.
        s.kind = PreTokenizerStep::Kind::digits;
        if (j.contains("individual_digits") && !j["individual_digits"].is_boolean()) {
            return errorf("tokenizer.json: Digits pre-tokenizer expects a boolean individual_digits, found {}",
                          j["individual_digits"].dump());
        }
        HR_ASSIGN(s.regex, numeric_regex());
        s.behavior = get_bool(j, "individual_digits", false) ? SplitBehavior::isolated : SplitBehavior::contiguous;
    } else {
        return errorf("tokenizer.json: unsupported pre-tokenizer {:?} (supported: Sequence, ByteLevel, Split, Metaspace, "
                      "Digits)",
                      type.empty() ? j.dump() : type);
    }
    steps_.push_back(std::move(s));
    return ok();
}

Status PreTokenizer::apply(std::vector<Piece>& pieces) const {
    std::vector<Piece> next;
    for (const PreTokenizerStep& st : steps_) {
        next.clear();
        next.reserve(pieces.size());
        for (Piece& p : pieces) {
            if (st.kind == PreTokenizerStep::Kind::metaspace) {
                std::string t = replace_all(p.text, " ", st.replacement);
                const bool starts = t.rfind(st.replacement, 0) == 0;
                if (!starts && (st.prepend == PreTokenizerStep::Prepend::always ||
                                (st.prepend == PreTokenizerStep::Prepend::first && p.at_origin))) {
                    t.insert(0, st.replacement);
                }
                if (!st.split) {
                    if (!t.empty()) next.push_back(Piece{std::move(t), p.at_origin});
                    continue;
                }
                const MatchRanges m = literal_matches(t, st.replacement);
                for (auto [b, e] : split_by_behavior(m, SplitBehavior::merged_with_next)) {
                    if (e > b) next.push_back(Piece{t.substr(b, e - b), p.at_origin && b == 0});
                }
                continue;
            }
            std::string text = std::move(p.text);
            if (st.kind == PreTokenizerStep::Kind::byte_level && st.add_prefix_space && text.rfind(' ', 0) != 0) {
                text.insert(0, " ");
            }
            std::vector<std::pair<size_t, size_t>> ranges;
            if (st.regex != nullptr || st.kind == PreTokenizerStep::Kind::split) {
                MatchRanges m;
                if (st.regex != nullptr) {
                    HR_ASSIGN(m, regex_matches(text, *st.regex));
                } else {
                    m = literal_matches(text, st.literal);
                }
                if (st.invert) {
                    for (auto& r : m) r.second = !r.second;
                }
                ranges = split_by_behavior(m, st.kind == PreTokenizerStep::Kind::byte_level ? SplitBehavior::isolated
                                                                                             : st.behavior);
            } else {
                ranges.emplace_back(0, text.size());
            }
            for (auto [b, e] : ranges) {
                if (e <= b) continue;
                std::string_view sub = std::string_view(text).substr(b, e - b);
                Piece np{st.kind == PreTokenizerStep::Kind::byte_level ? to_byte_level(sub) : std::string(sub),
                         p.at_origin && b == 0};
                next.push_back(std::move(np));
            }
        }
        pieces.swap(next);
    }
    return ok();
}

}  // namespace hr::tok

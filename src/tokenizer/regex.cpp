// PCRE2 wrapper: compile once with UTF|UCP (+JIT), match with per-call match data and a match limit
// so that a pathological pattern from a tokenizer.json fails with an error instead of spinning.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace hr::tok {

namespace {
std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof(buf));
    return std::string(reinterpret_cast<const char*>(buf));
}

// note: one match context per thread; the limits bound the work a single match may do.
struct MatchScratch {
    pcre2_match_context* mctx = nullptr;
    pcre2_match_data* data = nullptr;
    MatchScratch() {
        mctx = pcre2_match_context_create(nullptr);
        pcre2_set_match_limit(mctx, 10'000'000);
        pcre2_set_depth_limit(mctx, 100'000);
        data = pcre2_match_data_create(4, nullptr);
    }
    ~MatchScratch() {
        pcre2_match_data_free(data);
        pcre2_match_context_free(mctx);
    }
};
MatchScratch& scratch() {
    thread_local MatchScratch s;
    return s;
}

// Unicode White_Space, which is what \s means in Oniguruma (Hugging Face's regex engine). PCRE2's \s
// differs (it includes U+180E), so \s and \S are rewritten to this explicit set.
constexpr const char* kWhiteSpaceSet =
    R"(\x{9}-\x{d}\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000})";

std::string rewrite_whitespace_classes(const std::string& p) {
    std::string out;
    out.reserve(p.size() + 64);
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char n = p[i + 1];
            if (n == 's') {
                out += in_class ? std::string(kWhiteSpaceSet) : "[" + std::string(kWhiteSpaceSet) + "]";
            } else if (n == 'S' && !in_class) {
                out += "[^" + std::string(kWhiteSpaceSet) + "]";
            } else {
                out.push_back(c);
                out.push_back(n);
            }
            ++i;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            class_start = out.size() + 1;
            out.push_back(c);
            if (i + 1 < p.size() && p[i + 1] == '^') {
                out.push_back('^');
                ++i;
                class_start = out.size();
            }
            continue;
        }
        if (in_class && c == ']' && out.size() > class_start) in_class = false;
        out.push_back(c);
    }
    return out;
}
}  // namespace

Result<std::unique_ptr<Regex>> Regex::compile(const std::string& original) {
    const std::string pattern = rewrite_whitespace_classes(original);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (code == nullptr) {
        return errorf("tokenizer regex {:?} does not compile at offset {}: {}", original, off, pcre2_message(err));
    }
    std::unique_ptr<Regex> r(new Regex());
    r->pattern_ = original;
    r->code_ = code;
    r->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    return r;
}

Regex::~Regex() {
    if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Result<std::vector<std::pair<size_t, size_t>>> Regex::find_all(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> out;
    auto* code = static_cast<pcre2_code*>(code_);
    MatchScratch& s = scratch();
    size_t pos = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    while (pos <= text.size()) {
        const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.data, s.mctx)
                            : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.data, s.mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            return errorf("tokenizer regex {:?} failed at byte {}: {}", pattern_, pos, pcre2_message(rc));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
        const size_t b = ov[0], e = ov[1];
        if (e == b) {
            // Empty match: step over one character and search again.
            if (b >= text.size()) break;
            pos = b + std::max<size_t>(1, utf8::valid_seq_len(text, b));
            continue;
        }
        out.emplace_back(b, e);
        pos = e;
    }
    return out;
}

bool Regex::search(std::string_view text) const {
    auto* code = static_cast<pcre2_code*>(code_);
    MatchScratch& s = scratch();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), 0, PCRE2_NO_UTF_CHECK, s.data, s.mctx)
                        : pcre2_match(code, subject, text.size(), 0, PCRE2_NO_UTF_CHECK, s.data, s.mctx);
    return rc >= 0;
}

}  // namespace hr::tok

// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) used for the split
// regexes of tokenizer.json; never std::regex on user text (its backtracking blows up).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace hr::tok {

class Regex {
public:
    // Compiles pattern; the error names the pattern and PCRE2's message.
    static Result<std::unique_ptr<Regex>> compile(const std::string& pattern);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // All non-overlapping matches in text (valid UTF-8), left to right, as byte ranges [begin, end).
    // Empty matches are skipped (the search moves on one character), as Oniguruma's find_iter does.
    // note: thread-safe; match data is per call.
    Result<std::vector<std::pair<size_t, size_t>>> find_all(std::string_view text) const;

    // True if the pattern matches somewhere in text.
    bool search(std::string_view text) const;

    const std::string& pattern() const { return pattern_; }

private:
    Regex() = default;
    std::string pattern_;
    void* code_ = nullptr;  // pcre2_code_8*
    bool jit_ = false;
};

}  // namespace hr::tok

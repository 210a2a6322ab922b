// UTF-8 helpers: validation with Rust's rules, lossy conversion with "maximal subpart" replacement,
// and the GPT-2 byte-level alphabet.
#include "core/utf8.h"

#include <array>

namespace hr::utf8 {

size_t valid_seq_len(std::string_view s, size_t i) {
    const size_t n = s.size();
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t c = b(i);
    if (c < 0x80) return 1;
    const auto cont = [&](size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (i + 1 >= n) return 0;
        const uint8_t c1 = b(i + 1);
        // note: E0 needs A0..BF (no overlongs), ED needs 80..9F (no surrogates).
        const bool ok1 = (c == 0xE0) ? (c1 >= 0xA0 && c1 <= 0xBF)
                         : (c == 0xED) ? (c1 >= 0x80 && c1 <= 0x9F)
                                       : (c1 >= 0x80 && c1 <= 0xBF);
        return ok1 && cont(i + 2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (i + 1 >= n) return 0;
        const uint8_t c1 = b(i + 1);
        const bool ok1 = (c == 0xF0) ? (c1 >= 0x90 && c1 <= 0xBF)
                         : (c == 0xF4) ? (c1 >= 0x80 && c1 <= 0x8F)
                                       : (c1 >= 0x80 && c1 <= 0xBF);
        return ok1 && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    return 0;
}

std::optional<size_t> first_invalid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        if (static_cast<uint8_t>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const size_t l = valid_seq_len(s, i);
        if (l == 0) return i;
        i += l;
    }
    return std::nullopt;
}

uint32_t next_cp(std::string_view s, size_t& i) {
    const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[k])); };
    const uint32_t c = b(i);
    if (c < 0x80) {
        i += 1;
        return c;
    }
    // Callers pass text that should be valid, but a template or a request can carry any bytes: an
    // invalid or truncated sequence decodes as U+FFFD one byte at a time instead of reading past s.
    if (valid_seq_len(s, i) == 0) {
        i += 1;
        return 0xFFFD;
    }
    if (c < 0xE0) {
        const uint32_t cp = ((c & 0x1F) << 6) | (b(i + 1) & 0x3F);
        i += 2;
        return cp;
    }
    if (c < 0xF0) {
        const uint32_t cp = ((c & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F);
        i += 3;
        return cp;
    }
    const uint32_t cp =
        ((c & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F);
    i += 4;
    return cp;
}

void append_cp(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

// Length of the longest prefix at s[i] that is a valid start of a sequence (the "maximal subpart"
// that gets one U+FFFD); always at least 1.
static size_t maximal_subpart(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t c = b(i);
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 1;
    }
    size_t k = 1;
    for (; k <= need && i + k < s.size(); ++k) {
        const uint8_t ck = b(i + k);
        const uint8_t l = (k == 1) ? lo : 0x80;
        const uint8_t h = (k == 1) ? hi : 0xBF;
        if (ck < l || ck > h) break;
    }
    return k;
}

std::string lossy(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        if (static_cast<uint8_t>(bytes[i]) < 0x80) {
            out.push_back(bytes[i++]);
            continue;
        }
        const size_t l = valid_seq_len(bytes, i);
        if (l > 0) {
            out.append(bytes.substr(i, l));
            i += l;
        } else {
            out.append("\xEF\xBF\xBD");
            i += maximal_subpart(bytes, i);
        }
    }
    return out;
}

bool ends_with_incomplete(std::string_view s) {
    // Look back at most 3 bytes for a lead byte whose sequence is a valid but unfinished prefix.
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const size_t i = n - back;
        const uint8_t c = static_cast<uint8_t>(s[i]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        if (c < 0x80) return false;
        return maximal_subpart(s, i) == back && valid_seq_len(s, i) == 0;
    }
    return false;
}

namespace {
struct ByteTables {
    std::array<uint32_t, 256> b2c{};
    std::array<int16_t, 324> c2b{};
    ByteTables() {
        c2b.fill(-1);
        uint32_t n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            b2c[b] = printable ? static_cast<uint32_t>(b) : 256 + n++;
            c2b[b2c[b]] = static_cast<int16_t>(b);
        }
    }
};
const ByteTables& tables() {
    static const ByteTables t;
    return t;
}
}  // namespace

uint32_t byte_to_cp(uint8_t b) { return tables().b2c[b]; }

int cp_to_byte(uint32_t cp) { return cp < tables().c2b.size() ? tables().c2b[cp] : -1; }

bool is_white_space(uint32_t cp) {
    if (cp >= 0x09 && cp <= 0x0D) return true;
    switch (cp) {
        case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
        case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return cp >= 0x2000 && cp <= 0x200A;
    }
}

}  // namespace hr::utf8

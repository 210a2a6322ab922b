// Byte-level rules of JSON string content (between the quotes), shared by the constraint matcher and the
// vocabulary precomputation so that both agree exactly on which bytes may appear inside a string.
#pragma once

#include <cstdint>

namespace hr::structured {

// note: \uXXXX escapes are limited to ASCII code points (\u0000-\u007f) so that every escape decodes to
// one byte; other characters are written as raw UTF-8. Surrogate escapes are therefore never produced.
struct StringLexer {
    uint8_t phase = 0;    // 0: normal, 1: after '\', 2: inside \uXXXX
    uint8_t pending = 0;  // UTF-8 continuation bytes still expected
    uint8_t lo = 0x80;    // allowed range of the next continuation byte
    uint8_t hi = 0xBF;
    uint8_t udigits = 0;  // hex digits read inside \u
    uint8_t uval = 0;     // their value (fits: only values <= 0x7f survive)

    bool at_char_boundary() const { return phase == 0 && pending == 0; }

    struct Step {
        bool ok = false;           // the byte is valid here
        bool close = false;        // the byte is the closing '"' (only reported at a char boundary)
        bool starts_char = false;  // the byte starts a new character (counts toward the length)
        int feed = -1;             // decoded byte to feed to the pattern automaton, or -1
        uint8_t range_lo = 0;      // inside an escape: the decoded byte will lie in [range_lo, range_hi]
        uint8_t range_hi = 0;
    };

    static int hex_value(uint8_t b) {
        if (b >= '0' && b <= '9') return b - '0';
        if (b >= 'a' && b <= 'f') return b - 'a' + 10;
        if (b >= 'A' && b <= 'F') return b - 'A' + 10;
        return -1;
    }

    Step step(uint8_t b) {
        Step s;
        if (pending > 0) {
            if (b < lo || b > hi) return s;
            --pending;
            lo = 0x80;
            hi = 0xBF;
            s.ok = true;
            s.feed = b;
            return s;
        }
        if (phase == 0) {
            if (b == '"') {
                s.ok = true;
                s.close = true;
                return s;
            }
            if (b == '\\') {
                phase = 1;
                s.ok = s.starts_char = true;
                s.range_lo = 0;
                s.range_hi = 0x7F;
                return s;
            }
            if (b < 0x20) return s;
            if (b < 0x80) {
                s.ok = s.starts_char = true;
                s.feed = b;
                return s;
            }
            // Lead bytes of well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
            if (b >= 0xC2 && b <= 0xDF) {
                pending = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                pending = 2;
                if (b == 0xE0) lo = 0xA0;
                if (b == 0xED) hi = 0x9F;
            } else if (b >= 0xF0 && b <= 0xF4) {
                pending = 3;
                if (b == 0xF0) lo = 0x90;
                if (b == 0xF4) hi = 0x8F;
            } else {
                return s;
            }
            s.ok = s.starts_char = true;
            s.feed = b;
            return s;
        }
        if (phase == 1) {
            int d = -1;
            switch (b) {
                case '"': d = '"'; break;
                case '\\': d = '\\'; break;
                case '/': d = '/'; break;
                case 'b': d = 0x08; break;
                case 'f': d = 0x0C; break;
                case 'n': d = 0x0A; break;
                case 'r': d = 0x0D; break;
                case 't': d = 0x09; break;
                case 'u':
                    phase = 2;
                    udigits = 0;
                    uval = 0;
                    s.ok = true;
                    s.range_lo = 0;
                    s.range_hi = 0x7F;
                    return s;
                default: return s;
            }
            phase = 0;
            s.ok = true;
            s.feed = d;
            return s;
        }
        // phase 2: \u hex digits
        int h = hex_value(b);
        if (h < 0) return s;
        unsigned v = static_cast<unsigned>(uval) * 16u + static_cast<unsigned>(h);
        unsigned nd = udigits + 1u;
        unsigned shift = 4u * (4u - nd);
        unsigned rlo = v << shift;
        unsigned rhi = rlo + (1u << shift) - 1u;
        if (rlo > 0x7F) return s;
        s.ok = true;
        if (nd == 4) {
            phase = 0;
            s.feed = static_cast<int>(v);
            return s;
        }
        udigits = static_cast<uint8_t>(nd);
        uval = static_cast<uint8_t>(v);
        s.range_lo = static_cast<uint8_t>(rlo);
        s.range_hi = static_cast<uint8_t>(rhi > 0x7F ? 0x7F : rhi);
        return s;
    }
};

}  // namespace hr::structured

// Number prefixes: transitions, digit caps, and feasibility against minimum/maximum.
#include "structured/number_rules.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

namespace hr::structured {

namespace {

// Exact powers of ten as long double (10^0 .. 10^31); calling pow per byte fed was a hot spot.
long double pow10_l(int k) {
    static const auto table = [] {
        std::array<long double, 32> t{};
        t[0] = 1.0L;
        for (size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] * 10.0L;
        return t;
    }();
    return table[static_cast<size_t>(k)];
}

int64_t pow10_i(int k) {
    int64_t r = 1;
    for (int i = 0; i < k; ++i) r *= 10;
    return r;
}

bool int_interval_hits(const NumSpec& s, bool neg, int64_t lo, int64_t hi) {
    // magnitudes [lo, hi] -> values
    int64_t vlo = neg ? -hi : lo, vhi = neg ? -lo : hi;
    if (s.has_min && vhi < s.imin) return false;
    if (s.has_max && vlo > s.imax) return false;
    return true;
}

// magnitudes [a, b) (or [a, a] when closed) -> values, intersect [min, max]
bool real_interval_hits(const NumSpec& s, bool neg, long double a, long double b, bool closed) {
    long double mn = s.has_min ? static_cast<long double>(s.min) : -HUGE_VALL;
    long double mx = s.has_max ? static_cast<long double>(s.max) : HUGE_VALL;
    if (closed) {
        long double v = neg ? -a : a;
        return v >= mn && v <= mx;
    }
    if (!neg) return a <= mx && b > mn;
    return -a >= mn && -b < mx;
}

bool feasible_signed(const NumSpec& s, const NumState& st, bool neg) {
    if (s.integer) {
        const int cap = kMaxIntegerDigits;
        switch (st.phase) {
            case num_start:
            case num_sign: return int_interval_hits(s, neg, 0, pow10_i(cap) - 1);
            case num_zero: return int_interval_hits(s, neg, 0, 0);
            case num_int:
                for (int k = 0; st.int_digits + k <= cap; ++k) {
                    int64_t p = pow10_i(k);
                    if (int_interval_hits(s, neg, st.int_value * p, st.int_value * p + p - 1)) return true;
                }
                return false;
            default: return false;
        }
    }
    const int cap = kMaxNumberIntDigits;
    long double d = static_cast<long double>(st.int_value);
    switch (st.phase) {
        case num_start:
        case num_sign: return real_interval_hits(s, neg, 0.0L, pow10_l(cap), false);
        case num_zero:
        case num_dot: return real_interval_hits(s, neg, d, d + 1.0L, false);
        case num_int:
            for (int k = 0; st.int_digits + k <= cap; ++k) {
                long double p = pow10_l(k);
                if (real_interval_hits(s, neg, d * p, (d + 1.0L) * p, false)) return true;
            }
            return false;
        case num_frac: {
            // note: divide by the exact power of ten (10^-k is inexact) so boundary values compare exactly
            long double scale = pow10_l(st.frac_digits);
            long double base = (d * scale + static_cast<long double>(st.frac_value)) / scale;
            long double unit = 1.0L / scale;
            return real_interval_hits(s, neg, base, base + unit, st.frac_digits >= kMaxNumberFracDigits);
        }
        default: return false;
    }
}

}  // namespace

bool number_feasible(const NumSpec& s, const NumState& st) {
    if (!s.has_min && !s.has_max) return true;
    if (st.phase == num_start) return feasible_signed(s, st, false) || feasible_signed(s, st, true);
    return feasible_signed(s, st, st.neg);
}

bool number_can_end(const NumSpec& s, const NumState& st) {
    if (st.phase != num_zero && st.phase != num_int && st.phase != num_frac) return false;
    if (!s.has_min && !s.has_max) return true;
    if (s.integer) {
        int64_t v = st.neg ? -st.int_value : st.int_value;
        return (!s.has_min || v >= s.imin) && (!s.has_max || v <= s.imax);
    }
    // Parse the exact decimal text the way JSON consumers do (correctly rounded double).
    std::string text = st.phase == num_frac
                           ? fmt::format("{}{}.{:0{}d}", st.neg ? "-" : "", st.int_value, st.frac_value, st.frac_digits)
                           : fmt::format("{}{}", st.neg ? "-" : "", st.int_value);
    double v = std::strtod(text.c_str(), nullptr);
    return (!s.has_min || v >= s.min) && (!s.has_max || v <= s.max);
}

bool number_step(const NumSpec& s, NumState& st, uint8_t b) {
    NumState n = st;
    bool digit = b >= '0' && b <= '9';
    int d = b - '0';
    switch (st.phase) {
        case num_start:
            if (b == '-') {
                n.phase = num_sign;
                n.neg = true;
                break;
            }
            [[fallthrough]];
        case num_sign:
            if (!digit) return false;
            n.phase = d == 0 ? num_zero : num_int;
            n.int_digits = 1;
            n.int_value = d;
            break;
        case num_zero:
            if (b != '.' || s.integer) return false;
            n.phase = num_dot;
            break;
        case num_int:
            if (b == '.' && !s.integer) {
                n.phase = num_dot;
                break;
            }
            if (!digit || st.int_digits >= (s.integer ? kMaxIntegerDigits : kMaxNumberIntDigits)) return false;
            n.int_digits += 1;
            n.int_value = st.int_value * 10 + d;
            break;
        case num_dot:
        case num_frac:
            if (!digit || st.frac_digits >= kMaxNumberFracDigits) return false;
            n.phase = num_frac;
            n.frac_digits += 1;
            n.frac_value = st.frac_value * 10 + d;
            break;
        default: return false;
    }
    if (!number_feasible(s, n)) return false;
    st = n;
    return true;
}

}  // namespace hr::structured

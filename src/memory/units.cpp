// Parsing and printing of byte sizes for the planner and the CLI.
#include "memory/units.h"

#include <cctype>

namespace hr {

namespace {

constexpr uint64_t kMaxSize = 1ull << 50;  // 1 PiB: far above any device; keeps the arithmetic exact

struct Unit {
    std::string_view name;
    uint64_t mult;
};

constexpr Unit kUnits[] = {
    {"", 1},          {"b", 1},
    {"k", kKiB},      {"kib", kKiB},      {"kb", 1000ull},
    {"m", kMiB},      {"mib", kMiB},      {"mb", 1000ull * 1000},
    {"g", kGiB},      {"gib", kGiB},      {"gb", 1000ull * 1000 * 1000},
    {"t", kTiB},      {"tib", kTiB},      {"tb", 1000ull * 1000 * 1000 * 1000},
};

std::string lower(std::string_view s) {
    std::string out;
    for (char c : s) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return out;
}

}  // namespace

Result<uint64_t> parse_byte_size(std::string_view text, std::string_view what) {
    const std::string shown(text);
    auto bad = [&](std::string_view why) {
        return errorf("{}: expected a positive size such as 24GiB, 23.5GB or 24G (G = GiB), found '{}' ({})", what,
                      shown, why);
    };
    size_t i = 0;
    while (i < text.size() && text[i] == ' ') ++i;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
        if (text[i] == '-') return bad("negative");
        ++i;
    }
    // Integer and fraction digits, kept exact: value = int_part + frac_num / frac_den.
    uint64_t int_part = 0, frac_num = 0, frac_den = 1;
    size_t n_digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        int_part = int_part * 10 + static_cast<uint64_t>(text[i] - '0');
        if (int_part > kMaxSize) return bad("too large");
        ++i;
        ++n_digits;
    }
    if (i < text.size() && text[i] == '.') {
        ++i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            if (frac_den < 1000000ull) {  // note: 6 fraction digits at most, so frac_num * mult < 2^20 * 2^40
                frac_num = frac_num * 10 + static_cast<uint64_t>(text[i] - '0');
                frac_den *= 10;
            }
            ++i;
            ++n_digits;
        }
    }
    if (n_digits == 0) return bad("no number");
    while (i < text.size() && text[i] == ' ') ++i;
    const std::string unit = lower(text.substr(i));
    const Unit* found = nullptr;
    for (const Unit& u : kUnits) {
        if (u.name == unit) found = &u;
    }
    if (!found) return bad(fmt::format("unknown unit '{}'", std::string(text.substr(i))));
    if (int_part > kMaxSize / found->mult) return bad("too large, the limit is 1 PiB");
    const uint64_t bytes = int_part * found->mult + frac_num * found->mult / frac_den;  // rounds down
    if (bytes > kMaxSize) return bad("too large, the limit is 1 PiB");
    if (bytes == 0) return bad("zero");
    return bytes;
}

std::string format_bytes(uint64_t bytes) {
    if (bytes < kKiB) return fmt::format("{} B", bytes);
    constexpr const char* kNames[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes) / static_cast<double>(kKiB);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    if (v >= 100.0) return fmt::format("{:.1f} {}", v, kNames[u]);
    return fmt::format("{:.2f} {}", v, kNames[u]);
}

}  // namespace hr

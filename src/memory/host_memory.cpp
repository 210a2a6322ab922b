// MemAvailable from /proc/meminfo ("MemAvailable:   123456 kB").
#include "memory/host_memory.h"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace hr {

std::optional<uint64_t> parse_mem_available(std::string_view text) {
    constexpr std::string_view key = "MemAvailable:";
    size_t at = 0;
    while (true) {
        at = text.find(key, at);
        if (at == std::string_view::npos) return std::nullopt;
        if (at == 0 || text[at - 1] == '\n') break;
        at += key.size();
    }
    size_t i = at + key.size();
    while (i < text.size() && text[i] == ' ') ++i;
    uint64_t kb = 0;
    const auto [p, ec] = std::from_chars(text.data() + i, text.data() + text.size(), kb);
    if (ec != std::errc() || p == text.data() + i) return std::nullopt;
    std::string_view rest = text.substr(static_cast<size_t>(p - text.data()));
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (!rest.starts_with("kB")) return std::nullopt;
    if (kb > (UINT64_MAX >> 10)) return std::nullopt;
    return kb << 10;
}

std::optional<uint64_t> read_mem_available(const std::string& path) {
    if (const char* env = std::getenv("HEADROOM_MEM_AVAILABLE")) {
        const std::string_view v(env);
        uint64_t b = 0;
        const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), b);
        if (ec == std::errc() && p == v.data() + v.size() && !v.empty()) return b;
    }
    std::ifstream f(path);
    if (!f) return std::nullopt;
    std::stringstream ss;
    ss << f.rdbuf();
    return parse_mem_available(ss.str());
}

}  // namespace hr

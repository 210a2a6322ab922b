// StopMatcher (see stop.h).
#include "server/stop.h"

#include <algorithm>

namespace hr::server {

namespace {

// Largest n <= want such that s[0, n) ends on a UTF-8 sequence boundary.
size_t utf8_boundary(const std::string& s, size_t want) {
    size_t n = want;
    while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return n;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    for (const auto& s : stops_) max_len_ = std::max(max_len_, s.size());
}

std::string StopMatcher::push(std::string_view piece) {
    if (stopped_) return "";
    held_.append(piece);
    size_t cut = std::string::npos;
    for (const auto& s : stops_) {
        size_t p = held_.find(s);
        if (p != std::string::npos) cut = std::min(cut, p);
    }
    if (cut != std::string::npos) {
        stopped_ = true;
        std::string out = held_.substr(0, cut);
        held_.clear();
        return out;
    }
    // Keep the longest suffix that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto& s : stops_) {
        for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
            if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                keep = k;
                break;
            }
        }
    }
    size_t emit = utf8_boundary(held_, held_.size() - keep);
    std::string out = held_.substr(0, emit);
    held_.erase(0, emit);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(held_);
    return stopped_ ? std::string() : out;
}

}  // namespace hr::server

// Stop strings over streamed text: emits text as soon as it cannot be the start of a stop string,
// holds the rest, and cuts the output where a stop string begins (the stop string is not emitted).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hr::server {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);
    // Appends decoded text; returns the text that is now safe to emit (never splits a UTF-8 sequence).
    std::string push(std::string_view piece);
    // At the end of generation: the held text (nothing after a stop).
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    size_t max_len_ = 0;
    std::string held_;
    bool stopped_ = false;
};

}  // namespace hr::server

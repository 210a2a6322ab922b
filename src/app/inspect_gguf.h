// `headroom inspect` for GGUF files (see inspect_gguf.cpp).
#pragma once

#include <string>

namespace hr::app {

bool looks_like_gguf(const std::string& path);  // the file starts with the magic "GGUF"
// Exit code: 0, or 2 on bad input. `weights` (may be empty): also the conversion error to that format.
int inspect_gguf(const std::string& path, bool json, const std::string& weights);

}  // namespace hr::app

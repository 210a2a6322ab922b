// `headroom inspect` for GGUF files (see inspect_gguf.cpp).
#pragma once

#include <string>

namespace hr::app {

bool looks_like_gguf(const std::string& path);  // the file starts with the magic "GGUF"
int inspect_gguf(const std::string& path, bool json);  // exit code: 0, or 2 on bad input

}  // namespace hr::app

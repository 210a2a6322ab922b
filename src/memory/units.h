// Byte sizes as people write them ("24GiB", "23.5GB", "24G") and as the plan prints them.
// note: G, M, K without "i" or "B" are binary (G = GiB), like `free -g` and docker's "24g".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace hr {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kTiB = 1ull << 40;

// Parses a positive size: a decimal number (fraction allowed) and an optional unit, case-insensitive:
//   B | K KiB | M MiB | G GiB | T TiB  (powers of 2)      KB | MB | GB | TB  (powers of 10)
// A size that rounds down to 0 bytes, a negative size, garbage and sizes above 1 PiB are errors.
// `what` names the option in messages, e.g. "--gpu-memory".
Result<uint64_t> parse_byte_size(std::string_view text, std::string_view what);

// "43.50 GiB", "512.0 MiB", "8.0 KiB", "100 B": binary units, 3 significant digits or more.
std::string format_bytes(uint64_t bytes);

}  // namespace hr

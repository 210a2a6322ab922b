// The host's available memory, for the plan's host.experts check (--offload-experts). Kept apart from
// the planner, which reads no files: callers pass the number in PlanRequest::host_available_bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hr {

// MemAvailable of a /proc/meminfo text, in bytes; nullopt when the line is missing or malformed.
std::optional<uint64_t> parse_mem_available(std::string_view meminfo);
// MemAvailable of this machine (/proc/meminfo, or `path`); nullopt when unreadable (not Linux).
// HEADROOM_MEM_AVAILABLE (bytes) overrides it, so tests and CI can act out a small host.
std::optional<uint64_t> read_mem_available(const std::string& path = "/proc/meminfo");

}  // namespace hr

// Levelled logging to stderr, one sink; lines are written whole under a lock.
#include "log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace hr {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_mu;
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_write(LogLevel level, const std::string& msg) {
    static const char* names[] = {"debug", "info", "warn", "error", "off"};
    std::lock_guard<std::mutex> lock(g_mu);
    std::fprintf(stderr, "[headroom %s] %s\n", names[static_cast<int>(level)], msg.c_str());
    std::fflush(stderr);
}

}  // namespace hr

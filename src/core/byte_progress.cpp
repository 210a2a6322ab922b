// Byte-counted progress and its bar / log lines (see byte_progress.h).
#include "core/byte_progress.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace hr {

namespace {
int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
}  // namespace

double ProgressSnapshot::eta_s() const {
    const double r = bytes_per_s();
    if (r <= 0 || done >= total) return done >= total ? 0.0 : -1.0;
    return static_cast<double>(total - done) / r;
}

void ByteProgress::start(uint64_t total) {
    done_.store(0);
    total_.store(total);
    t1_ns_.store(0);
    t0_ns_.store(now_ns());
}

void ByteProgress::finish() { t1_ns_.store(now_ns()); }

ProgressSnapshot ByteProgress::snapshot() const {
    ProgressSnapshot s;
    s.done = done_.load(std::memory_order_relaxed);
    s.total = total_.load();
    const int64_t t0 = t0_ns_.load();
    const int64_t t1 = t1_ns_.load();
    s.seconds = t0 ? static_cast<double>((t1 ? t1 : now_ns()) - t0) * 1e-9 : 0.0;
    return s;
}

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const auto t = static_cast<int64_t>(std::llround(s));
    if (t < 60) return fmt::format("{} s", t);
    if (t < 3600) return fmt::format("{}:{:02}", t / 60, t % 60);
    return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
}

std::string format_progress(const ProgressSnapshot& s) {
    return fmt::format("{:.2f}/{:.2f} GB, {:.2f} GB/s, ETA {}", static_cast<double>(s.done) * 1e-9,
                       static_cast<double>(s.total) * 1e-9, s.bytes_per_s() * 1e-9, format_duration(s.eta_s()));
}

void ProgressPrinter::draw(const ProgressSnapshot& s, bool final) {
    if (tty_) {
        constexpr int kWidth = 24;
        const int filled =
            s.total ? static_cast<int>(kWidth * std::min<uint64_t>(s.done, s.total) / s.total) : 0;
        std::fprintf(out_, "\r%s [%s%s] %s\x1b[K%s", label_.c_str(), std::string(static_cast<size_t>(filled), '#').c_str(),
                     std::string(static_cast<size_t>(kWidth - filled), '.').c_str(), format_progress(s).c_str(),
                     final ? "\n" : "");
    } else {
        std::fprintf(out_, "%s: %s\n", label_.c_str(), format_progress(s).c_str());
    }
    std::fflush(out_);
    drawn_ = true;
}

void ProgressPrinter::update(const ProgressSnapshot& s) {
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (tty_ ? since >= 0.1 : (since >= log_every_s_ || !drawn_)) {
        last_ = now;
        draw(s, false);
    }
}

void ProgressPrinter::finish(const ProgressSnapshot& s) { draw(s, true); }

}  // namespace hr

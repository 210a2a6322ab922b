// Progress bar / log lines of batch classification (see progress.h).
#include "classify/progress.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/byte_progress.h"

namespace hr {

Progress::Progress(std::FILE* out, bool tty, std::optional<int64_t> total, double log_every_s)
    : out_(out), tty_(tty), total_(total), log_every_s_(log_every_s), t0_(std::chrono::steady_clock::now()),
      last_draw_(t0_) {}

double Progress::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

double Progress::rate() const {
    const double s = seconds();
    return s > 0 ? static_cast<double>(done_) / s : 0.0;
}

std::string Progress::format_eta(double s) { return format_duration(s); }

std::string Progress::line(const std::string& id) const {
    const int64_t at = done_ + skipped_;
    const double r = rate();
    std::string s = total_ ? fmt::format("{}/{} documents", at, *total_) : fmt::format("{} documents", at);
    if (skipped_ > 0) s += fmt::format(" ({} resumed)", skipped_);
    s += fmt::format(", {:.2f} documents/s", r);
    if (total_ && r > 0) s += ", ETA " + format_eta(static_cast<double>(*total_ - at) / r);
    if (!id.empty()) s += ", last " + id;
    return s;
}

void Progress::draw(const std::string& id, bool final) {
    if (tty_) {
        std::string bar;
        if (total_ && *total_ > 0) {
            constexpr int kWidth = 24;
            const auto filled = static_cast<int>(kWidth * std::min<int64_t>(done_ + skipped_, *total_) / *total_);
            bar = "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.') + "] ";
        }
        std::string text = line(id);
        if (text.size() > 110) text = text.substr(0, 107) + "...";
        std::fprintf(out_, "\r%s%s\x1b[K%s", bar.c_str(), text.c_str(), final ? "\n" : "");
    } else {
        std::fprintf(out_, "classify: %s\n", line(id).c_str());
    }
    std::fflush(out_);
    drawn_ = true;
    drawn_at_ = done_;
}

void Progress::done(const std::string& id) {
    ++done_;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (tty_ ? since >= 0.1 : since >= log_every_s_ || !drawn_) {
        last_draw_ = now;
        draw(id, false);
    }
}

void Progress::finish() {
    // A log line for this count is already out: do not repeat it (a bar always ends its line).
    if (!tty_ && drawn_at_ == done_ && done_ > 0) return;
    draw("", true);
}

}  // namespace hr

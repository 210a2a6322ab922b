// Progress of a batch classification on stderr: on a terminal one bar redrawn in place (done/total,
// documents per second, ETA); otherwise plain log lines (at most one every `log_every_s` seconds, and the
// last one always). Rates count only the documents classified in this run, not those resumed.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace hr {

class Progress {
public:
    // total: documents in all (nullopt when unknown, e.g. stdin); skipped: already done before this run.
    Progress(std::FILE* out, bool tty, std::optional<int64_t> total, double log_every_s = 2.0);
    void skipped(int64_t n = 1) { skipped_ += n; }
    // One more document classified in this run.
    void done(const std::string& id);
    // The final line (the bar ends with a line end).
    void finish();
    int64_t classified() const { return done_; }
    double seconds() const;
    double rate() const;  // documents per second in this run

    // "1:05" / "12 s" style durations, exposed for tests.
    static std::string format_eta(double seconds);
    std::string line(const std::string& id) const;

private:
    void draw(const std::string& id, bool final);
    std::FILE* out_;
    bool tty_;
    std::optional<int64_t> total_;
    double log_every_s_;
    int64_t done_ = 0, skipped_ = 0;
    std::chrono::steady_clock::time_point t0_, last_draw_;
    bool drawn_ = false;
    int64_t drawn_at_ = -1;  // done_ when the last line was drawn
};

}  // namespace hr

// Progress of a long byte-counted job (loading weights): a thread-safe counter that worker threads add
// to, and a printer the waiting thread calls: on a terminal one bar redrawn in place (bytes, GB/s, ETA),
// otherwise a log line at most every `log_every_s` seconds. Readers elsewhere (GET /health) take a
// snapshot at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace hr {

struct ProgressSnapshot {
    uint64_t done = 0;
    uint64_t total = 0;
    double seconds = 0;  // since start()
    double bytes_per_s() const { return seconds > 0 ? static_cast<double>(done) / seconds : 0.0; }
    double eta_s() const;  // -1 when unknown (no rate yet)
};

class ByteProgress {
public:
    // Starts the clock for a job of `total` bytes (done back to 0).
    void start(uint64_t total);
    void add(uint64_t bytes) { done_.fetch_add(bytes, std::memory_order_relaxed); }
    // The job ended: the clock stops (later snapshots keep the job's own time and rate).
    void finish();
    ProgressSnapshot snapshot() const;

private:
    std::atomic<uint64_t> done_{0}, total_{0};
    std::atomic<int64_t> t0_ns_{0}, t1_ns_{0};
};

// "1:05" / "12 s" / "1:02:03" durations; "?" when negative or not finite.
std::string format_duration(double seconds);
// "12.3/46.7 GB, 5.21 GB/s, ETA 7 s" (decimal GB: the unit disk and link rates are quoted in).
std::string format_progress(const ProgressSnapshot& s);

class ProgressPrinter {
public:
    ProgressPrinter(std::FILE* out, bool tty, std::string label, double log_every_s = 2.0)
        : out_(out), tty_(tty), label_(std::move(label)), log_every_s_(log_every_s) {}
    // Draws if due (a bar: every 0.1 s; a log line: every log_every_s).
    void update(const ProgressSnapshot& s);
    // The last line, always (the bar ends with a line end).
    void finish(const ProgressSnapshot& s);

private:
    void draw(const ProgressSnapshot& s, bool final);
    std::FILE* out_;
    bool tty_;
    std::string label_;
    double log_every_s_;
    std::chrono::steady_clock::time_point last_{};
    bool drawn_ = false;
};

}  // namespace hr

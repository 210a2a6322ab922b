// Byte progress: rate, ETA, the frozen clock after finish(), and the bar / log-line formats.
#include "core/byte_progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>

namespace hr {
namespace {

TEST(ByteProgress, RateAndEtaFromTheSnapshot) {
    ProgressSnapshot s{.done = 2'000'000'000, .total = 10'000'000'000, .seconds = 2.0};
    EXPECT_DOUBLE_EQ(s.bytes_per_s(), 1e9);
    EXPECT_DOUBLE_EQ(s.eta_s(), 8.0);
    EXPECT_EQ(format_progress(s), "2.00/10.00 GB, 1.00 GB/s, ETA 8 s");
    const ProgressSnapshot fresh{.done = 0, .total = 5, .seconds = 0}, ended{.done = 5, .total = 5, .seconds = 1};
    EXPECT_EQ(fresh.eta_s(), -1.0);  // no rate yet: unknown
    EXPECT_EQ(ended.eta_s(), 0.0);
}

TEST(ByteProgress, DurationsReadLikeAClock) {
    EXPECT_EQ(format_duration(12.4), "12 s");
    EXPECT_EQ(format_duration(65), "1:05");
    EXPECT_EQ(format_duration(3723), "1:02:03");
    EXPECT_EQ(format_duration(-1), "?");
}

TEST(ByteProgress, FinishStopsTheClock) {
    ByteProgress p;
    p.start(100);
    p.add(60);
    p.add(40);
    p.finish();
    const double t = p.snapshot().seconds;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_EQ(p.snapshot().seconds, t);
    EXPECT_EQ(p.snapshot().done, 100u);
}

TEST(ByteProgress, LogLinesWithoutATerminalBarWithOne) {
    char buf[512] = {};
    std::FILE* f = fmemopen(buf, sizeof(buf), "w");
    ASSERT_NE(f, nullptr);
    ProgressPrinter log(f, false, "loading weights", 1000.0);
    ProgressSnapshot s{.done = 1'000'000'000, .total = 2'000'000'000, .seconds = 1.0};
    log.update(s);  // the first line at once
    log.update(s);  // then at most one per log_every_s
    log.finish(s);
    std::fclose(f);
    EXPECT_EQ(std::string(buf), "loading weights: 1.00/2.00 GB, 1.00 GB/s, ETA 1 s\n"
                                "loading weights: 1.00/2.00 GB, 1.00 GB/s, ETA 1 s\n");
    char bar[512] = {};
    f = fmemopen(bar, sizeof(bar), "w");
    ProgressPrinter tty(f, true, "loading weights");
    tty.finish(s);
    std::fclose(f);
    EXPECT_EQ(std::string(bar), "\rloading weights [############............] 1.00/2.00 GB, 1.00 GB/s, ETA 1 s\x1b[K\n");
}

}  // namespace
}  // namespace hr

// The CPU backend's thread pool (backend/cpu/thread_pool.h): every index runs exactly once (static and
// dynamic split, sizes around the thread count), nested calls run inline, calls from several threads.
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/thread_pool.h"

namespace hr::cpu {
namespace {

TEST(ThreadPool, EveryIndexOnceStatic) {
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1001}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallel_for(n, [&](int64_t b, int64_t e) {
            ASSERT_LE(0, b);
            ASSERT_LE(b, e);
            ASSERT_LE(e, n);
            for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        for (auto& h : hits) EXPECT_EQ(h.load(), 1) << "n " << n;
    }
}

TEST(ThreadPool, EveryIndexOnceDynamic) {
    for (int64_t n : {0, 1, 5, 333}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallel_for_dynamic(n, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
        for (auto& h : hits) EXPECT_EQ(h.load(), 1) << "n " << n;
    }
}

TEST(ThreadPool, NestedCallsRunInline) {
    std::atomic<int64_t> total{0};
    parallel_for(8, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            parallel_for(10, [&](int64_t b2, int64_t e2) { total.fetch_add(e2 - b2); });
    });
    EXPECT_EQ(total.load(), 80);
}

TEST(ThreadPool, CallersOnSeveralThreads) {
    std::atomic<int64_t> total{0};
    std::vector<std::thread> callers;
    for (int c = 0; c < 3; ++c)
        callers.emplace_back([&] {
            for (int r = 0; r < 200; ++r) parallel_for(17, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
        });
    for (auto& t : callers) t.join();
    EXPECT_EQ(total.load(), 3 * 200 * 17);
    EXPECT_GE(pool_threads(), 1);
}

}  // namespace
}  // namespace hr::cpu

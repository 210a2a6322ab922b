// The in-process communicator (backend/cpu/local_communicator.h): the sum on every rank, repeated calls of
// different sizes, and the bounded wait when a rank never arrives.
#include <gtest/gtest.h>

#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/local_communicator.h"

namespace hr {
namespace {

struct Group {
    std::vector<std::unique_ptr<Backend>> backends;
    std::vector<std::unique_ptr<Communicator>> comms;
    explicit Group(int n, std::chrono::milliseconds timeout = kDefaultCollectiveTimeout) {
        std::vector<Backend*> raw;
        for (int r = 0; r < n; ++r) {
            backends.push_back(cpu::make_cpu_backend());
            raw.push_back(backends.back().get());
        }
        auto c = cpu::make_local_group(raw, timeout);
        EXPECT_TRUE(c.ok());
        comms = std::move(c).value();
    }
};

TEST(LocalCommunicator, SumsOnEveryRankRepeatedly) {
    for (int n : {1, 2, 3, 4}) {
        Group g(n);
        std::vector<std::vector<float>> bufs(static_cast<size_t>(n));
        std::vector<std::thread> threads;
        std::vector<Status> st(static_cast<size_t>(n));
        for (int r = 0; r < n; ++r) {
            threads.emplace_back([&, r] {
                auto& b = bufs[static_cast<size_t>(r)];
                for (int64_t len : {7, 1000, 3}) {  // grows the scratch, then reuses it
                    b.assign(static_cast<size_t>(len), 0.0f);
                    for (int64_t i = 0; i < len; ++i) b[static_cast<size_t>(i)] = static_cast<float>((r + 1) * 1000 + i);
                    g.comms[static_cast<size_t>(r)]->all_reduce_sum(Tensor::make(DType::f32, b.data(), {len}));
                }
                st[static_cast<size_t>(r)] = g.comms[static_cast<size_t>(r)]->synchronize();
            });
        }
        for (auto& t : threads) t.join();
        for (int r = 0; r < n; ++r) {
            ASSERT_TRUE(st[static_cast<size_t>(r)].ok()) << st[static_cast<size_t>(r)].error().message;
            ASSERT_EQ(bufs[static_cast<size_t>(r)].size(), 3u);
            for (int64_t i = 0; i < 3; ++i)
                EXPECT_EQ(bufs[static_cast<size_t>(r)][static_cast<size_t>(i)],
                          static_cast<float>(1000 * n * (n + 1) / 2 + n * i));
        }
    }
}

TEST(LocalCommunicator, MissingRankTimesOutAndBreaksTheGroup) {
    Group g(2, std::chrono::milliseconds(50));
    std::vector<float> a(4, 1.0f), b(4, 2.0f);
    g.comms[0]->all_reduce_sum(Tensor::make(DType::f32, a.data(), {4}));  // rank 1 never comes
    Status s0 = g.comms[0]->synchronize();
    ASSERT_FALSE(s0.ok());
    EXPECT_NE(s0.error().message.find("timed out"), std::string::npos) << s0.error().message;
    EXPECT_EQ(a[0], 1.0f);  // untouched
    g.comms[1]->all_reduce_sum(Tensor::make(DType::f32, b.data(), {4}));  // too late: the group failed
    Status s1 = g.comms[1]->synchronize();
    ASSERT_FALSE(s1.ok());
    EXPECT_NE(s1.error().message.find("failed"), std::string::npos) << s1.error().message;
}

TEST(LocalCommunicator, RefusesNonCpuOrEmpty) {
    EXPECT_FALSE(cpu::make_local_group({}).ok());
    EXPECT_FALSE(cpu::make_local_group({nullptr}).ok());
}

}  // namespace
}  // namespace hr

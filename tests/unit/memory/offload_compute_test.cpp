// --offload-compute: parsing, and the choice between the GPU reading host experts over the link and the
// host computing them (memory/offload_compute.h).
#include <gtest/gtest.h>

#include "memory/offload_compute.h"

namespace hr::test {
namespace {

TEST(OffloadCompute, Parses) {
    EXPECT_EQ(*parse_offload_compute("auto"), OffloadCompute::automatic);
    EXPECT_EQ(*parse_offload_compute("gpu"), OffloadCompute::gpu);
    EXPECT_EQ(*parse_offload_compute("cpu"), OffloadCompute::cpu);
    for (const char* bad : {"", "GPU", "both", "cpu "}) {
        auto r = parse_offload_compute(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().message.find("--offload-compute"), std::string::npos);
    }
    EXPECT_EQ(offload_compute_name(OffloadCompute::automatic), "auto");
}

TEST(OffloadCompute, AutoTakesTheFasterWay) {
    OffloadComputeRates r;
    r.link_gbps = 25;
    r.cpu_gbps = 50;
    r.host_call_ms = 0.05;
    // 1 GB of host experts per token over 10 layers: gpu 40 ms, cpu 20 + 0.5 ms.
    OffloadComputeChoice c = choose_offload_compute(OffloadCompute::automatic, 1e9, 10, r);
    EXPECT_NEAR(c.gpu_ms, 40.0, 1e-9);
    EXPECT_NEAR(c.cpu_ms, 20.5, 1e-9);
    EXPECT_TRUE(c.cpu);
    EXPECT_EQ(c.mode_name(), "cpu");
    EXPECT_NE(c.describe().find("auto: the host is faster"), std::string::npos);
    // A slow host loses; so does a fast one whose per-layer host calls outweigh the bytes it saves.
    r.cpu_gbps = 20;
    EXPECT_FALSE(choose_offload_compute(OffloadCompute::automatic, 1e9, 10, r).cpu);
    r.cpu_gbps = 50;
    EXPECT_FALSE(choose_offload_compute(OffloadCompute::automatic, 1e6, 32, r).cpu);  // 0.04 ms vs 1.62 ms
}

TEST(OffloadCompute, AskedForIsTakenAndNothingToComputeIsGpu) {
    OffloadComputeRates r;
    r.link_gbps = 25;
    r.cpu_gbps = 5;
    EXPECT_TRUE(choose_offload_compute(OffloadCompute::cpu, 1e9, 4, r).cpu);
    r.cpu_gbps = 500;
    EXPECT_FALSE(choose_offload_compute(OffloadCompute::gpu, 1e9, 4, r).cpu);
    // No layer holds a host expert: nothing for the host to do, whatever was asked.
    const OffloadComputeChoice none = choose_offload_compute(OffloadCompute::cpu, 0, 0, r);
    EXPECT_FALSE(none.cpu);
    EXPECT_NE(none.describe().find("no experts in host memory"), std::string::npos);
}

TEST(OffloadCompute, RatesFromTheProbe) {
    OffloadProbe p;
    p.expert_bytes = 88'000'000;
    p.gpu_expert_ms = 3.52;  // 25 GB/s
    p.cpu_expert_ms = 2.2;   // 40 GB/s
    p.host_call_ms = 0.012;
    EXPECT_NEAR(p.link_gbps(), 25.0, 1e-9);
    EXPECT_NEAR(p.cpu_gbps(), 40.0, 1e-9);
    const OffloadComputeRates r = OffloadComputeRates::from_probe(p);
    EXPECT_TRUE(r.measured);
    EXPECT_NEAR(r.link_gbps, 25.0, 1e-9);
    EXPECT_NEAR(r.cpu_gbps, 40.0, 1e-9);
    EXPECT_DOUBLE_EQ(r.host_call_ms, 0.012);
    // A way the probe did not time keeps its stated default.
    OffloadProbe q;
    q.expert_bytes = 1000;
    q.gpu_expert_ms = 0.001;
    const OffloadComputeRates d = OffloadComputeRates::from_probe(q);
    EXPECT_DOUBLE_EQ(d.cpu_gbps, kDefaultCpuExpertGbps);
    EXPECT_DOUBLE_EQ(d.host_call_ms, kDefaultHostCallMs);
}

}  // namespace
}  // namespace hr::test

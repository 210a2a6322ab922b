// --offload-experts: placement (even over the MoE layers, highest-numbered experts), the planner's auto
// choice (the fewest that fit), typed errors, the host RAM check, the regions, the JSON report, and
// that nothing moves without the flag.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "memory/expert_offload.h"
#include "memory/host_memory.h"
#include "memory/plan.h"
#include "memory/plan_report.h"
#include "model/builtin_models.h"

namespace hr {
namespace {

constexpr uint64_t kRtx4090 = 24564ull << 20;

const ModelConfig& model(const char* name) { return find_builtin_model(name)->config; }

PlanRequest on_4090(DType wf, std::optional<OffloadRequest> offload) {
    PlanRequest r;
    r.budget_bytes = kRtx4090;
    r.weight_format = wf;
    r.device_name = "rtx4090";
    r.offload = offload;
    return r;
}

OffloadRequest automatic() { return OffloadRequest{.automatic = true, .experts = 0}; }
OffloadRequest count(int64_t n) { return OffloadRequest{.automatic = false, .experts = n}; }

MemoryPlan plan_ok(const ModelConfig& c, const PlanRequest& r) {
    Result<MemoryPlan> p = plan_memory(c, r);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? *p : MemoryPlan{};
}

TEST(ExpertOffload, ParsesAutoAndCounts) {
    EXPECT_TRUE(parse_offload_experts("auto")->automatic);
    EXPECT_EQ(parse_offload_experts("17")->experts, 17);
    EXPECT_EQ(parse_offload_experts("0")->experts, 0);
    for (const char* bad : {"", "-1", "x", "12x", "1.5", "AUTO"}) {
        Result<OffloadRequest> r = parse_offload_experts(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().message.find("--offload-experts"), std::string::npos) << r.error().message;
    }
}

TEST(ExpertOffload, SpreadsEvenlyWithTheRemainderOnTheLastLayers) {
    const ModelConfig& c = model("mixtral-8x7b");  // 32 layers x 8 experts
    const ExpertPlacement p = *place_experts(c, 70);  // 2 per layer, 6 layers with 3
    EXPECT_EQ(p.n_host, 70);
    int64_t sum = 0;
    for (int64_t l = 0; l < 32; ++l) {
        EXPECT_EQ(p.host_in_layer(l), l >= 26 ? 3 : 2) << l;
        sum += p.host_in_layer(l);
        // The highest-numbered experts go to the host.
        for (int64_t e = 0; e < 8; ++e) EXPECT_EQ(p.is_host(l, e), e >= 8 - p.host_in_layer(l)) << l << " " << e;
    }
    EXPECT_EQ(sum, 70);
    EXPECT_FALSE(place_experts(c, 0)->any());
    EXPECT_EQ(place_experts(c, 256)->host_in_layer(0), 8);
}

TEST(ExpertOffload, BadCountsAreTypedErrors) {
    const ModelConfig& c = model("mixtral-8x7b");
    for (int64_t n : {int64_t{-1}, int64_t{257}, int64_t{1} << 40}) {
        Result<MemoryPlan> p = plan_memory(c, on_4090(DType::q4, count(n)));
        ASSERT_FALSE(p.ok()) << n;
        EXPECT_NE(p.error().message.find("--offload-experts"), std::string::npos) << p.error().message;
    }
    // A dense model has no experts to offload (a count or auto); 0 is simply nothing.
    const ModelConfig& dense = model("llama-2-7b");
    EXPECT_FALSE(plan_memory(dense, on_4090(DType::q4, count(3))).ok());
    EXPECT_FALSE(plan_memory(dense, on_4090(DType::q4, automatic())).ok());
    EXPECT_TRUE(plan_memory(dense, on_4090(DType::q4, count(0))).ok());
}

TEST(ExpertOffload, AutoPicksTheFewestThatFit) {
    const ModelConfig& c = model("mixtral-8x7b");
    const MemoryPlan p = plan_ok(c, on_4090(DType::q4, automatic()));
    ASSERT_TRUE(p.fits);
    const int64_t n = p.offload.n_host;
    ASSERT_GT(n, 0);
    EXPECT_TRUE(p.offload_auto);
    // n fits, n - 1 does not.
    EXPECT_TRUE(plan_ok(c, on_4090(DType::q4, count(n))).fits);
    EXPECT_FALSE(plan_ok(c, on_4090(DType::q4, count(n - 1))).fits);
    EXPECT_EQ(plan_ok(c, on_4090(DType::q4, count(n))).total_bytes, p.total_bytes);
    // int8 needs many more (about 137 of 256).
    const MemoryPlan p8 = plan_ok(c, on_4090(DType::q8, automatic()));
    ASSERT_TRUE(p8.fits);
    EXPECT_GT(p8.offload.n_host, 100);
    EXPECT_LT(p8.offload.n_host, 160);
    // A plan that fits as it is offloads nothing with auto.
    PlanRequest big = on_4090(DType::q4, automatic());
    big.budget_bytes = 81559ull << 20;
    const MemoryPlan none = plan_ok(c, big);
    EXPECT_TRUE(none.fits);
    EXPECT_FALSE(none.offload.any());
    EXPECT_EQ(none.region_bytes("host.experts"), 0u);
    EXPECT_EQ(none.region_bytes("workspace.expert_staging"), 0u);
}

TEST(ExpertOffload, RegionsMoveTheExpertBytesToTheHost) {
    const ModelConfig& c = model("mixtral-8x7b");
    const MemoryPlan base = plan_ok(c, on_4090(DType::q4, std::nullopt));
    const MemoryPlan p = plan_ok(c, on_4090(DType::q4, count(20)));
    const WeightPlan w = plan_weights(c, DType::q4);
    EXPECT_EQ(p.region_bytes("host.experts"), 20 * w.one_expert);
    EXPECT_EQ(p.host_bytes, 20 * w.one_expert);
    EXPECT_EQ(p.region_bytes("workspace.expert_staging"), 2 * w.one_expert);
    // Device weights + host experts = all weights; the host region is not in the GPU's total.
    EXPECT_EQ(p.region_bytes("weights") + p.region_bytes("host.experts"), base.region_bytes("weights"));
    EXPECT_EQ(p.total_bytes, base.total_bytes - 20 * w.one_expert + 2 * w.one_expert);
    EXPECT_EQ(p.kind_bytes(RegionKind::host), 20 * w.one_expert);
}

TEST(ExpertOffload, WithoutTheFlagNothingIsOffloaded) {
    const ModelConfig& c = model("mixtral-8x7b");
    for (DType wf : {DType::q4, DType::q8}) {
        const MemoryPlan p = plan_ok(c, on_4090(wf, std::nullopt));
        EXPECT_FALSE(p.fits);  // int4 alone is over 24 GiB
        EXPECT_FALSE(p.offload.any());
        EXPECT_FALSE(p.offload_requested);
        EXPECT_EQ(p.region_bytes("host.experts"), 0u);
        EXPECT_FALSE(p.prediction.has_value());
    }
    // The weight format auto does not reach for offload either.
    PlanRequest r = on_4090(DType::q4, std::nullopt);
    r.weight_format.reset();
    EXPECT_FALSE(plan_ok(c, r).offload.any());
}

TEST(ExpertOffload, HostMemoryIsChecked) {
    const ModelConfig& c = model("mixtral-8x7b");
    PlanRequest r = on_4090(DType::q8, automatic());
    r.host_available_bytes = 8ull << 30;  // int8 needs about 22 GiB of host memory
    Result<MemoryPlan> p = plan_memory(c, r);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("MemAvailable"), std::string::npos) << p.error().message;
    EXPECT_NE(p.error().message.find("host.experts"), std::string::npos) << p.error().message;
    r.host_available_bytes = 64ull << 30;
    EXPECT_TRUE(plan_memory(c, r).ok());
    // The int4 plan needs little.
    PlanRequest r4 = on_4090(DType::q4, automatic());
    r4.host_available_bytes = 8ull << 30;
    EXPECT_TRUE(plan_ok(c, r4).fits);
}

TEST(ExpertOffload, ParsesMemAvailable) {
    EXPECT_EQ(parse_mem_available("MemTotal:  100 kB\nMemFree: 5 kB\nMemAvailable:   123456 kB\n"), 123456ull << 10);
    EXPECT_FALSE(parse_mem_available("MemTotal: 100 kB\n").has_value());
    EXPECT_FALSE(parse_mem_available("MemAvailable: lots\n").has_value());
    EXPECT_FALSE(parse_mem_available("XMemAvailable: 5 kB\n").has_value());
}

TEST(ExpertOffload, PredictionFollowsTheFormula) {
    const ModelConfig& c = model("mixtral-8x7b");
    PlanRequest r = on_4090(DType::q4, count(32));  // one expert per layer
    r.host_link_gbps = 25;
    r.device_gbps = 900;
    r.device_tflops = 100;
    const MemoryPlan p = plan_ok(c, r);
    ASSERT_TRUE(p.prediction.has_value());
    const WeightPlan w = plan_weights(c, DType::q4);
    // A token reads k = 2 experts of each of 32 layers; 1 of 8 of them are in host memory.
    const double host = 32.0 * 2 * static_cast<double>(w.one_expert) / 8;
    EXPECT_NEAR(p.prediction->host_bytes_per_token, host, 1);
    const double dev = p.prediction->device_bytes_per_token;
    // Both --offload-compute modes: gpu reads the host experts in place over the link (the zero-copy rate,
    // a share of the card's copy rate), cpu computes them on the host (stated default rate) with one host
    // call per layer holding host experts (all 32 here).
    EXPECT_DOUBLE_EQ(p.prediction->host_read_gbps, 25 * kZeroCopyShareOfLink);
    EXPECT_NEAR(p.prediction->decode_gpu_ms, 1e3 * (dev / 900e9 + host / (25e9 * kZeroCopyShareOfLink)), 1e-9);
    EXPECT_NEAR(p.prediction->decode_cpu_ms,
                1e3 * (dev / 900e9 + host / (kDefaultCpuExpertGbps * 1e9)) + 32 * kDefaultHostCallMs, 1e-9);
    EXPECT_EQ(p.prediction->compute.host_layers, 32);
    // auto takes the faster; decode_ms follows the mode taken.
    EXPECT_EQ(p.prediction->compute.cpu, p.prediction->decode_cpu_ms < p.prediction->decode_gpu_ms);
    EXPECT_DOUBLE_EQ(p.prediction->decode_ms, std::min(p.prediction->decode_gpu_ms, p.prediction->decode_cpu_ms));
    EXPECT_NEAR(p.prediction->decode_tokens_per_s * p.prediction->decode_ms, 1e3, 1e-6);
    // Asked for, a mode is taken whatever the rates say.
    for (OffloadCompute m : {OffloadCompute::gpu, OffloadCompute::cpu}) {
        PlanRequest q = r;
        q.offload_compute = m;
        q.cpu_expert_gbps = 5;  // slower than the link: auto would take gpu
        const MemoryPlan pm = plan_ok(c, q);
        EXPECT_EQ(pm.prediction->compute.cpu, m == OffloadCompute::cpu);
        EXPECT_DOUBLE_EQ(pm.prediction->decode_ms,
                         m == OffloadCompute::cpu ? pm.prediction->decode_cpu_ms : pm.prediction->decode_gpu_ms);
        q.offload_compute = OffloadCompute::automatic;
        EXPECT_FALSE(plan_ok(c, q).prediction->compute.cpu);
        q.cpu_expert_gbps = 200;  // faster than the link
        EXPECT_TRUE(plan_ok(c, q).prediction->compute.cpu);
    }
    // Prefill of 2048 tokens in 4 chunks of 512: every offloaded expert is copied once per chunk.
    EXPECT_EQ(p.prediction->prefill_tokens, 2048);
    EXPECT_NEAR(p.prediction->prefill_stream_ms, 1e3 * 4 * 32 * static_cast<double>(w.one_expert) / 25e9, 1e-6);
    EXPECT_GE(p.prediction->prefill_ms, p.prediction->prefill_stream_ms);
    EXPECT_GE(p.prediction->prefill_ms, p.prediction->prefill_compute_ms);
}

// What the first H100 run got wrong (bench/results/2026-12-08-h100-mixtral-int4-offload24-980cf03.md): the
// decode term read host experts at the copy rate, and prefill was the FLOP floor. A measured zero-copy rate
// and a measured all-resident prefill replace them; the prefill copies overlap their own layer only.
TEST(ExpertOffload, PredictionTakesMeasuredZeroCopyRateAndPrefill) {
    const ModelConfig& c = model("mixtral-8x7b");
    const ExpertPlacement pl = *place_experts(c, 34);  // 2 host experts in 2 layers, 1 in the other 30
    const uint64_t one = 90'800'000, non_expert = 1'300'000'000;
    OffloadRates rates{55.3, 3034, 792};
    const OffloadPrediction floor = predict_offload(c, non_expert, one, pl, rates, 2048, 2048);
    EXPECT_DOUBLE_EQ(floor.host_read_gbps, 55.3 * kZeroCopyShareOfLink);
    EXPECT_FALSE(floor.prefill_compute_measured);
    rates.host_read_gbps = 41.3;  // the probe's GPU reading one host expert in place
    const OffloadPrediction m = predict_offload(c, non_expert, one, pl, rates, 2048, 2048, 231.7);
    EXPECT_DOUBLE_EQ(m.host_read_gbps, 41.3);
    EXPECT_NEAR(m.decode_gpu_ms - 1e3 * m.device_bytes_per_token / 3034e9, 1e3 * m.host_bytes_per_token / 41.3e9, 1e-9);
    EXPECT_TRUE(m.prefill_compute_measured);
    EXPECT_DOUBLE_EQ(m.prefill_compute_ms, 231.7);
    // 34 experts x 90.8 MB at 55.3 GB/s = 55.8 ms of copies, at most 3.3 ms in a layer against its 7.2 ms of
    // GEMMs: hidden, the prediction is the measured compute.
    EXPECT_NEAR(m.prefill_stream_ms, 1e3 * 34 * 90.8e6 / 55.3e9, 1e-6);
    EXPECT_NEAR(m.prefill_ms, 231.7, 1e-9);
    // A layer whose copies outlast its share of the compute adds the difference, even when the sum of the
    // copies is below the sum of the compute: 16 experts in one layer (29.6 ms of copies against 7.2).
    ExpertPlacement lump = pl;
    lump.host_per_layer.assign(32, 0);
    lump.host_per_layer[5] = 8;
    lump.host_per_layer[6] = 8;
    lump.n_host = 16;
    const OffloadPrediction l = predict_offload(c, non_expert, one, lump, rates, 2048, 2048, 231.7);
    const double layer = 231.7 / 32, copy8 = 1e3 * 8 * 90.8e6 / 55.3e9;
    EXPECT_LT(l.prefill_stream_ms, l.prefill_compute_ms);
    EXPECT_NEAR(l.prefill_ms, 30 * layer + 2 * copy8, 1e-9);
    // Chunks: the compute is split over them, the copies repeat per chunk.
    const OffloadPrediction ch = predict_offload(c, non_expert, one, lump, rates, 2048, 512, 231.7);
    EXPECT_NEAR(ch.prefill_ms, 4 * (30 * layer / 4 + 2 * copy8), 1e-9);
}

TEST(ExpertOffload, JsonReportHasTheChoice) {
    const ModelConfig& c = model("mixtral-8x7b");
    const MemoryPlan p = plan_ok(c, on_4090(DType::q4, automatic()));
    const nlohmann::json j = nlohmann::json::parse(format_plan_json(p, "mixtral-8x7b"));
    EXPECT_TRUE(j.at("fits").get<bool>());
    const auto& o = j.at("offload");
    EXPECT_EQ(o.at("requested"), "auto");
    EXPECT_EQ(o.at("host_experts").get<int64_t>(), p.offload.n_host);
    EXPECT_EQ(o.at("host_per_layer").size(), 32u);
    EXPECT_EQ(o.at("host_bytes").get<uint64_t>(), p.region_bytes("host.experts"));
    EXPECT_GT(o.at("prediction").at("decode_tokens_per_s").get<double>(), 0);
    EXPECT_GT(o.at("prediction").at("prefill_ms").get<double>(), 0);
    EXPECT_EQ(o.at("prediction").at("offload_compute_requested"), "auto");
    EXPECT_EQ(o.at("prediction").at("offload_compute"), p.prediction->compute.cpu ? "cpu" : "gpu");
    EXPECT_GT(o.at("prediction").at("decode_gpu_ms").get<double>(), 0);
    EXPECT_GT(o.at("prediction").at("decode_cpu_ms").get<double>(), 0);
    EXPECT_EQ(o.at("rates").at("cpu_expert_gbps").get<double>(), kDefaultCpuExpertGbps);
    // The regions sum to the total, the host region apart.
    uint64_t device = 0;
    for (const auto& reg : j.at("regions"))
        if (reg.at("kind") != "host") device += reg.at("bytes").get<uint64_t>();
    EXPECT_EQ(device, j.at("total_bytes").get<uint64_t>());
    const std::string table = format_plan_table(p, "mixtral-8x7b");
    EXPECT_NE(table.find("host.experts"), std::string::npos);
    EXPECT_NE(table.find("predicted decode"), std::string::npos);
    EXPECT_NE(table.find("    gpu: "), std::string::npos);  // both --offload-compute predictions
    EXPECT_NE(table.find("    cpu: "), std::string::npos);
    EXPECT_NE(table.find("predicted prefill of 2048 tokens"), std::string::npos);
    // Without the flag, "offload" is null.
    const MemoryPlan q = plan_ok(c, on_4090(DType::q4, std::nullopt));
    EXPECT_TRUE(nlohmann::json::parse(format_plan_json(q, "m")).at("offload").is_null());
}

TEST(ExpertOffload, AlternativeIsImplementedAndNamesTheFlag) {
    const ModelConfig& c = model("mixtral-8x7b");
    const MemoryPlan p = plan_ok(c, on_4090(DType::q8, std::nullopt));
    ASSERT_FALSE(p.fits);
    bool saw = false;
    for (const Suggestion& s : p.suggestions) {
        if (s.kind != SuggestionKind::host_experts) continue;
        saw = true;
        EXPECT_TRUE(s.implemented) << s.text;
        EXPECT_NE(s.text.find("--offload-experts auto"), std::string::npos) << s.text;
        // The same numbers as the re-plan with the flag.
        const MemoryPlan again = plan_ok(c, on_4090(s.weight_format, automatic()));
        EXPECT_EQ(again.total_bytes, s.total_bytes);
        EXPECT_EQ(again.offload.n_host, s.host_experts);
    }
    EXPECT_TRUE(saw);
    // The int4 one comes first (the fastest decode).
    for (const Suggestion& s : p.suggestions)
        if (s.kind == SuggestionKind::host_experts) {
            EXPECT_EQ(s.weight_format, DType::q4);
            break;
        }
}

}  // namespace
}  // namespace hr

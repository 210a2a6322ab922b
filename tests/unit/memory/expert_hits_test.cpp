// Router statistics (headroom.expert_hits): the metadata value's round trip and checks, placement of the
// globally coldest experts, the prediction from measured frequencies, and the planner using both (auto's
// count unchanged). Without statistics the placement and prediction are exactly the uniform ones.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "memory/expert_hits.h"
#include "memory/expert_offload.h"
#include "memory/plan.h"
#include "memory/plan_report.h"
#include "model/builtin_models.h"

namespace hr {
namespace {

const ModelConfig& mixtral() { return find_builtin_model("mixtral-8x7b")->config; }  // 32 layers x 8, k = 2

// T tokens per layer; expert e of layer l gets a skewed share, every layer summing to T x k. Layer 31's
// expert 0 and layer 5's expert 3 are the two coldest of the model.
ExpertHits skewed(const ModelConfig& c, int64_t T = 1000) {
    ExpertHits h = ExpertHits::zeros(c);
    h.tokens = T;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        // 8 experts, sum 2000: 100 for the cold ones, the rest spread.
        std::vector<int64_t> row{300, 300, 250, 250, 250, 250, 200, 200};
        if (l == 31) row = {10, 390, 250, 250, 250, 250, 300, 300};
        if (l == 5) row = {300, 300, 250, 20, 480, 250, 200, 200};
        h.layers[static_cast<size_t>(l)] = row;
    }
    return h;
}

TEST(ExpertHits, RoundTripsThroughTheMetadataValue) {
    const ExpertHits h = skewed(mixtral());
    const std::string text = expert_hits_json(h);
    Result<ExpertHits> back = parse_expert_hits(text, mixtral(), "ckpt");
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->tokens, h.tokens);
    EXPECT_EQ(back->layers, h.layers);
    EXPECT_DOUBLE_EQ(back->frequency(31, 0), 0.01);
    double sum = 0;
    for (int64_t e = 0; e < 8; ++e) sum += back->frequency(3, e);
    EXPECT_DOUBLE_EQ(sum, 2.0);  // k experts per token
    Result<std::shared_ptr<const ExpertHits>> none = expert_hits_of({}, mixtral(), "ckpt");
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, nullptr);
}

TEST(ExpertHits, BadValuesAreTypedErrorsNamingTheKey) {
    const ModelConfig& c = mixtral();
    ExpertHits wrong_sum = skewed(c);
    wrong_sum.layers[2][0] += 1;
    ExpertHits short_row = skewed(c);
    short_row.layers[4].pop_back();
    ExpertHits few_layers = skewed(c);
    few_layers.layers.pop_back();
    for (const std::string& bad : {std::string("not json"), std::string("[1, 2]"), std::string("{\"tokens\": 5}"),
                                   std::string("{\"tokens\": 0, \"layers\": []}"),
                                   std::string("{\"tokens\": 1, \"layers\": [], \"x\": 1}"), expert_hits_json(wrong_sum),
                                   expert_hits_json(short_row), expert_hits_json(few_layers)}) {
        Result<ExpertHits> r = parse_expert_hits(bad, c, "ckpt");
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().message.find("headroom.expert_hits"), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("ckpt"), std::string::npos) << r.error().message;
    }
    ExpertHits too_many = skewed(c, 100);  // counts above tokens
    EXPECT_FALSE(parse_expert_hits(expert_hits_json(too_many), c, "ckpt").ok());
}

TEST(ExpertHits, PlacementTakesTheGloballyColdest) {
    const ModelConfig& c = mixtral();
    const ExpertHits h = skewed(c);
    const ExpertPlacement p = *place_experts(c, 2, &h);
    EXPECT_EQ(p.n_host, 2);
    EXPECT_TRUE(p.is_host(31, 0));
    EXPECT_TRUE(p.is_host(5, 3));
    EXPECT_EQ(p.host_in_layer(31), 1);
    EXPECT_EQ(p.host_in_layer(5), 1);
    EXPECT_EQ(p.host_in_layer(0), 0);  // not evenly per layer
    EXPECT_EQ(p.host_experts(31), std::vector<int64_t>{0});
    EXPECT_TRUE(p.measured());
    // The next coldest are the 200s (experts 6, 7 of most layers): ties go to the higher expert, then the
    // later layer.
    const ExpertPlacement q = *place_experts(c, 3, &h);
    EXPECT_TRUE(q.is_host(30, 7));
    int64_t total = 0;
    for (int64_t l = 0; l < 32; ++l)
        for (int64_t e = 0; e < 8; ++e) total += q.is_host(l, e) ? 1 : 0;
    EXPECT_EQ(total, 3);
    // Everything: every instance in host memory.
    EXPECT_EQ(place_experts(c, 256, &h)->host_in_layer(7), 8);
    // Statistics of another model are an error, never a silent misplacement.
    ExpertHits other = h;
    other.layers.pop_back();
    EXPECT_FALSE(place_experts(c, 2, &other).ok());
}

TEST(ExpertHits, WithoutStatisticsPlacementIsUnchanged) {
    const ModelConfig& c = mixtral();
    for (int64_t n : {0, 1, 17, 70, 139, 256}) {
        const ExpertPlacement a = *place_experts(c, n), b = *place_experts(c, n, nullptr);
        EXPECT_EQ(a.host_per_layer, b.host_per_layer);
        EXPECT_TRUE(a.host_mask.empty());
        EXPECT_FALSE(a.measured());
        for (int64_t l = 0; l < 32; ++l)
            for (int64_t e = 0; e < 8; ++e) EXPECT_EQ(a.is_host(l, e), e >= 8 - a.host_in_layer(l));
    }
}

TEST(ExpertHits, PredictionUsesTheMeasuredFrequencies) {
    const ModelConfig& c = mixtral();
    const ExpertHits h = skewed(c);
    const uint64_t one = 1000000, non_expert = 5000000;
    const OffloadRates rates{25.0, 1000.0, 100.0};
    const ExpertPlacement hot = *place_experts(c, 2, &h);
    const OffloadPrediction m = predict_offload(c, non_expert, one, hot, rates, 2048, 512);
    // sum over host (l, e) of p(l, e) x bytes: 0.01 + 0.02 experts per token.
    EXPECT_NEAR(m.host_bytes_per_token, (0.010 + 0.020) * 1e6, 1e-3);
    // Every token still reads k experts per layer in all.
    EXPECT_NEAR(m.device_bytes_per_token + m.host_bytes_per_token, 5e6 + 32 * 2 * 1e6, 1e-3);
    // Uniform routing for the same 2 experts would read 2 x k / E = 0.5 of an expert per token.
    const OffloadPrediction u = predict_offload(c, non_expert, one, *place_experts(c, 2), rates, 2048, 512);
    EXPECT_NEAR(u.host_bytes_per_token, 0.5e6, 1e-3);
    EXPECT_LT(m.decode_ms, u.decode_ms);
    EXPECT_EQ(m.prefill_stream_ms, u.prefill_stream_ms);  // every offloaded expert streams once per chunk
}

TEST(ExpertHits, PlannerKeepsAutosCountAndChangesWhichExperts) {
    const ModelConfig& c = mixtral();
    auto hits = std::make_shared<const ExpertHits>(skewed(c));
    PlanRequest r;
    r.budget_bytes = 24564ull << 20;  // rtx4090
    r.weight_format = DType::q4;
    r.offload = OffloadRequest{.automatic = true, .experts = 0};
    const MemoryPlan uniform = *plan_memory(c, r);
    r.expert_hits = hits;
    const MemoryPlan measured = *plan_memory(c, r);
    ASSERT_TRUE(uniform.fits && measured.fits);
    EXPECT_EQ(measured.offload.n_host, uniform.offload.n_host);
    EXPECT_EQ(measured.host_bytes, uniform.host_bytes);
    EXPECT_TRUE(measured.offload.is_host(31, 0));
    EXPECT_FALSE(uniform.offload.is_host(31, 0));
    ASSERT_TRUE(measured.prediction && uniform.prediction);
    EXPECT_LT(measured.prediction->host_bytes_per_token, uniform.prediction->host_bytes_per_token);
    // The report names the source of the prediction.
    const std::string t = format_plan_table(measured, "mixtral-8x7b");
    EXPECT_NE(t.find("router statistics (1000 calibration tokens"), std::string::npos) << t;
    EXPECT_NE(t.find("experts 0)"), std::string::npos) << t;  // layer 31's expert 0
    EXPECT_NE(format_plan_table(uniform, "mixtral-8x7b").find("uniform routing assumed"), std::string::npos);
    const nlohmann::json j = nlohmann::json::parse(format_plan_json(measured, "mixtral-8x7b"));
    EXPECT_EQ(j["offload"]["routing"], "measured");
    EXPECT_EQ(j["offload"]["calibration_tokens"], 1000);
    EXPECT_EQ(j["offload"]["host_experts_by_layer"][31][0], 0);
    EXPECT_EQ(nlohmann::json::parse(format_plan_json(uniform, "mixtral-8x7b"))["offload"]["routing"], "uniform");
    // Statistics shaped for another model: a typed error from the planner.
    ExpertHits other = skewed(c);
    other.layers.pop_back();
    r.expert_hits = std::make_shared<const ExpertHits>(other);
    EXPECT_FALSE(plan_memory(c, r).ok());
}

}  // namespace
}  // namespace hr

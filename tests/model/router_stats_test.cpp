// Router statistics on the fixture MoE models (CPU): the counts of RouterCounter equal a brute-force
// top-k recount from the tapped router logits; count_expert_hits keeps to its token budget; the counts
// survive quantize -> load as checkpoint metadata; and a placement of the coldest experts loads them into
// the host region and computes what the model computes without offload.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "backend/cpu/cpu_backend.h"
#include "io/tensor_store.h"
#include "loader/load.h"
#include "loader/router_stats.h"
#include "loader/session.h"
#include "memory/expert_hits.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "support/fixtures.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

// Token ids within the vocabulary (tiny-qwen3-moe has 512).
std::vector<int32_t> prompt(int n, int salt, int64_t vocab = 512) {
    std::vector<int32_t> t{1};
    for (int i = 1; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 7919 + salt * 104729) % (vocab - 3)));
    return t;
}

class RouterStats : public ::testing::TestWithParam<std::string> {};

TEST_P(RouterStats, CountsEqualATopKRecountFromTheRouterLogits) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture(GetParam()), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const ModelConfig& c = m->cfg;
    auto s = Session::create(be, *m, {.context = 128, .chunk = 7});  // several chunks per prompt
    ASSERT_TRUE(s.ok()) << s.error().message;
    RouterCounter counter(be, c);
    const ActivationTap count = counter.tap();
    ExpertHits recount = ExpertHits::zeros(c);
    const ActivationTap both = [&](std::string_view name, const Tensor& t) {
        count(name, t);
        if (!name.ends_with(".router_logits")) return;
        const int64_t l = std::stoll(std::string(name.substr(5)));
        std::vector<float> logits(static_cast<size_t>(t.numel()));
        be.synchronize();
        be.download(logits.data(), t.data, logits.size() * sizeof(float));
        const auto E = static_cast<size_t>(c.n_experts);
        for (size_t r = 0; r < logits.size() / E; ++r) {
            std::vector<size_t> idx(E);
            std::iota(idx.begin(), idx.end(), 0);
            // softmax is monotonic: the k largest logits are the k selected experts (either routing variant)
            std::stable_sort(idx.begin(), idx.end(),
                             [&](size_t a, size_t b) { return logits[r * E + a] > logits[r * E + b]; });
            for (int64_t k = 0; k < c.n_experts_active; ++k) ++recount.layers[static_cast<size_t>(l)][idx[static_cast<size_t>(k)]];
        }
        if (l == (c.layer_is_moe(0) ? 0 : 1)) recount.tokens += t.rows();
    };
    (*s)->set_tap(both);
    std::vector<float> last;
    int64_t tokens = 0;
    for (int salt = 0; salt < 3; ++salt) {
        (*s)->reset();
        const std::vector<int32_t> p = prompt(40 + 17 * salt, salt);
        ASSERT_TRUE((*s)->append(p, last, nullptr).ok());
        tokens += static_cast<int64_t>(p.size());
    }
    ASSERT_TRUE(counter.status().ok()) << counter.status().error().message;
    EXPECT_EQ(counter.hits().tokens, tokens);
    EXPECT_EQ(recount.tokens, tokens);
    EXPECT_EQ(counter.hits().layers, recount.layers);
    // A valid metadata value: every MoE layer's counts sum to tokens x k, dense layers have none.
    Result<ExpertHits> back = parse_expert_hits(expert_hits_json(counter.hits()), c, "counted");
    ASSERT_TRUE(back.ok()) << back.error().message;
}

TEST_P(RouterStats, CountExpertHitsKeepsToItsTokenBudget) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture(GetParam()), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const std::vector<std::vector<int32_t>> prompts{prompt(30, 1), prompt(300, 2), prompt(40, 3)};
    std::vector<std::pair<int64_t, int64_t>> seen;
    auto h = count_expert_hits(be, *m, prompts, 100, 2048, [&](int64_t d, int64_t t) { seen.emplace_back(d, t); });
    ASSERT_TRUE(h.ok()) << h.error().message;
    EXPECT_EQ(h->tokens, 100);  // 30 + the first 70 of the second
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back(), (std::pair<int64_t, int64_t>{100, 100}));
    // Each prompt cut to max_prompt_tokens.
    auto cut = count_expert_hits(be, *m, prompts, 100000, 32);
    ASSERT_TRUE(cut.ok()) << cut.error().message;
    EXPECT_EQ(cut->tokens, 30 + 32 + 32);
    EXPECT_FALSE(count_expert_hits(be, *m, {}, 100).ok());
    EXPECT_FALSE(count_expert_hits(be, *m, prompts, 0).ok());
}

INSTANTIATE_TEST_SUITE_P(MoeFixtures, RouterStats, ::testing::Values("tiny-mixtral", "tiny-qwen3-moe"),
                         [](const auto& i) {
                             std::string n = i.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

TEST(RouterStatsCheckpoint, RoundTripsThroughQuantizeAndLoadAndPlacesTheColdest) {
    const std::string src = test::model_fixture("tiny-mixtral");
    cpu::CpuBackend be;
    auto m = load_model(src, be, LoadOptions{.weights = DType::q8});
    ASSERT_TRUE(m.ok()) << m.error().message;
    auto hits = count_expert_hits(be, *m, std::vector<std::vector<int32_t>>{prompt(64, 5), prompt(50, 6)}, 1000);
    ASSERT_TRUE(hits.ok()) << hits.error().message;

    // quantize: the counts go into the checkpoint's metadata next to the format keys.
    const fs::path out = fs::path(::testing::TempDir()) / ("hr_router_stats_" + std::to_string(::getpid()));
    fs::create_directories(out);
    fs::copy_file(src + "/config.json", out / "config.json", fs::copy_options::overwrite_existing);
    auto store = io::TensorStore::open(src);
    ASSERT_TRUE(store.ok());
    const auto specs = expected_tensors(m->cfg);
    std::vector<DType> storage;
    for (const auto& s : specs) storage.push_back(storage_dtype_for(s, DType::q8, m->checkpoint_dtype));
    ASSERT_TRUE(write_quantized_checkpoint(*store, specs, storage, DType::q8, (out / "model.safetensors").string(), {},
                                           {{kExpertHitsKey, expert_hits_json(*hits)}})
                    .ok());

    auto back = io::TensorStore::open(out.string());
    ASSERT_TRUE(back.ok()) << back.error().message;
    auto read = expert_hits_of(back->metadata(), m->cfg, back->path());
    ASSERT_TRUE(read.ok()) << read.error().message;
    ASSERT_NE(*read, nullptr);
    EXPECT_EQ((*read)->tokens, hits->tokens);
    EXPECT_EQ((*read)->layers, hits->layers);

    // load: the pre-quantized checkpoint loads as before; with the coldest 3 experts in host memory the
    // logits are the same and exactly those experts are host weights.
    auto logits = [&](const LoadedModel& lm) {
        auto s = Session::create(be, lm, {.context = 64, .chunk = 16, .all_logits = true});
        EXPECT_TRUE(s.ok());
        std::vector<float> last, all;
        EXPECT_TRUE((*s)->append(prompt(40, 9), last, &all).ok());
        return all;
    };
    auto plain = load_model(out.string(), be, {});
    ASSERT_TRUE(plain.ok()) << plain.error().message;
    auto placed = place_experts(plain->cfg, 3, read->get());
    ASSERT_TRUE(placed.ok()) << placed.error().message;
    auto off = load_model(out.string(), be, LoadOptions{.offload = *placed});
    ASSERT_TRUE(off.ok()) << off.error().message;
    EXPECT_EQ(off->offloaded_experts, 3);
    // The 3 smallest counts are the host experts.
    std::vector<int64_t> all_counts;
    for (const auto& row : (*read)->layers) all_counts.insert(all_counts.end(), row.begin(), row.end());
    std::sort(all_counts.begin(), all_counts.end());
    int64_t n_host = 0;
    for (int64_t l = 0; l < off->cfg.n_layers; ++l)
        for (int64_t e = 0; e < off->cfg.n_experts; ++e) {
            const bool host = off->weights.layers[static_cast<size_t>(l)].ew1[static_cast<size_t>(e)].host;
            EXPECT_EQ(host, placed->is_host(l, e)) << l << " " << e;
            if (host) {
                ++n_host;
                EXPECT_LE((*read)->layers[static_cast<size_t>(l)][static_cast<size_t>(e)], all_counts[2]);
            }
        }
    EXPECT_EQ(n_host, 3);
    EXPECT_EQ(logits(*off), logits(*plain));
    std::error_code ec;
    fs::remove_all(out, ec);
}

}  // namespace
}  // namespace hr

// Weights are bound to their roles by NAME (TensorSpec::slot), never by position: each member holds the
// checkpoint tensor of its HF name; swapping two same-shaped tensors' names in a checkpoint moves them
// (and the model no longer matches transformers); the order of the spec table does not matter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "loader/load.h"
#include "loader/session.h"
#include "support/compare.h"
#include "support/expected.h"
#include "support/fixtures.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

bool same_bytes(const Weight& w, const io::TensorInfo& t) {
    return w.data && std::memcmp(w.data, t.data, t.nbytes) == 0;
}

// Worst max-abs / max|ref| over the positions of prompt 0 of a fixture.
double worst_error(const LoadedModel& m, Backend& be, const test::Expected& e) {
    auto s = Session::create(be, m, {.context = 64, .chunk = 64, .all_logits = true});
    EXPECT_TRUE(s.ok());
    std::vector<float> last, all;
    EXPECT_TRUE((*s)->append(e.tokens, last, &all).ok());
    double worst = 0;
    const auto V = static_cast<size_t>(m.cfg.vocab_size);
    for (size_t t = 0; t < e.tokens.size(); ++t) {
        const test::Diff d = test::compare(std::span<const float>(all.data() + t * V, V),
                                           std::span<const float>(e.logits.data() + t * V, V));
        worst = std::max(worst, d.max_abs / d.max_ref);
    }
    return worst;
}

struct Named {
    const char* hf_name;
    const Weight* (*get)(const ModelWeights&);
};

// Members against the tensor of the same name, for one fixture per architecture family.
TEST(SlotBinding, EveryMemberHoldsTheTensorOfItsName) {
    const std::vector<std::pair<std::string, std::vector<Named>>> cases = {
        {"tiny-mixtral",
         {{"model.layers.1.self_attn.q_proj.weight", [](const ModelWeights& w) { return &w.layers[1].wq; }},
          {"model.layers.1.self_attn.o_proj.weight", [](const ModelWeights& w) { return &w.layers[1].wo; }},
          {"model.layers.0.block_sparse_moe.gate.weight", [](const ModelWeights& w) { return &w.layers[0].router; }},
          {"model.layers.0.block_sparse_moe.experts.3.w1.weight", [](const ModelWeights& w) { return &w.layers[0].ew1[3]; }},
          {"model.layers.0.block_sparse_moe.experts.3.w3.weight", [](const ModelWeights& w) { return &w.layers[0].ew3[3]; }},
          {"model.layers.0.block_sparse_moe.experts.2.w2.weight", [](const ModelWeights& w) { return &w.layers[0].ew2[2]; }},
          {"lm_head.weight", [](const ModelWeights& w) { return &w.lm_head; }}}},
        {"tiny-qwen2",
         {{"model.layers.0.self_attn.k_proj.bias", [](const ModelWeights& w) { return &w.layers[0].bk; }},
          {"model.layers.0.self_attn.v_proj.bias", [](const ModelWeights& w) { return &w.layers[0].bv; }},
          {"model.layers.1.mlp.up_proj.weight", [](const ModelWeights& w) { return &w.layers[1].w3; }},
          {"model.embed_tokens.weight", [](const ModelWeights& w) { return &w.lm_head; }}}},  // tied
        {"tiny-qwen3-moe",
         {{"model.layers.1.self_attn.q_norm.weight", [](const ModelWeights& w) { return &w.layers[1].q_norm; }},
          {"model.layers.1.self_attn.k_norm.weight", [](const ModelWeights& w) { return &w.layers[1].k_norm; }},
          {"model.layers.0.mlp.down_proj.weight", [](const ModelWeights& w) { return &w.layers[0].w2; }},
          {"model.layers.2.mlp.gate.weight", [](const ModelWeights& w) { return &w.layers[2].router; }},
          {"model.layers.2.mlp.experts.5.up_proj.weight", [](const ModelWeights& w) { return &w.layers[2].ew3[5]; }},
          {"model.layers.2.mlp.experts.6.gate_proj.weight", [](const ModelWeights& w) { return &w.layers[2].ew1[6]; }}}},
    };
    for (const auto& [fixture, named] : cases) {
        cpu::CpuBackend be;
        auto m = load_model(test::model_fixture(fixture), be, {});  // bf16 stays bf16: bytes comparable
        ASSERT_TRUE(m.ok()) << fixture << ": " << m.error().message;
        auto f = io::SafetensorsFile::open(test::model_fixture(fixture) + "/model.safetensors");
        ASSERT_TRUE(f.ok());
        for (const Named& n : named) {
            const io::TensorInfo* t = (*f)->find(n.hf_name);
            ASSERT_NE(t, nullptr) << n.hf_name;
            EXPECT_TRUE(same_bytes(*n.get(m->weights), *t)) << fixture << ": " << n.hf_name;
        }
    }
}

// Two same-shaped tensors ([64, 64] q_proj and o_proj of tiny-mixtral's layer 0) with their names
// swapped: the loader accepts the file (shapes match) and binds each by its new name, so wq holds the
// bytes that were o_proj, and the logits no longer match transformers.
TEST(SlotBinding, SwappingTwoSameShapedTensorsNamesFailsToMatch) {
    const std::string src = test::model_fixture("tiny-mixtral");
    const fs::path dir = fs::temp_directory_path() / ("hr_slot_swap_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    fs::copy_file(src + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
    auto f = io::SafetensorsFile::open(src + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    const std::string q = "model.layers.0.self_attn.q_proj.weight", o = "model.layers.0.self_attn.o_proj.weight";
    ASSERT_EQ((*f)->find(q)->shape, (*f)->find(o)->shape);
    std::vector<io::TensorToWrite> ts;
    for (const auto& t : (*f)->tensors()) {
        std::string name = t.name == q ? o : t.name == o ? q : t.name;
        ts.push_back(io::TensorToWrite{name, t.dtype, t.shape, t.data, t.nbytes});
    }
    ASSERT_TRUE(io::write_safetensors((dir / "model.safetensors").string(), ts, {}).ok());

    cpu::CpuBackend be;
    auto orig = load_model(src, be, {});
    auto swapped = load_model(dir.string(), be, {});
    ASSERT_TRUE(orig.ok() && swapped.ok()) << (swapped.ok() ? "" : swapped.error().message);
    EXPECT_TRUE(same_bytes(swapped->weights.layers[0].wq, *(*f)->find(o)));
    EXPECT_TRUE(same_bytes(swapped->weights.layers[0].wo, *(*f)->find(q)));
    const test::Expected e = test::read_expected("tiny-mixtral")[0];
    EXPECT_LE(worst_error(*orig, be, e), test::kFixtureLogitsRelMax);
    EXPECT_GT(worst_error(*swapped, be, e), 100 * test::kFixtureLogitsRelMax)
        << "a checkpoint with q_proj and o_proj swapped still matched: binding is not by name";
    fs::remove_all(dir);
}

// bind_weight() puts a spec's view in the same member whatever the order of the table.
TEST(SlotBinding, TableOrderDoesNotMatter) {
    auto cfg = load_model_config(test::model_fixture("tiny-qwen3-moe") + "/config.json");
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    std::vector<TensorSpec> specs = expected_tensors(*cfg);
    std::vector<uint8_t> arena(specs.size());  // a distinct address per tensor name
    std::map<std::string, const void*> addr;
    auto bind_all = [&](const std::vector<TensorSpec>& order) {
        ModelWeights w;
        init_weights(*cfg, w);
        for (const TensorSpec& s : order) {
            Weight v{DType::bf16, s.rows(), s.cols(), addr.at(s.hf_name), nullptr};
            bind_weight(w, s, v);
        }
        EXPECT_TRUE(finish_weights(*cfg, w).ok());
        return w;
    };
    for (size_t i = 0; i < specs.size(); ++i) addr[specs[i].hf_name] = &arena[i];
    const ModelWeights fwd = bind_all(specs);
    std::reverse(specs.begin(), specs.end());
    std::rotate(specs.begin(), specs.begin() + 7, specs.end());
    const ModelWeights rev = bind_all(specs);
    for (size_t l = 0; l < fwd.layers.size(); ++l) {
        const LayerWeights &a = fwd.layers[l], &b = rev.layers[l];
        for (auto m : {&LayerWeights::attn_norm, &LayerWeights::wq, &LayerWeights::wk, &LayerWeights::wv,
                       &LayerWeights::wo, &LayerWeights::q_norm, &LayerWeights::k_norm, &LayerWeights::ffn_norm,
                       &LayerWeights::w1, &LayerWeights::w2, &LayerWeights::w3, &LayerWeights::router})
            EXPECT_EQ((a.*m).data, (b.*m).data) << "layer " << l;
        for (size_t e = 0; e < a.ew1.size(); ++e) {
            EXPECT_EQ(a.ew1[e].data, b.ew1[e].data);
            EXPECT_EQ(a.ew2[e].data, b.ew2[e].data);
            EXPECT_EQ(a.ew3[e].data, b.ew3[e].data);
        }
    }
    EXPECT_EQ(fwd.layers[2].ew3[5].data, addr.at("model.layers.2.mlp.experts.5.up_proj.weight"));
}

// A slot the config needs but the table did not fill is an error naming it.
TEST(SlotBinding, UnboundSlotIsNamed) {
    auto cfg = load_model_config(test::model_fixture("tiny-qwen2") + "/config.json");
    ASSERT_TRUE(cfg.ok());
    std::vector<uint8_t> arena(4096);
    ModelWeights w;
    init_weights(*cfg, w);
    for (const TensorSpec& s : expected_tensors(*cfg)) {
        if (s.hf_name == "model.layers.1.self_attn.v_proj.bias") continue;
        bind_weight(w, s, Weight{DType::bf16, s.rows(), s.cols(), arena.data(), nullptr});
    }
    Status st = finish_weights(*cfg, w);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("bv of layer 1 is not bound"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace hr

// --dump-activations: the named intermediates the forward pass taps equal transformers' forward-hook
// outputs of the same modules (act0.* in the Qwen fixtures' expected.safetensors, made by
// tools/make_fixture.py), and they are written to DIR/activations.safetensors.
#include <gtest/gtest.h>

#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "loader/activation_dump.h"
#include "loader/load.h"
#include "loader/session.h"
#include "support/compare.h"
#include "support/expected.h"
#include "support/fixtures.h"

namespace hr {
namespace {

class DumpFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(DumpFixture, TappedIntermediatesMatchTransformersHooks) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture(GetParam()), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const test::Expected e = test::read_expected(GetParam())[0];
    auto s = Session::create(be, *m, {.context = 64, .chunk = 3, .all_logits = true});  // several chunks
    ASSERT_TRUE(s.ok());
    ActivationDump dump(be);
    (*s)->set_tap(dump.tap());
    std::vector<float> last, all;
    ASSERT_TRUE((*s)->append(e.tokens, last, &all).ok());

    auto ref = io::SafetensorsFile::open(test::model_fixture(GetParam()) + "/expected.safetensors");
    ASSERT_TRUE(ref.ok());
    int compared = 0;
    for (const io::TensorInfo& t : (*ref)->tensors()) {
        if (!t.name.starts_with("act0.")) continue;
        const std::string name = t.name.substr(5);
        auto it = dump.entries().find(name);
        ASSERT_NE(it, dump.entries().end()) << "no tapped activation named " << name;
        const std::vector<float> want = test::read_tensor_vec<float>(**ref, t.name);
        ASSERT_EQ(it->second.values.size(), want.size()) << name;
        const test::Diff d = test::compare(it->second.values, want);
        EXPECT_LE(d.max_abs, test::kFixtureLogitsRelMax * d.max_ref) << GetParam() << " " << name;
        ++compared;
    }
    EXPECT_GE(compared, 3 * static_cast<int>(m->cfg.n_layers)) << "attn_out, mlp_out/moe_out and out per layer";
    // Every layer's names exist, MoE layers with moe_out and router_logits, dense ones with mlp_out.
    for (int64_t l = 0; l < m->cfg.n_layers; ++l) {
        const std::string p = "layer" + std::to_string(l) + ".";
        const bool moe = m->cfg.layer_is_moe(l);
        for (const char* n : {"attn_in", "q", "k", "v", "attn_out", "ffn_in", "out"})
            EXPECT_TRUE(dump.entries().count(p + n)) << p + n;
        EXPECT_TRUE(dump.entries().count(p + (moe ? "moe_out" : "mlp_out"))) << p << (moe ? "moe_out" : "mlp_out");
        EXPECT_EQ(dump.entries().count(p + "router_logits"), moe ? 1u : 0u) << p;
    }

    const auto dir = std::filesystem::temp_directory_path() / ("hr_dump_" + std::to_string(::getpid()));
    ASSERT_TRUE(dump.write(dir.string()).ok());
    auto f = io::SafetensorsFile::open((dir / "activations.safetensors").string());
    ASSERT_TRUE(f.ok()) << f.error().message;
    const io::TensorInfo* out0 = (*f)->find("layer0.out");
    ASSERT_NE(out0, nullptr);
    EXPECT_EQ(out0->shape, (std::vector<int64_t>{static_cast<int64_t>(e.tokens.size()), m->cfg.dim}));
    std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DumpFixture,
                         ::testing::Values("tiny-qwen2", "tiny-qwen3", "tiny-qwen3-moe", "tiny-qwen3-moe-renorm"));

}  // namespace
}  // namespace hr

// GGUF as a checkpoint, on the tiny fixtures: each HF fixture (tiny-llama dense with tied embeddings,
// tiny-mixtral with experts) is written as a GGUF file the way llama.cpp's converter lays it out (GGUF
// names, BF16 values, Q and K rows permuted for its rope, experts stacked [E, rows, cols]); loading that
// file must give exactly the logits of the HF directory (same values, same kernels). Also: leaving the
// permutation out changes the logits (so undoing it is tested), and malformed files give errors naming
// the tensor or key.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "backend/cpu/cpu_backend.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "loader/load.h"
#include "loader/session.h"
#include "memory/plan.h"
#include "model/builtin_models.h"
#include "model/gguf_config.h"
#include "model/gguf_metadata.h"
#include "model/tensor_names.h"
#include "support/fixtures.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

struct Options {
    bool permute_qk = true;           // as convert_hf_to_gguf does for the llama architecture
    std::string drop;                 // GGUF tensor name to leave out
    std::string extra;                // GGUF tensor name to add (a copy of output_norm.weight)
    std::string drop_key;             // metadata key to leave out
    std::string swap_a, swap_b;       // two same-shaped GGUF tensors whose data are exchanged
};

// llama.cpp's permutation of one projection: within each head, GGUF row 2i + s holds HF row s * hd/2 + i.
std::vector<uint8_t> permute_rows(const uint8_t* src, int64_t rows, int64_t row_bytes, int64_t heads) {
    std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
    const int64_t hd = rows / heads;
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd / 2; ++i)
            for (int64_t s = 0; s < 2; ++s)
                std::memcpy(out.data() + (h * hd + 2 * i + s) * row_bytes, src + (h * hd + s * hd / 2 + i) * row_bytes,
                            static_cast<size_t>(row_bytes));
    return out;
}

class GgufFixture {
public:
    // Writes the fixture `model` as a GGUF file at `path`.
    Status write(const std::string& model, const std::string& path, const Options& o) {
        const std::string dir = test::model_fixture(model);
        HR_ASSIGN(ModelConfig c, load_model_config(dir + "/config.json"));
        HR_ASSIGN(auto st, io::SafetensorsFile::open(dir + "/model.safetensors"));
        // convert_hf_to_gguf permutes Q/K rows for the llama architecture only.
        const bool qwen = c.arch == Architecture::qwen2 || c.arch == Architecture::qwen3 || c.arch == Architecture::qwen3_moe;
        std::vector<io::GgufKV> kv = gguf_metadata_for(c);
        std::erase_if(kv, [&](const io::GgufKV& k) { return k.key == o.drop_key; });
        std::map<std::string, io::GgufTensorToWrite> out;  // by GGUF name
        for (const TensorSpec& s : expected_tensors(c)) {
            const io::TensorInfo* t = st->find(s.hf_name);
            if (!t || t->dtype != "BF16") return errorf("fixture tensor '{}' missing or not BF16", s.hf_name);
            const auto src = gguf_source_for(s.hf_name);
            if (!src) return errorf("no GGUF name for '{}'", s.hf_name);
            const int64_t cols = s.shape.back(), rows = static_cast<int64_t>(t->nbytes) / 2 / cols;
            const uint8_t* data = t->data;
            int64_t heads = 0;
            if (!qwen && o.permute_qk && s.hf_name.ends_with("q_proj.weight")) heads = c.n_heads;
            if (!qwen && o.permute_qk && s.hf_name.ends_with("k_proj.weight")) heads = c.n_kv_heads;
            if (heads) {
                keep_.push_back(permute_rows(data, rows, cols * 2, heads));
                data = keep_.back().data();
            }
            if (src->expert < 0) {
                out[src->name] = {src->name, s.shape, static_cast<uint32_t>(io::GgmlType::BF16), data, t->nbytes};
                continue;
            }
            auto& stacked = stacks_[src->name];  // experts in order 0..E-1 (expected_tensors' order)
            stacked.insert(stacked.end(), data, data + t->nbytes);
            std::vector<int64_t> shape = s.shape;
            shape.insert(shape.begin(), src->expert + 1);
            out[src->name] = {src->name, shape, static_cast<uint32_t>(io::GgmlType::BF16), nullptr, stacked.size()};
        }
        for (auto& [name, t] : out) {
            if (stacks_.count(name)) t.data = stacks_[name].data();
        }
        if (!o.swap_a.empty()) std::swap(out.at(o.swap_a).data, out.at(o.swap_b).data);
        if (!o.extra.empty()) {
            io::GgufTensorToWrite e = out.at("output_norm.weight");
            e.name = o.extra;
            out[o.extra] = e;
        }
        out.erase(o.drop);
        std::vector<io::GgufTensorToWrite> list;
        for (auto& [name, t] : out) list.push_back(t);
        return io::write_gguf(path, kv, list);
    }

private:
    std::vector<std::vector<uint8_t>> keep_;
    std::map<std::string, std::vector<uint8_t>> stacks_;
};

std::string temp_path(const std::string& tag) {
    return (fs::temp_directory_path() / fmt::format("hr_gguf_model_{}_{}.gguf", ::getpid(), tag)).string();
}

// Logits of every position of the fixture's first prompt.
std::vector<float> logits_of(const std::string& path, const std::vector<int32_t>& tokens, uint64_t* bytes = nullptr,
                             DType* format = nullptr) {
    cpu::CpuBackend be;
    auto m = load_model(path, be, {});
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    if (!m.ok()) return {};
    if (bytes) *bytes = m->weight_bytes;
    if (format) *format = m->weight_format;
    auto s = Session::create(be, *m, {.context = static_cast<int64_t>(tokens.size()), .all_logits = true});
    EXPECT_TRUE(s.ok());
    std::vector<float> last, all;
    EXPECT_TRUE((*s)->append(tokens, last, &all).ok());
    return all;
}

std::vector<int32_t> first_prompt(const std::string& model) {
    auto f = io::SafetensorsFile::open(test::model_fixture(model) + "/expected.safetensors");
    EXPECT_TRUE(f.ok());
    const io::TensorInfo* t = (*f)->find("tokens_0");
    std::vector<int32_t> v(t->nbytes / 4);
    std::memcpy(v.data(), t->data, t->nbytes);
    return v;
}

class GgufModel : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufModel, SameLogitsAsTheHuggingFaceDirectory) {
    const std::string model = GetParam();
    const std::string path = temp_path(model);
    GgufFixture fx;
    Status st = fx.write(model, path, {});
    ASSERT_TRUE(st.ok()) << st.error().message;
    const auto tokens = first_prompt(model);
    uint64_t gguf_bytes = 0;
    DType format = DType::f32;
    const auto want = logits_of(test::model_fixture(model), tokens);
    const auto got = logits_of(path, tokens, &gguf_bytes, &format);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(format, DType::bf16);  // the file's own dtype
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "logit " << i;

    // The planner sizes the file's weights exactly as they load.
    auto cfg = resolve_model_config(path);
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    EXPECT_EQ(stored_weight_bytes(*cfg, cfg->tensor_dtypes->native, DType::f32), gguf_bytes);
    EXPECT_EQ(auto_weight_formats(*cfg), std::vector<DType>{DType::bf16});
    fs::remove(path);
}

TEST_P(GgufModel, QkPermutationIsUndone) {
    const std::string model = GetParam();
    const std::string path = temp_path(std::string(model) + "_noperm");
    GgufFixture fx;
    ASSERT_TRUE(fx.write(model, path, {.permute_qk = false}).ok());
    const auto tokens = first_prompt(model);
    const auto want = logits_of(test::model_fixture(model), tokens);
    const auto got = logits_of(path, tokens);  // loads, but Q/K rows are now scrambled by the unpermute
    ASSERT_EQ(got.size(), want.size());
    double diff = 0;
    for (size_t i = 0; i < got.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    EXPECT_GT(diff, 1e-3);
    fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufModel, ::testing::Values("tiny-llama", "tiny-mixtral"),
                         [](const auto& info) { return std::string(info.param) == "tiny-llama" ? "llama" : "mixtral"; });

// Qwen2 (q/k/v bias), Qwen3 (q/k norm), Qwen3-MoE (dense layers found by their missing router, routing
// with and without renormalisation): written unpermuted as llama.cpp does for them.
TEST(GgufQwen, SameLogitsAsTheHuggingFaceDirectory) {
    for (const char* model : {"tiny-qwen2", "tiny-qwen3", "tiny-qwen3-moe", "tiny-qwen3-moe-renorm"}) {
        const std::string path = temp_path(model);
        GgufFixture fx;
        Status st = fx.write(model, path, {});
        ASSERT_TRUE(st.ok()) << model << ": " << st.error().message;
        const auto tokens = first_prompt(model);
        const auto want = logits_of(test::model_fixture(model), tokens);
        const auto got = logits_of(path, tokens);
        ASSERT_EQ(got.size(), want.size()) << model;
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << model << " logit " << i;
        fs::remove(path);
    }
}

std::string load_error(const std::string& model, const Options& o) {
    const std::string path = temp_path("bad");
    GgufFixture fx;
    Status st = fx.write(model, path, o);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    cpu::CpuBackend be;
    auto m = load_model(path, be, {});
    fs::remove(path);
    return m.ok() ? "<loaded>" : m.error().message;
}

TEST(GgufModelErrors, MissingTensorNamesBothNames) {
    const std::string e = load_error("tiny-llama", {.drop = "blk.1.attn_v.weight"});
    EXPECT_NE(e.find("'blk.1.attn_v.weight'"), std::string::npos) << e;
    EXPECT_NE(e.find("model.layers.1.self_attn.v_proj.weight"), std::string::npos) << e;
}

TEST(GgufModelErrors, MissingStackedExperts) {
    const std::string e = load_error("tiny-mixtral", {.drop = "blk.0.ffn_up_exps.weight"});
    EXPECT_NE(e.find("blk.0.ffn_up_exps.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("blk.0.ffn_up.0.weight"), std::string::npos) << e;  // the legacy name was tried too
}

TEST(GgufModelErrors, UnexpectedTensor) {
    const std::string e = load_error("tiny-llama", {.extra = "blk.0.attn_q_norm.weight"});
    EXPECT_NE(e.find("unexpected tensor 'blk.0.attn_q_norm.weight'"), std::string::npos) << e;
}

TEST(GgufModelErrors, MissingKey) {
    const std::string e = load_error("tiny-llama", {.drop_key = "llama.block_count"});
    EXPECT_NE(e.find("'llama.block_count' is missing"), std::string::npos) << e;
}

TEST(GgufModelErrors, SwappedSameShapedTensorsChangeTheModel) {
    // Names, not positions, bind tensors: exchanging gate and up of a layer loads (same shapes) but is a
    // different model.
    const std::string path = temp_path("swap");
    GgufFixture fx;
    ASSERT_TRUE(fx.write("tiny-llama", path, {.swap_a = "blk.0.ffn_gate.weight", .swap_b = "blk.0.ffn_up.weight"}).ok());
    const auto tokens = first_prompt("tiny-llama");
    const auto want = logits_of(test::model_fixture("tiny-llama"), tokens);
    const auto got = logits_of(path, tokens);
    ASSERT_EQ(got.size(), want.size());
    double diff = 0;
    for (size_t i = 0; i < got.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    EXPECT_GT(diff, 1e-4);
    fs::remove(path);
}

TEST(GgufModelErrors, UnsupportedArchitecture) {
    std::vector<io::GgufKV> kv = {io::gguf_kv_str("general.architecture", "gpt2")};
    const std::string path = temp_path("arch");
    ASSERT_TRUE(io::write_gguf(path, kv, {}).ok());
    auto c = resolve_model_config(path);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("general.architecture 'gpt2' is not supported"), std::string::npos)
        << c.error().message;
    fs::remove(path);
}

TEST(GgufNames, Table) {
    auto s = gguf_source_for("model.layers.12.self_attn.k_proj.weight");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->name, "blk.12.attn_k.weight");
    s = gguf_source_for("model.layers.3.block_sparse_moe.experts.7.w2.weight");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->name, "blk.3.ffn_down_exps.weight");
    EXPECT_EQ(s->expert, 7);
    EXPECT_EQ(s->legacy, "blk.3.ffn_down.7.weight");
    s = gguf_source_for("model.layers.0.mlp.experts.5.gate_proj.weight");  // qwen3moe
    ASSERT_TRUE(s);
    EXPECT_EQ(s->name, "blk.0.ffn_gate_exps.weight");
    EXPECT_EQ(s->expert, 5);
    EXPECT_EQ(gguf_source_for("model.layers.0.self_attn.q_norm.weight")->name, "blk.0.attn_q_norm.weight");
    EXPECT_EQ(gguf_source_for("model.layers.0.self_attn.v_proj.bias")->name, "blk.0.attn_v.bias");
    EXPECT_EQ(gguf_source_for("model.layers.0.mlp.gate.weight")->name, "blk.0.ffn_gate_inp.weight");
    EXPECT_EQ(gguf_source_for("lm_head.weight")->name, "output.weight");
    EXPECT_FALSE(gguf_source_for("model.layers.x.mlp.up_proj.weight"));
    EXPECT_FALSE(gguf_source_for("model.layers.0.mlp.experts.1.nope.weight"));
}

}  // namespace
}  // namespace hr

// Quality of int8 / int4 weights on the fixtures: relative L2 error of all logits and top-1 agreement
// against transformers' f32 reference (thresholds in tests/unit/quant/quant_tolerances.h), and a
// pre-quantized directory giving exactly the logits of quantize-on-load.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "io/tensor_store.h"
#include "loader/load.h"
#include "loader/session.h"
#include "memory/weight_format.h"
#include "model/config.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"
#include "support/fixtures.h"
#include "unit/quant/quant_tolerances.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

struct Prompt {
    std::vector<int32_t> tokens;
    std::vector<float> logits;  // [T, vocab]
};

std::vector<Prompt> read_prompts(const std::string& model) {
    std::vector<Prompt> out;
    auto f = io::SafetensorsFile::open(test::model_fixture(model) + "/expected.safetensors");
    EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
    if (!f.ok()) return out;
    for (int i = 0;; ++i) {
        const io::TensorInfo* tk = (*f)->find("tokens_" + std::to_string(i));
        const io::TensorInfo* lg = (*f)->find("logits_" + std::to_string(i));
        if (!tk || !lg) break;
        Prompt p;
        p.tokens.resize(tk->nbytes / 4);
        std::memcpy(p.tokens.data(), tk->data, tk->nbytes);
        p.logits.resize(lg->nbytes / 4);
        std::memcpy(p.logits.data(), lg->data, lg->nbytes);
        out.push_back(std::move(p));
    }
    return out;
}

// Logits of every position of every prompt, concatenated: [sum T, vocab].
std::vector<float> run_all(const std::string& dir, std::optional<DType> weights, const std::vector<Prompt>& prompts,
                           DType* format_out = nullptr) {
    cpu::CpuBackend be;
    auto m = load_model(dir, be, {.weights = weights});
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    if (!m.ok()) return {};
    if (format_out) *format_out = m->weight_format;
    std::vector<float> all;
    for (const Prompt& p : prompts) {
        auto s = Session::create(be, *m, {.context = 64, .chunk = 16, .all_logits = true});
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        if (!s.ok()) return {};
        std::vector<float> last, logits;
        Status st = (*s)->append(p.tokens, last, &logits);
        EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
        all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
}

struct Quality {
    double rel_l2 = 0.0;     // ||got - ref|| / ||ref|| over all logits
    double top1 = 0.0;       // fraction of positions with the same argmax
    double median_pos = 0.0; // median over positions of the per-position relative L2 error
    int64_t positions = 0;
};

Quality measure(const std::vector<float>& got, const std::vector<Prompt>& prompts, int64_t vocab) {
    std::vector<float> ref;
    for (const Prompt& p : prompts) ref.insert(ref.end(), p.logits.begin(), p.logits.end());
    Quality q;
    if (got.size() != ref.size() || ref.empty()) return Quality{INFINITY, 0.0, INFINITY, 0};
    double e2 = 0.0, r2 = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = static_cast<double>(got[i]) - ref[i];
        e2 += d * d;
        r2 += static_cast<double>(ref[i]) * ref[i];
    }
    q.rel_l2 = std::sqrt(e2 / r2);
    q.positions = static_cast<int64_t>(ref.size()) / vocab;
    int64_t agree = 0;
    std::vector<double> per_pos;
    for (int64_t t = 0; t < q.positions; ++t) {
        const float* g = got.data() + t * vocab;
        const float* r = ref.data() + t * vocab;
        agree += (std::max_element(g, g + vocab) - g) == (std::max_element(r, r + vocab) - r);
        double pe = 0.0, pr = 0.0;
        for (int64_t v = 0; v < vocab; ++v) {
            const double d = static_cast<double>(g[v]) - r[v];
            pe += d * d;
            pr += static_cast<double>(r[v]) * r[v];
        }
        per_pos.push_back(std::sqrt(pe / pr));
    }
    q.top1 = static_cast<double>(agree) / static_cast<double>(q.positions);
    std::sort(per_pos.begin(), per_pos.end());
    const size_t h = per_pos.size() / 2;
    q.median_pos = per_pos.size() % 2 ? per_pos[h] : 0.5 * (per_pos[h - 1] + per_pos[h]);
    return q;
}

struct QualityCase {
    const char* model;
    DType weights;
    quant::test::QualityLimits limits;
};

class QuantQuality : public ::testing::TestWithParam<QualityCase> {};

TEST_P(QuantQuality, LogitsCloseToReference) {
    const auto [model, weights, limits] = GetParam();
    const std::string dir = test::model_fixture(model);
    if (!fs::exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture missing: " << dir;
    const auto prompts = read_prompts(model);
    ASSERT_FALSE(prompts.empty());
    auto cfg = load_model_config(dir + "/config.json");
    ASSERT_TRUE(cfg.ok());
    DType got_format = DType::f32;
    const auto got = run_all(dir, weights, prompts, &got_format);
    ASSERT_EQ(got_format, weights);
    const Quality q = measure(got, prompts, cfg->vocab_size);
    // note: printed so that the measured figures are on record with every run (docs/formats.md cites them).
    std::printf("[quality] %s %s: relative L2 error of logits %.4f, top-1 agreement %.4f over %lld positions, "
                "median per-position relative L2 %.4f\n",
                model, std::string(dtype_name(weights)).c_str(), q.rel_l2, q.top1, static_cast<long long>(q.positions),
                q.median_pos);
    EXPECT_LE(q.rel_l2, limits.rel_l2_max);
    EXPECT_GE(q.top1, limits.top1_min);
    EXPECT_LE(q.median_pos, limits.median_pos_rel_max);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantQuality,
                         ::testing::Values(QualityCase{"tiny-mixtral", DType::q8, quant::test::kInt8TinyMixtral},
                                           QualityCase{"tiny-mixtral", DType::q4, quant::test::kInt4TinyMixtral},
                                           QualityCase{"tiny-llama", DType::q8, quant::test::kInt8TinyLlama},
                                           QualityCase{"tiny-llama", DType::q4, quant::test::kInt4TinyLlama}),
                         [](const auto& info) {
                             std::string n = std::string(info.param.model) + "_" +
                                             std::string(dtype_name(info.param.weights));
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

// `headroom quantize` output (written by the same library call) loads without --weights as the
// format it holds and gives bit-identical logits to quantizing the original on load.
class PrequantizedLoad : public ::testing::TestWithParam<DType> {};

TEST_P(PrequantizedLoad, SameLogitsAsQuantizeOnLoad) {
    const DType fmt = GetParam();
    const std::string src = test::model_fixture("tiny-mixtral");
    if (!fs::exists(src + "/model.safetensors")) GTEST_SKIP() << "fixture missing: " << src;
    const fs::path out = fs::path(::testing::TempDir()) /
                         ("hr_prequant_" + std::string(dtype_name(fmt)) + "_" + std::to_string(::getpid()));
    fs::create_directories(out);
    fs::copy_file(src + "/config.json", out / "config.json", fs::copy_options::overwrite_existing);
    auto cfg = load_model_config(src + "/config.json");
    ASSERT_TRUE(cfg.ok());
    auto store = io::TensorStore::open(src);
    ASSERT_TRUE(store.ok());
    const auto specs = expected_tensors(*cfg);
    auto ck = checkpoint_dtype(*store);
    ASSERT_TRUE(ck.ok());
    std::vector<DType> storage;
    for (const auto& s : specs) storage.push_back(storage_dtype_for(s, fmt, *ck));
    auto stats = write_quantized_checkpoint(*store, specs, storage, fmt, (out / "model.safetensors").string());
    ASSERT_TRUE(stats.ok()) << stats.error().message;

    const auto prompts = read_prompts("tiny-mixtral");
    DType loaded_format = DType::f32;
    const auto pre = run_all(out.string(), std::nullopt, prompts, &loaded_format);
    EXPECT_EQ(loaded_format, fmt);
    const auto onload = run_all(src, fmt, prompts);
    ASSERT_EQ(pre.size(), onload.size());
    EXPECT_EQ(std::memcmp(pre.data(), onload.data(), pre.size() * sizeof(float)), 0);

    // Asking the pre-quantized directory for another format is an error, not a silent re-quantization.
    cpu::CpuBackend be;
    auto other = load_model(out.string(), be, {.weights = fmt == DType::q8 ? DType::q4 : DType::q8});
    ASSERT_FALSE(other.ok());
    EXPECT_NE(other.error().message.find("pre-quantized"), std::string::npos) << other.error().message;
    std::error_code ec;
    fs::remove_all(out, ec);
}

INSTANTIATE_TEST_SUITE_P(Formats, PrequantizedLoad, ::testing::Values(DType::q8, DType::q4),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr

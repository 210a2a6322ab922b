// End to end on the GPU: the fixture models' logits against transformers (bf16 weights), greedy
// continuations, the int8/int4 paths against the CPU's, and the allocate-once rule (allocation count and
// cudaMemGetInfo unchanged over a long generation; device memory used vs the plan).
#include <cuda_runtime.h>

#include "io/safetensors.h"
#include "loader/load.h"
#include "loader/session.h"
#include "parity_util.h"
#include "runtime/sampler.h"
#include "support/compare.h"
#include "support/expected.h"
#include "support/fixtures.h"
#include "tolerances.h"

namespace hr::test {
namespace {

// Logits of every prompt position, prompts fed `chunk` tokens per step.
std::vector<float> all_logits(Backend& be, const LoadedModel& m, const std::vector<int32_t>& tokens, int64_t chunk) {
    auto s = Session::create(be, m, {.context = 64, .chunk = chunk, .all_logits = true});
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (!s.ok()) return {};
    std::vector<float> last, all;
    Status st = (*s)->append(tokens, last, &all);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    return all;
}

std::vector<int32_t> greedy(Backend& be, const LoadedModel& m, const std::vector<int32_t>& prompt, size_t n,
                            int64_t chunk) {
    auto s = Session::create(be, m, {.context = 128, .chunk = chunk});
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (!s.ok()) return {};
    std::vector<float> logits;
    EXPECT_TRUE((*s)->append(prompt, logits, nullptr).ok());
    std::vector<int32_t> got;
    for (size_t i = 0; i < n; ++i) {
        const int32_t next = argmax(logits);
        got.push_back(next);
        if (i + 1 < n) {
            EXPECT_TRUE((*s)->append(std::span(&next, 1), logits, nullptr).ok());
        }
    }
    return got;
}

// Max over positions of max_abs(row) / max|ref row|.
double worst_row_error(const std::vector<float>& got, const std::vector<float>& ref, int64_t vocab) {
    double worst = 0.0;
    if (got.size() != ref.size()) return INFINITY;
    for (size_t t = 0; t * static_cast<size_t>(vocab) < ref.size(); ++t) {
        std::span<const float> g(got.data() + t * vocab, static_cast<size_t>(vocab));
        std::span<const float> r(ref.data() + t * vocab, static_cast<size_t>(vocab));
        const Diff d = hr::test::compare(g, r);
        worst = std::max(worst, d.max_ref > 0 ? d.max_abs / d.max_ref : d.max_abs);
    }
    return worst;
}

class FixtureOnGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureOnGpu, LogitsMatchTransformers) {
    HR_REQUIRE_GPU();
    auto m = load_model(model_fixture(GetParam()), *gpu(), {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const auto expected = read_expected(GetParam());
    ASSERT_GE(expected.size(), 1u);
    for (size_t p = 0; p < expected.size(); ++p) {
        // chunk 5: every matmul on the f32 GEMV path; chunk 64: the prompt through the tensor cores.
        const double gemv = worst_row_error(all_logits(*gpu(), *m, expected[p].tokens, 5), expected[p].logits,
                                            m->cfg.vocab_size);
        EXPECT_LE(gemv, kFixtureLogitsRelMax) << GetParam() << " prompt " << p << " (GEMV path)";
        const double tc = worst_row_error(all_logits(*gpu(), *m, expected[p].tokens, 64), expected[p].logits,
                                          m->cfg.vocab_size);
        EXPECT_LE(tc, kTolLogitsBf16RelMax) << GetParam() << " prompt " << p << " (tensor-core prefill)";
    }
}

TEST_P(FixtureOnGpu, GreedyContinuationsMatchTransformers) {
    HR_REQUIRE_GPU();
    auto m = load_model(model_fixture(GetParam()), *gpu(), {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    for (const Expected& e : read_expected(GetParam())) {
        EXPECT_EQ(greedy(*gpu(), *m, e.tokens, e.greedy.size(), 5), e.greedy) << "prompt on the GEMV path";
        EXPECT_EQ(greedy(*gpu(), *m, e.tokens, e.greedy.size(), 256), e.greedy) << "prompt through the tensor cores";
    }
}

TEST_P(FixtureOnGpu, QuantizedPathsMatchCpu) {
    HR_REQUIRE_GPU();
    const auto expected = read_expected(GetParam());
    ASSERT_GE(expected.size(), 1u);
    for (DType fmt : {DType::q8, DType::q4}) {
        LoadOptions o;
        o.weights = fmt;
        auto mg = load_model(model_fixture(GetParam()), *gpu(), o);
        auto mc = load_model(model_fixture(GetParam()), cpu_oracle(), o);
        ASSERT_TRUE(mg.ok() && mc.ok()) << (mg.ok() ? "" : mg.error().message) << (mc.ok() ? "" : mc.error().message);
        ASSERT_EQ(mg->weight_format, fmt);
        for (const Expected& e : expected) {
            const auto ref = all_logits(cpu_oracle(), *mc, e.tokens, 5);
            const double err = worst_row_error(all_logits(*gpu(), *mg, e.tokens, 5), ref, mg->cfg.vocab_size);
            // int4 GEMVs run on int8 activations (dp4a, kTolInt8Activations) or f16 ones (tensor cores): at most
            // the size of error of bf16 operands.
            // With 8 experts (Qwen3-MoE fixtures), int4 weights leave router logits close enough that the GPU's
            // bf16/int8 activation rounding can flip one top-k choice in a row: kTolLogitsInt4ManyExpertsRelMax.
            const bool many_experts = mg->cfg.n_experts > 4;
            const double low_tol = fmt == DType::q4 && many_experts ? kTolLogitsInt4ManyExpertsRelMax : kTolLogitsBf16RelMax;
            // int8 GEMVs: f32 activations on the CUDA-core path (kFixtureLogitsRelMax), f16 activations on
            // the tensor cores (gemv_tc.cu), where the 8-expert fixtures may flip a top-k choice as above.
            const double q8_tc_tol = many_experts ? kTolLogitsInt4ManyExpertsRelMax : kTolLogitsF16RelMax;
            const double gemv_tol = fmt == DType::q4                       ? low_tol
                                    : gpu()->options().gemv_tensor_cores ? q8_tc_tol
                                                                         : kFixtureLogitsRelMax;
            EXPECT_LE(err, gemv_tol) << GetParam() << " " << dtype_name(fmt) << " (GEMV path)";
            const double tc = worst_row_error(all_logits(*gpu(), *mg, e.tokens, 64), ref, mg->cfg.vocab_size);
            EXPECT_LE(tc, low_tol) << GetParam() << " " << dtype_name(fmt) << " (tensor-core prefill)";
        }
    }
}

// Test names: the fixture name without "tiny-", '-' as '_' (mixtral, llama, qwen2, qwen3, qwen3_moe, ...).
INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureOnGpu,
                         ::testing::Values("tiny-mixtral", "tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-qwen3-moe",
                                           "tiny-qwen3-moe-renorm"),
                         [](const auto& info) {
                             std::string n = std::string(info.param).substr(5);
                             for (char& ch : n) ch = ch == '-' ? '_' : ch;
                             return n;
                         });

size_t device_free_bytes() {
    size_t free_b = 0, total_b = 0;
    EXPECT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
    return free_b;
}

TEST(AllocateOnce, LongGenerationAllocatesNothing) {
    HR_REQUIRE_GPU();
    cuda::CudaBackend& be = *gpu();
    be.synchronize();
    const size_t free_start = device_free_bytes();
    const uint64_t allocs_start = be.allocation_count();
    auto m = load_model(model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    auto s = Session::create(be, *m, {.context = 512, .chunk = 64});
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::vector<float> logits;
    std::vector<int32_t> prompt(100);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(1 + (i * 7919) % 31999);
    // Warm-up, as `serve` does before it reports ready: the driver loads each kernel's code at its first
    // launch (CUDA lazy loading), a one-time cost that is not an allocation of the engine's.
    ASSERT_TRUE((*s)->append(prompt, logits, nullptr).ok());
    for (int i = 0; i < 3; ++i) {
        const int32_t next = argmax(logits);
        ASSERT_TRUE((*s)->append(std::span(&next, 1), logits, nullptr).ok());
    }
    (*s)->reset();
    be.synchronize();
    const size_t free_ready = device_free_bytes();
    const uint64_t allocs_ready = be.allocation_count();
    // The plan: the weights' one allocation plus the session's activations and KV cache.
    const uint64_t planned = m->weight_bytes + (*s)->allocated_bytes();
    const uint64_t used = free_start - free_ready;
    std::printf("[ memory ] planned %llu bytes, cudaMemGetInfo used %llu bytes over %llu allocations\n",
                static_cast<unsigned long long>(planned), static_cast<unsigned long long>(used),
                static_cast<unsigned long long>(allocs_ready - allocs_start));
    // cudaMalloc hands out whole 2 MiB pages: small allocations may round up by up to one page each.
    EXPECT_GE(used + (2u << 20), planned);
    EXPECT_LE(used, planned + (allocs_ready - allocs_start) * (2u << 20));

    ASSERT_TRUE((*s)->append(prompt, logits, nullptr).ok());
    for (int i = 0; i < 400; ++i) {
        const int32_t next = argmax(logits);
        ASSERT_TRUE((*s)->append(std::span(&next, 1), logits, nullptr).ok());
    }
    be.synchronize();
    EXPECT_EQ(be.allocation_count(), allocs_ready) << "device memory was allocated during generation";
    EXPECT_EQ(device_free_bytes(), free_ready) << "free device memory changed during generation";
}

}  // namespace
}  // namespace hr::test

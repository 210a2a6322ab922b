// --offload-compute cpu on the CUDA backend (host_expert_compute.h): tiny-mixtral with experts in pinned
// host memory, batch-1 decode computing the selected host experts on the CPU (a host function on a forked
// stream; the GPU skips them and adds the host's row). Against the CPU oracle and the resident CUDA run
// within the model parity tolerances (not bit for bit: the host's kernels and the split sum round
// differently), with the CPU really computing experts; steps of 2 and 5 tokens and prefill keep the GPU
// paths and equal the resident run bit for bit; and the same steps replayed from captured CUDA graphs
// (host nodes) equal the direct launches bit for bit. Written without a GPU (unverified).
#include <cstdlib>
#include <numeric>

#include "loader/load.h"
#include "loader/session.h"
#include "memory/expert_offload.h"
#include "parity_util.h"
#include "session_logits.h"
#include "runtime/forward_runner.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "tolerances.h"

namespace hr::test {
namespace {

// The cpu path is disabled outside tests until it passes here (loader/offload_compute_setup.cpp).
[[maybe_unused]] const bool kOptIn = (setenv("HEADROOM_UNVERIFIED_OFFLOAD_CPU", "1", 1), true);

Result<LoadedModel> load(Backend& be, DType fmt, int64_t offloaded, std::optional<OffloadCompute> compute) {
    LoadOptions o;
    o.weights = fmt;
    o.offload_compute = compute;
    const std::string dir = model_fixture("tiny-mixtral");
    HR_ASSIGN(ModelConfig cfg, load_model_config(dir + "/config.json"));
    HR_ASSIGN(o.offload, place_experts(cfg, offloaded));
    if (offloaded > 0) HR_TRY(reserve_staging_for_largest_experts(be, cfg));
    return load_model(dir, be, o);
}

ExpertWeights layer0(const LoadedModel& m) {
    const LayerWeights& l = m.weights.layers[0];
    return {l.ew1, l.ew3, l.ew2};
}

// The shared backends are left in the default mode (gpu) for the tests after these.
struct ResetMode {
    cuda::CudaBackend& be;
    ExpertWeights layer;
    ~ResetMode() { EXPECT_TRUE(be.set_offload_compute(false, layer).ok()); }
};

TEST(OffloadComputeParity, CpuModeDecodeEqualsCpuOracleAndResident) {
    HR_REQUIRE_GPU();
    const std::vector<int32_t> tokens = prompt(40);
    for (cuda::CudaBackend* bp : gpus()) {  // the int8 / int4 GEMVs on the tensor cores and off them
        cuda::CudaBackend& be = *bp;
        for (DType fmt : {DType::q8, DType::q4}) {
            for (int64_t n : {int64_t{3}, int64_t{8}}) {  // 3: layer 0 expert 3, layer 1 experts 2-3; 8: all
                auto off = load(be, fmt, n, OffloadCompute::cpu);
                ASSERT_TRUE(off.ok()) << off.error().message;
                ResetMode reset{be, layer0(*off)};
                auto res = load(be, fmt, 0, std::nullopt);
                auto cpu = load(cpu_oracle(), fmt, n, OffloadCompute::cpu);  // nothing to choose on the CPU
                ASSERT_TRUE(res.ok() && cpu.ok());
                ASSERT_TRUE(off->offload_compute.has_value());
                EXPECT_TRUE(off->offload_compute->cpu);
                EXPECT_TRUE(off->offload_compute->rates.measured) << "the start-up probe failed";
                EXPECT_GT(off->offload_compute->rates.cpu_gbps, 0);
                EXPECT_TRUE(be.offload_compute_cpu());
                EXPECT_FALSE(cpu->offload_compute.has_value());
                const int64_t vocab = off->cfg.vocab_size;
                // int8 on the tensor-core backend: the resident run and the GPU's other products round the
                // activations to f16, the host's experts do not (offload_logits_tol).
                const double tol = offload_logits_tol(be, fmt, 1);
                // Chunks of 1: every step is a batch-1 decode step, the host computes the host experts.
                const uint64_t host0 = be.host_computed_experts();
                const auto got = logits_of(be, *off, tokens, 1);
                EXPECT_GT(be.host_computed_experts(), host0) << "the CPU computed no expert";
                const auto same = logits_of(be, *res, tokens, 1);
                const auto ref = logits_of(cpu_oracle(), *cpu, tokens, 1);
                EXPECT_LE(worst_row_error(got, ref, vocab), tol) << dtype_name(fmt) << " offload " << n << " vs CPU";
                EXPECT_LE(worst_row_error(got, same, vocab), tol) << dtype_name(fmt) << " offload " << n << " vs resident";
                // 2 and 5 tokens per step (one GEMV per pair, grouped) and prefill: the GPU paths, bit for bit.
                const uint64_t host1 = be.host_computed_experts();
                for (int64_t chunk : {int64_t{2}, int64_t{5}, int64_t{40}})
                    EXPECT_EQ(logits_of(be, *off, tokens, chunk), logits_of(be, *res, tokens, chunk))
                        << dtype_name(fmt) << " offload " << n << " chunk " << chunk;
                EXPECT_EQ(be.host_computed_experts(), host1) << "the CPU computed experts outside batch-1 decode";
            }
        }
    }
}

// gpu asked for (and auto) leave today's zero-copy decode: bit for bit the resident run.
TEST(OffloadComputeParity, GpuModeIsTheZeroCopyPath) {
    HR_REQUIRE_GPU();
    cuda::CudaBackend& be = *gpu();
    auto off = load(be, DType::q8, 3, OffloadCompute::gpu);
    ASSERT_TRUE(off.ok()) << off.error().message;
    ResetMode reset{be, layer0(*off)};
    auto res = load(be, DType::q8, 0, std::nullopt);
    ASSERT_TRUE(res.ok());
    EXPECT_FALSE(off->offload_compute->cpu);
    EXPECT_FALSE(be.offload_compute_cpu());
    const std::vector<int32_t> tokens = prompt(20);
    EXPECT_EQ(logits_of(be, *off, tokens, 1), logits_of(be, *res, tokens, 1));
    // auto: whichever the probe picked, the model's logits stay within the tolerance of the resident run.
    auto au = load(be, DType::q8, 3, OffloadCompute::automatic);
    ASSERT_TRUE(au.ok()) << au.error().message;
    ASSERT_TRUE(au->offload_compute.has_value());
    EXPECT_EQ(be.offload_compute_cpu(), au->offload_compute->cpu);
    EXPECT_LE(worst_row_error(logits_of(be, *au, tokens, 1), logits_of(be, *res, tokens, 1), au->cfg.vocab_size),
              offload_logits_tol(be, DType::q8, 1));
}

// Decode steps replayed from captured graphs (each MoE layer with host experts holds a host node on a
// forked branch) equal the same steps launched op by op, bit for bit, and replaying allocates nothing.
TEST(OffloadComputeParity, CpuModeInsideCapturedGraphs) {
    HR_REQUIRE_GPU();
    constexpr int kBlock = 16;
    constexpr int64_t kBlocks = 8;  // context 128, one sequence
    for (DType fmt : {DType::q8, DType::q4}) {
        Backend& be = *gpu();
        auto m = load(be, fmt, 3, OffloadCompute::cpu);
        ASSERT_TRUE(m.ok()) << m.error().message;
        ResetMode reset{*gpu(), layer0(*m)};
        auto cpu = load(cpu_oracle(), fmt, 3, std::nullopt);
        ASSERT_TRUE(cpu.ok());
        const StepLimits lim{.max_tokens = 16, .max_seqs = 1, .max_blocks_per_seq = kBlocks};
        struct Rig {
            Backend& be;
            void* act_base;
            void* kv_base;
            Activations act;
            KvCache kv;
            std::unique_ptr<ForwardRunner> runner;
            Rig(Backend& b, const LoadedModel& lm, const StepLimits& l)
                : be(b), act_base(b.allocate(activation_bytes(lm.cfg, l), "activations").value()),
                  kv_base(b.allocate(kv_cache_bytes(lm.cfg, kBlocks, kBlock, DType::f32), "kv").value()) {
                act = carve_activations(lm.cfg, l, act_base);
                kv = carve_kv_cache(lm.cfg, kBlocks, kBlock, DType::f32, kv_base);
                runner = std::make_unique<ForwardRunner>(be, lm.cfg, lm.weights, l, act, kv);
            }
            ~Rig() {
                be.release(act_base);
                be.release(kv_base);
            }
        };
        Rig direct(be, *m, lim), graphs(be, *m, lim), oracle(cpu_oracle(), *cpu, lim);
        auto recorded = graphs.runner->record_decode_graphs(1);
        ASSERT_TRUE(recorded.ok()) << recorded.error().message;
        ASSERT_EQ(*recorded, 1);
        const int64_t vocab = m->cfg.vocab_size;
        std::vector<float> ld(static_cast<size_t>(vocab)), lg(ld.size()), lr(ld.size());
        auto one = [&](int32_t tok, int32_t pos) {
            StepBatch b;
            b.token_ids = {tok};
            b.positions = {pos};
            b.token_seq = {0};
            b.slot_mapping = {pos};
            b.block_tables.resize(kBlocks);
            std::iota(b.block_tables.begin(), b.block_tables.end(), 0);
            b.logit_rows = {0};
            return b;
        };
        const uint64_t allocs = be.allocation_count();
        const uint64_t host0 = gpu()->host_computed_experts();
        int32_t tok = 1;
        for (int32_t pos = 0; pos < 24; ++pos) {
            const StepBatch b = one(tok, pos);
            ASSERT_TRUE(direct.runner->run(b, ld).ok());
            ASSERT_TRUE(graphs.runner->run(b, lg).ok());
            ASSERT_TRUE(oracle.runner->run(b, lr).ok());
            EXPECT_EQ(ld, lg) << dtype_name(fmt) << " step " << pos << ": graph replay differs from direct launch";
            EXPECT_LE(worst_row_error(lg, lr, vocab), offload_logits_tol(*gpu(), fmt, 1))
                << dtype_name(fmt) << " step " << pos << " vs CPU";
            tok = static_cast<int32_t>(3 + (pos * 7919) % 31000);  // teacher-forced: the same tokens in all three
        }
        EXPECT_GT(gpu()->host_computed_experts(), host0);
        EXPECT_EQ(be.allocation_count(), allocs) << "replaying graphs with host nodes allocated backend memory";
    }
}

}  // namespace
}  // namespace hr::test

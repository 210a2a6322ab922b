// --offload-experts on the CUDA backend: tiny-mixtral with some experts in pinned host memory equals the
// CPU backend (the model parity tolerances) and equals the CUDA run without offload bit for bit (the same
// kernels read the same bytes: zero-copy for decode and batched decode, staged copies for prefill), on
// every MoE path: decode (1 and 2 tokens: one GEMV per pair), batched decode (5 tokens: the grouped
// kernels), prefill (100 tokens: the per-expert GEMMs with the double-buffered staging of
// backend/cuda/expert_staging.h).
#include <cuda_runtime.h>

#include "loader/load.h"
#include "loader/session.h"
#include "memory/expert_hits.h"
#include "memory/expert_offload.h"
#include "parity_util.h"
#include "session_logits.h"
#include "quant/formats.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "tolerances.h"

namespace hr::test {
namespace {

Result<LoadedModel> load(Backend& be, DType fmt, int64_t offloaded) {
    LoadOptions o;
    o.weights = fmt;
    const std::string dir = model_fixture("tiny-mixtral");
    HR_ASSIGN(ModelConfig cfg, load_model_config(dir + "/config.json"));
    HR_ASSIGN(o.offload, place_experts(cfg, offloaded));
    if (offloaded > 0) HR_TRY(reserve_staging_for_largest_experts(be, cfg));
    return load_model(dir, be, o);
}

TEST(OffloadParity, TinyMixtralOffloadedEqualsCpuAndResident) {
    HR_REQUIRE_GPU();
    cuda::CudaBackend& be = *gpu();
    const std::vector<int32_t> tokens = prompt(100);
    // bf16 first: its experts are the largest, so the staging buffers reserved by the first load serve the
    // later ones (reserved once per backend).
    for (DType fmt : {DType::bf16, DType::q8, DType::q4}) {
        for (int64_t n : {int64_t{3}, int64_t{8}}) {  // 3: layer 0 expert 3, layer 1 experts 2-3; 8: all
            auto off = load(be, fmt, n);
            auto res = load(be, fmt, 0);
            auto cpu = load(cpu_oracle(), fmt, n);
            ASSERT_TRUE(off.ok() && res.ok() && cpu.ok())
                << (off.ok() ? "" : off.error().message) << (res.ok() ? "" : res.error().message)
                << (cpu.ok() ? "" : cpu.error().message);
            ASSERT_EQ(off->offloaded_experts, n);
            EXPECT_TRUE(off->weights.layers[0].ew1[3].host);
            EXPECT_EQ(off->weights.layers[0].ew1[0].host, n == 8);
            EXPECT_FALSE(res->weights.layers[1].ew2[3].host);
            const uint64_t streamed0 = be.host_stream_bytes();
            for (int64_t chunk : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{100}}) {
                const auto got = logits_of(be, *off, tokens, chunk);
                const auto same = logits_of(be, *res, tokens, chunk);
                const auto ref = logits_of(cpu_oracle(), *cpu, tokens, chunk);
                ASSERT_EQ(got.size(), same.size());
                EXPECT_EQ(got, same) << dtype_name(fmt) << " offload " << n << " chunk " << chunk
                                     << ": not bit-identical to the resident run";
                const double tol = offload_logits_tol(be, fmt, chunk);
                EXPECT_LE(worst_row_error(got, ref, off->cfg.vocab_size), tol)
                    << dtype_name(fmt) << " offload " << n << " chunk " << chunk;
            }
            // The 100-token prefill streamed the offloaded experts (every expert is selected in a chunk
            // of 100 tokens): at least one copy of each (data and scales, without the region's alignment).
            uint64_t once = 0;
            for (const LayerWeights& lw : off->weights.layers)
                for (const auto* v : {&lw.ew1, &lw.ew2, &lw.ew3})
                    for (const Weight& w : *v)
                        if (w.host)
                            once += static_cast<uint64_t>(quant::weight_data_bytes(w.dtype, w.rows, w.cols) +
                                                          (w.scales ? quant::weight_scale_bytes(w.dtype, w.rows, w.cols) : 0));
            EXPECT_GT(once, 0u);
            EXPECT_GE(be.host_stream_bytes() - streamed0, once) << dtype_name(fmt) << " offload " << n;
        }
    }
}

// Router statistics (headroom quantize --calibrate) place the coldest experts, which need not be the
// highest-numbered of a layer: layer 0 experts 0 and 2, layer 1 expert 1 here. The per-expert host flags
// drive zero-copy and staging, so this too must equal the resident run bit for bit and the CPU within the
// tolerances. (Written without a GPU.)
TEST(OffloadParity, TinyMixtralColdestExpertsFromRouterStatistics) {
    HR_REQUIRE_GPU();
    cuda::CudaBackend& be = *gpu();
    const std::string dir = model_fixture("tiny-mixtral");
    auto cfg = load_model_config(dir + "/config.json");
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    ExpertHits hits = ExpertHits::zeros(*cfg);  // 2 layers x 4 experts, k = 2: rows sum to 2 x 100
    hits.tokens = 100;
    hits.layers = {{10, 90, 20, 80}, {60, 5, 70, 65}};
    auto placement = place_experts(*cfg, 3, &hits);
    ASSERT_TRUE(placement.ok()) << placement.error().message;
    auto load_with = [&](Backend& b, DType fmt, const ExpertPlacement& p) {
        LoadOptions o;
        o.weights = fmt;
        o.offload = p;
        return load_model(dir, b, o);
    };
    const std::vector<int32_t> tokens = prompt(100);
    for (DType fmt : {DType::bf16, DType::q8, DType::q4}) {
        auto off = load_with(be, fmt, *placement);
        auto res = load_with(be, fmt, ExpertPlacement{});
        auto cpu = load_with(cpu_oracle(), fmt, *placement);
        ASSERT_TRUE(off.ok() && res.ok() && cpu.ok());
        EXPECT_TRUE(off->weights.layers[0].ew1[0].host);
        EXPECT_TRUE(off->weights.layers[0].ew2[2].host);
        EXPECT_TRUE(off->weights.layers[1].ew3[1].host);
        EXPECT_FALSE(off->weights.layers[0].ew1[3].host);
        for (int64_t chunk : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{100}}) {
            const auto got = logits_of(be, *off, tokens, chunk);
            const auto same = logits_of(be, *res, tokens, chunk);
            const auto ref = logits_of(cpu_oracle(), *cpu, tokens, chunk);
            EXPECT_EQ(got, same) << dtype_name(fmt) << " chunk " << chunk << ": not bit-identical to resident";
            const double tol = offload_logits_tol(be, fmt, chunk);
            EXPECT_LE(worst_row_error(got, ref, off->cfg.vocab_size), tol) << dtype_name(fmt) << " chunk " << chunk;
        }
    }
}

TEST(OffloadParity, HostRegionIsPinnedAndNotDeviceMemory) {
    HR_REQUIRE_GPU();
    cuda::CudaBackend& be = *gpu();
    be.synchronize();
    size_t free0 = 0, total = 0;
    ASSERT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
    const uint64_t host0 = be.host_allocated_bytes();
    auto m = load(be, DType::q8, 8);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(be.host_allocated_bytes() - host0, m->host_bytes);
    cudaPointerAttributes attr{};
    ASSERT_EQ(cudaPointerGetAttributes(&attr, m->weights.layers[0].ew1[0].data), cudaSuccess);
    EXPECT_EQ(attr.type, cudaMemoryTypeHost);
    EXPECT_EQ(attr.devicePointer, m->weights.layers[0].ew1[0].data);  // one address (UVA)
}

}  // namespace
}  // namespace hr::test

// Tensor parallel on 2 (or all, if a power of two up to 8 that divides the fixture) GPUs of one host over
// NCCL (docs/parallel.md), against one GPU and the CPU oracle: logits of a prefill and of decode steps,
// allocate-once on every rank, and the bounded NCCL timeout. Skipped with fewer than 2 GPUs or without NCCL.
// Written without a multi-GPU machine (2026-12-07): UNVERIFIED until this runs.
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>

#include "backend/cpu/local_communicator.h"
#include "backend/cuda/model_workspace.h"
#include "loader/load.h"
#include "parity_util.h"
#include "runtime/forward_runner.h"
#include "runtime/tensor_parallel_runner.h"
#include "support/fixtures.h"
#include "tolerances.h"

#ifdef HEADROOM_HAVE_NCCL
#include "backend/cuda/nccl_communicator.h"
#endif

namespace hr::test {
namespace {

#ifdef HEADROOM_HAVE_NCCL

constexpr int64_t kContextBlocks = 4;  // 64 tokens
const StepLimits kLimits{64, 1, kContextBlocks};

// A prompt of 20 tokens in one step, then 8 decode steps of one token.
std::vector<StepBatch> steps(int64_t vocab) {
    std::vector<StepBatch> out;
    const std::vector<int32_t> tables = {0, 1, 2, 3};
    StepBatch pre;
    for (int p = 0; p < 20; ++p) {
        pre.token_ids.push_back(static_cast<int32_t>((37 * p + 11) % vocab));
        pre.positions.push_back(p);
        pre.token_seq.push_back(0);
        pre.slot_mapping.push_back(p);
    }
    pre.block_tables = tables;
    pre.logit_rows = {19};
    out.push_back(pre);
    for (int i = 0; i < 8; ++i) {
        StepBatch d;
        d.token_ids = {static_cast<int32_t>((101 * i + 3) % vocab)};
        d.positions = {20 + i};
        d.token_seq = {0};
        d.slot_mapping = {20 + i};
        d.block_tables = tables;
        d.logit_rows = {0};
        out.push_back(d);
    }
    return out;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& ref) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        scale = std::max(scale, std::fabs(static_cast<double>(ref[i])));
        err = std::max(err, std::fabs(static_cast<double>(got[i]) - ref[i]));
    }
    return scale > 0 ? err / scale : err;
}

// Logits of every step through a ForwardRunner on `be` (which holds `m`).
std::vector<std::vector<float>> one_device(Backend& be, const LoadedModel& m, const std::vector<StepBatch>& batches) {
    be.bind_thread();
    void* a = be.allocate(activation_bytes(m.cfg, kLimits), "act").value();
    void* k = be.allocate(kv_cache_bytes(m.cfg, kContextBlocks, 16, DType::f32), "kv").value();
    Activations act = carve_activations(m.cfg, kLimits, a);
    KvCache kv = carve_kv_cache(m.cfg, kContextBlocks, 16, DType::f32, k);
    ForwardRunner r(be, m.cfg, m.weights, kLimits, act, kv);
    std::vector<std::vector<float>> out;
    for (const StepBatch& b : batches) {
        std::vector<float> l(static_cast<size_t>(m.cfg.vocab_size));
        Status s = r.run(b, l);
        EXPECT_TRUE(s.ok()) << s.error().message;
        out.push_back(std::move(l));
    }
    be.release(a);
    be.release(k);
    return out;
}

struct TpCase {
    const char* fixture;
    int ranks;
    std::optional<DType> weights;
};

class TensorParallelGpu : public ::testing::TestWithParam<TpCase> {};

TEST_P(TensorParallelGpu, LogitsMatchOneGpuAndCpu) {
    const TpCase c = GetParam();
    if (cuda::cuda_device_count() < c.ranks) GTEST_SKIP() << "needs " << c.ranks << " GPUs";
    LoadOptions o;
    o.weights = c.weights;
    auto host = load_model(model_fixture(c.fixture), cpu_oracle(), o);
    ASSERT_TRUE(host.ok()) << host.error().message;
    const std::vector<StepBatch> batches = steps(host->cfg.vocab_size);
    const auto cpu_ref = one_device(cpu_oracle(), *host, batches);

    // One GPU (the shared parity backend, device 0). Device 0 is made current again at the end: the
    // ranks below leave another GPU current, and later tests of this process use gpu() from this thread.
    HR_REQUIRE_GPU();
    struct Rebind {
        ~Rebind() { gpu()->bind_thread(); }
    } rebind;
    gpu()->bind_thread();
    auto on_gpu = load_model(model_fixture(c.fixture), *gpu(), o);
    ASSERT_TRUE(on_gpu.ok()) << on_gpu.error().message;
    const auto gpu_ref = one_device(*gpu(), *on_gpu, batches);

    // N GPUs: fresh backends on devices 0..N-1 (device 0 twice in this process: its own context stream).
    auto plan = plan_shards(host->cfg, c.ranks);
    ASSERT_TRUE(plan.ok()) << plan.error().message;
    const ModelConfig local = shard_config(host->cfg, *plan);
    std::vector<std::unique_ptr<cuda::CudaBackend>> owned;
    std::vector<Backend*> bes;
    std::vector<cuda::CudaBackend*> cbs;
    for (int r = 0; r < c.ranks; ++r) {
        auto b = cuda::CudaBackend::create(r, candidate_options());
        ASSERT_TRUE(b.ok()) << b.error().message;
        Status ws = (*b)->reserve_workspace(cuda::workspace_spec_for(local, kLimits.max_tokens));
        ASSERT_TRUE(ws.ok()) << ws.error().message;
        cbs.push_back(b->get());
        bes.push_back(b->get());
        owned.push_back(std::move(b).value());
    }
    auto comms = cuda::make_nccl_group(cbs);
    ASSERT_TRUE(comms.ok()) << comms.error().message;
    TensorParallelOptions to;
    to.limits = kLimits;
    to.n_kv_blocks = kContextBlocks;
    auto tp = TensorParallelRunner::create(bes, std::move(comms).value(), host->cfg, host->weights, to);
    ASSERT_TRUE(tp.ok()) << tp.error().message;
    std::vector<uint64_t> allocs;
    for (auto* b : bes) allocs.push_back(b->allocation_count());

    double worst_gpu = 0, worst_cpu = 0;
    for (size_t s = 0; s < batches.size(); ++s) {
        std::vector<float> got(static_cast<size_t>(host->cfg.vocab_size));
        Status st = (*tp)->run(batches[s], got);
        ASSERT_TRUE(st.ok()) << st.error().message;
        worst_gpu = std::max(worst_gpu, rel_err(got, gpu_ref[s]));
        worst_cpu = std::max(worst_cpu, rel_err(got, cpu_ref[s]));
    }
    for (size_t r = 0; r < bes.size(); ++r)
        EXPECT_EQ(bes[r]->allocation_count(), allocs[r]) << "rank " << r << " allocated during steps";
    std::printf("[tensor parallel gpu] %s x%d: max logit error vs 1 GPU %.3g, vs CPU %.3g (of max |logit|)\n",
                c.fixture, c.ranks, worst_gpu, worst_cpu);
    // The GPU's own kernels pick paths by shape (the rank's narrower matrices may take another GEMV or
    // the tensor cores), so the bound is the bf16 logits tolerance, as for one GPU against the CPU.
    EXPECT_LE(worst_gpu, kTolLogitsBf16RelMax);
    EXPECT_LE(worst_cpu, kTolLogitsBf16RelMax);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelGpu,
                         ::testing::Values(TpCase{"tiny-llama", 2, std::nullopt}, TpCase{"tiny-mixtral", 2, std::nullopt},
                                           TpCase{"tiny-mixtral", 2, DType::q8},
                                           TpCase{"tiny-qwen3-moe", 2, std::nullopt}));

// A rank whose peer never joins: synchronize() returns a timeout error within about the timeout.
TEST(TensorParallelGpuFailure, NcclTimeoutIsBounded) {
    if (cuda::cuda_device_count() < 2) GTEST_SKIP() << "needs 2 GPUs";
    std::vector<std::unique_ptr<cuda::CudaBackend>> owned;
    for (int r = 0; r < 2; ++r) {
        auto b = cuda::CudaBackend::create(r, {});
        ASSERT_TRUE(b.ok()) << b.error().message;
        owned.push_back(std::move(b).value());
    }
    auto comms = cuda::make_nccl_group({owned[0].get(), owned[1].get()}, std::chrono::milliseconds(2000));
    ASSERT_TRUE(comms.ok()) << comms.error().message;
    owned[0]->bind_thread();
    void* buf = owned[0]->allocate(1024 * sizeof(float), "buf").value();
    const auto t0 = std::chrono::steady_clock::now();
    (*comms)[0]->all_reduce_sum(Tensor::make(DType::f32, buf, {1024}));  // rank 1 never calls
    Status s = (*comms)[0]->synchronize();
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("timed out"), std::string::npos) << s.error().message;
    EXPECT_LT(waited, 10.0);
    if (gpu()) gpu()->bind_thread();
    std::printf("[tensor parallel gpu] NCCL timeout after %.2f s: %s\n", waited, s.error().message.c_str());
}

#else

TEST(TensorParallelGpu, NeedsNccl) { GTEST_SKIP() << "built without NCCL (HEADROOM_HAVE_NCCL)"; }

#endif

}  // namespace
}  // namespace hr::test

// TensorParallelRunner on CPU ranks (runtime/tensor_parallel_runner.h): the logits of a prefill and a
// decode step equal ForwardRunner's on one device within 1e-5 of the largest logit, each rank allocates
// exactly three regions, a bad batch is refused without killing the runner.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/local_communicator.h"
#include "loader/load.h"
#include "runtime/forward_runner.h"
#include "runtime/tensor_parallel_runner.h"
#include "support/fixtures.h"

namespace hr {
namespace {

StepBatch prefill(int64_t vocab) {
    StepBatch b;
    for (int p = 0; p < 6; ++p) {
        b.token_ids.push_back(static_cast<int32_t>((31 * p + 7) % vocab));
        b.positions.push_back(p);
        b.token_seq.push_back(0);
        b.slot_mapping.push_back(p);
    }
    b.block_tables = {0, 1};
    b.logit_rows = {5};
    return b;
}

StepBatch decode(int64_t vocab) {
    StepBatch b;
    b.token_ids = {static_cast<int32_t>(123 % vocab)};
    b.positions = {6};
    b.token_seq = {0};
    b.slot_mapping = {6};
    b.block_tables = {0, 1};
    b.logit_rows = {0};
    return b;
}

TEST(TensorParallelRunner, MatchesOneDeviceAndAllocatesOnce) {
    auto host = cpu::make_cpu_backend();
    auto m = load_model(test::model_fixture("tiny-mixtral"), *host, LoadOptions{});
    ASSERT_TRUE(m.ok()) << m.error().message;
    TensorParallelOptions o;
    o.limits = StepLimits{8, 1, 2};
    o.n_kv_blocks = 2;

    // One device.
    void* a = host->allocate(activation_bytes(m->cfg, o.limits), "act").value();
    void* k = host->allocate(kv_cache_bytes(m->cfg, 2, 16, DType::f32), "kv").value();
    Activations act = carve_activations(m->cfg, o.limits, a);
    KvCache kv = carve_kv_cache(m->cfg, 2, 16, DType::f32, k);
    ForwardRunner one(*host, m->cfg, m->weights, o.limits, act, kv);

    // Two ranks.
    std::vector<std::unique_ptr<Backend>> bes;
    bes.push_back(cpu::make_cpu_backend());
    bes.push_back(cpu::make_cpu_backend());
    auto comms = cpu::make_local_group({bes[0].get(), bes[1].get()});
    ASSERT_TRUE(comms.ok());
    auto tp = TensorParallelRunner::create({bes[0].get(), bes[1].get()}, std::move(comms).value(), m->cfg, m->weights, o);
    ASSERT_TRUE(tp.ok()) << tp.error().message;
    EXPECT_EQ((*tp)->rank_config().n_heads, 2);
    for (auto& be : bes) EXPECT_EQ(be->allocation_count(), 3u);  // weights, activations, KV cache

    const int64_t V = m->cfg.vocab_size;
    for (const StepBatch& b : {prefill(V), decode(V)}) {
        std::vector<float> want(static_cast<size_t>(V)), got(static_cast<size_t>(V));
        ASSERT_TRUE(one.run(b, want).ok());
        Status s = (*tp)->run(b, got);
        ASSERT_TRUE(s.ok()) << s.error().message;
        double scale = 0, err = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
            err = std::max(err, std::fabs(static_cast<double>(got[i]) - want[i]));
        }
        EXPECT_LE(err, 1e-5 * scale);
    }
    for (auto& be : bes) EXPECT_EQ(be->allocation_count(), 3u);  // nothing allocated by the steps

    // A bad batch: refused by every rank, the runner lives on.
    StepBatch bad = decode(V);
    bad.token_ids[0] = static_cast<int32_t>(V);
    std::vector<float> out(static_cast<size_t>(V));
    Status s = (*tp)->run(bad, out);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("vocabulary"), std::string::npos) << s.error().message;
    EXPECT_TRUE((*tp)->run(decode(V), out).ok());
    host->release(a);
    host->release(k);
}

TEST(TensorParallelRunner, RefusesMismatchedRanks) {
    auto host = cpu::make_cpu_backend();
    auto m = load_model(test::model_fixture("tiny-llama"), *host, LoadOptions{});
    ASSERT_TRUE(m.ok());
    auto be = cpu::make_cpu_backend();
    auto comms = cpu::make_local_group({be.get()});
    ASSERT_TRUE(comms.ok());
    TensorParallelOptions o;
    o.limits = StepLimits{8, 1, 2};
    o.n_kv_blocks = 2;
    auto tp = TensorParallelRunner::create({be.get(), be.get()}, std::move(comms).value(), m->cfg, m->weights, o);
    EXPECT_FALSE(tp.ok());
}

}  // namespace
}  // namespace hr

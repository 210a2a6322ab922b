// TensorParallelRunner on CPU ranks (runtime/tensor_parallel_runner.h): the logits of a prefill and a
// decode step equal ForwardRunner's on one device within 1e-5 of the largest logit, each rank allocates
// exactly three regions, a bad batch is refused without killing the runner.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/local_communicator.h"
#include "loader/load.h"
#include "loader/rank_load.h"
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

// The runner over weights each rank read from the checkpoint (loader/rank_load.h, what serve and generate
// use) gives the same logits, bit for bit, as over weights cut from the whole model; still three
// allocations per rank.
TEST(TensorParallelRunner, FromRanksLoadedFromTheCheckpoint) {
    const std::string dir = test::model_fixture("tiny-mixtral");
    auto host = cpu::make_cpu_backend();
    auto m = load_model(dir, *host, LoadOptions{.weights = DType::q8});
    ASSERT_TRUE(m.ok()) << m.error().message;
    TensorParallelOptions o;
    o.limits = StepLimits{8, 1, 2};
    o.n_kv_blocks = 2;
    std::vector<std::unique_ptr<Backend>> cut, read;
    std::vector<Backend*> cut_raw, read_raw;
    for (int r = 0; r < 2; ++r) {
        cut.push_back(cpu::make_cpu_backend());
        read.push_back(cpu::make_cpu_backend());
        cut_raw.push_back(cut.back().get());
        read_raw.push_back(read.back().get());
    }
    auto a = TensorParallelRunner::create(cut_raw, cpu::make_local_group(cut_raw).value(), m->cfg, m->weights, o);
    ASSERT_TRUE(a.ok()) << a.error().message;
    auto sharded = load_sharded(dir, read_raw, LoadOptions{.weights = DType::q8});
    ASSERT_TRUE(sharded.ok()) << sharded.error().message;
    auto b = TensorParallelRunner::create(read_raw, cpu::make_local_group(read_raw).value(), sharded->model.cfg,
                                          std::move(sharded->ranks), o);
    ASSERT_TRUE(b.ok()) << b.error().message;
    for (auto& be : read) EXPECT_EQ(be->allocation_count(), 3u);  // weights, activations, KV cache
    const int64_t V = m->cfg.vocab_size;
    for (const StepBatch& s : {prefill(V), decode(V)}) {
        std::vector<float> want(static_cast<size_t>(V)), got(static_cast<size_t>(V));
        ASSERT_TRUE((*a)->run(s, want).ok());
        ASSERT_TRUE((*b)->run(s, got).ok());
        EXPECT_EQ(got, want);
    }
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

namespace hr {
namespace {

// A communicator wrapper for rank failures: `skip` never joins a collective (the rank "never arrives"
// but its thread finishes), `block` waits inside the collective until released (a rank stuck).
class FaultyComm final : public Communicator {
public:
    enum class Mode { skip, block };
    FaultyComm(std::unique_ptr<Communicator> inner, Mode mode) : inner_(std::move(inner)), mode_(mode) {}
    int rank() const override { return inner_->rank(); }
    int size() const override { return inner_->size(); }
    void all_reduce_sum(Tensor buf) override {
        if (mode_ == Mode::skip) return;
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return released_; });
        inner_->all_reduce_sum(buf);
    }
    Status synchronize() override {
        if (mode_ == Mode::skip) return ok();
        return inner_->synchronize();
    }
    void release() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            released_ = true;
        }
        cv_.notify_all();
    }

private:
    std::unique_ptr<Communicator> inner_;
    Mode mode_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool released_ = false;
};

struct FaultyGroup {
    std::vector<std::unique_ptr<Backend>> bes;
    FaultyComm* faulty = nullptr;
    std::unique_ptr<TensorParallelRunner> tp;
};

FaultyGroup make_faulty(const LoadedModel& m, FaultyComm::Mode mode, std::chrono::milliseconds collective,
                        std::chrono::milliseconds step) {
    FaultyGroup g;
    g.bes.push_back(cpu::make_cpu_backend());
    g.bes.push_back(cpu::make_cpu_backend());
    auto comms = cpu::make_local_group({g.bes[0].get(), g.bes[1].get()}, collective);
    EXPECT_TRUE(comms.ok());
    auto c = std::move(comms).value();
    auto f = std::make_unique<FaultyComm>(std::move(c[1]), mode);
    g.faulty = f.get();
    c[1] = std::move(f);
    TensorParallelOptions o;
    o.limits = StepLimits{8, 1, 2};
    o.n_kv_blocks = 2;
    o.step_timeout = step;
    auto tp = TensorParallelRunner::create({g.bes[0].get(), g.bes[1].get()}, std::move(c), m.cfg, m.weights, o);
    EXPECT_TRUE(tp.ok()) << tp.error().message;
    if (tp.ok()) g.tp = std::move(tp).value();
    return g;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Item 4 of issue 18: a rank that never arrives at the all-reduce ends the step with a typed timeout
// error within the communicator's bound (no hang), and the runner refuses further steps.
TEST(TensorParallelRunnerFailure, RankThatNeverArrivesTimesOut) {
    auto host = cpu::make_cpu_backend();
    auto m = load_model(test::model_fixture("tiny-mixtral"), *host, LoadOptions{});
    ASSERT_TRUE(m.ok()) << m.error().message;
    FaultyGroup g = make_faulty(*m, FaultyComm::Mode::skip, std::chrono::milliseconds(200), std::chrono::seconds(30));
    ASSERT_TRUE(g.tp);
    const int64_t V = m->cfg.vocab_size;
    std::vector<float> out(static_cast<size_t>(V));
    const auto t0 = std::chrono::steady_clock::now();
    Status s = g.tp->run(decode(V), out);
    const double waited = seconds_since(t0);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("all_reduce timed out"), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("waited 200 ms"), std::string::npos) << s.error().message;
    EXPECT_LT(waited, 5.0);
    EXPECT_FALSE(g.tp->hung());
    Status again = g.tp->run(decode(V), out);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message.find("earlier step failed"), std::string::npos) << again.error().message;
}

// A rank stuck outside any bounded wait: run() gives up after the step timeout with an error naming the
// rank, and reports hung() (serve then ends the process). Released, the rank's thread comes back and the
// runner is destroyed normally.
TEST(TensorParallelRunnerFailure, StuckRankEndsTheStepAfterTheStepTimeout) {
    auto host = cpu::make_cpu_backend();
    auto m = load_model(test::model_fixture("tiny-mixtral"), *host, LoadOptions{});
    ASSERT_TRUE(m.ok()) << m.error().message;
    FaultyGroup g = make_faulty(*m, FaultyComm::Mode::block, std::chrono::milliseconds(100),
                                std::chrono::milliseconds(400));
    ASSERT_TRUE(g.tp);
    const int64_t V = m->cfg.vocab_size;
    std::vector<float> out(static_cast<size_t>(V));
    const StepBatch b = decode(V);
    const auto t0 = std::chrono::steady_clock::now();
    Status s = g.tp->run(b, out);
    const double waited = seconds_since(t0);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("rank 1 did not finish the step within 400 ms"), std::string::npos)
        << s.error().message;
    EXPECT_GE(waited, 0.35);
    EXPECT_LT(waited, 5.0);
    EXPECT_TRUE(g.tp->hung());
    g.faulty->release();  // the rank's collective now fails at once (the group broke), its thread returns
    g.tp.reset();
}

}  // namespace
}  // namespace hr

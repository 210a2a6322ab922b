// Tensor-parallel loading onto CUDA ranks (loader/rank_load.h): every rank's weights, downloaded, equal
// shard_weights(load_model(...)) cut on the CPU bit for bit, through the CUDA uploader (pinned staging,
// copy streams, the reader threads) and, with device_quantize (--quantize-on-gpu), the device int8
// quantizer for whole and row-cut tensors. Two ranks: on devices 0 and 1 when there are two GPUs, else both
// on device 0 (the loader does not care), so one GPU runs it. The loader's host memory (LoadMemory) is the
// pinned staging plus a bounded scratch. Written without a GPU (2026-12-07): UNVERIFIED until this runs.
#include <unistd.h>

#include <filesystem>

#include "loader/load.h"
#include "loader/load_pipeline.h"
#include "loader/rank_load.h"
#include "model/shard.h"
#include "model/shard_weights.h"
#include "parity_util.h"
#include "support/checkpoint_writers.h"
#include "support/fixtures.h"
#include "support/weight_list.h"

namespace hr::test {
namespace {

struct LoadCase {
    const char* model;  // a fixture, or "synthetic" (int4 halves on its groups)
    std::optional<DType> weights;
    bool device_quantize;
};

std::string model_path(const LoadCase& c) {
    if (std::string(c.model) != "synthetic") return model_fixture(c.model);
    static const std::string dir = [] {
        const std::string d = (std::filesystem::temp_directory_path() / fmt::format("hr_rank_load_parity_{}", ::getpid())).string();
        Status st = write_synthetic_model(d, true);
        EXPECT_TRUE(st.ok()) << st.error().message;
        return d;
    }();
    return dir;
}

class RankLoadGpu : public ::testing::TestWithParam<LoadCase> {};

TEST_P(RankLoadGpu, RanksEqualTheCutModel) {
    HR_REQUIRE_GPU();
    struct Rebind {
        ~Rebind() { gpu()->bind_thread(); }  // later tests use gpu() from this thread
    } rebind;
    const LoadCase c = GetParam();
    const std::string path = model_path(c);
    LoadOptions o;
    o.weights = c.weights;
    o.device_quantize = c.device_quantize;
    o.threads = 4;
    o.staging_bytes = 1 << 20;
    LoadMemory mem;
    o.memory = &mem;
    auto host = load_model(path, cpu_oracle(), LoadOptions{.weights = c.weights});
    ASSERT_TRUE(host.ok()) << host.error().message;
    auto plan = plan_shards(host->cfg, 2);
    ASSERT_TRUE(plan.ok()) << plan.error().message;

    const int devices = cuda::cuda_device_count();
    std::vector<std::unique_ptr<cuda::CudaBackend>> owned;
    std::vector<Backend*> bes;
    for (int r = 0; r < 2; ++r) {
        auto b = cuda::CudaBackend::create(devices >= 2 ? r : 0, {});
        ASSERT_TRUE(b.ok()) << b.error().message;
        bes.push_back(b->get());
        owned.push_back(std::move(b).value());
    }
    auto sharded = load_sharded(path, bes, o);
    ASSERT_TRUE(sharded.ok()) << sharded.error().message;
    for (int r = 0; r < 2; ++r) {
        cpu::CpuBackend cut_be;
        auto want = shard_weights(host->cfg, *plan, r, host->weights, cut_be);
        ASSERT_TRUE(want.ok()) << want.error().message;
        const RankWeights& got = sharded->ranks[static_cast<size_t>(r)];
        EXPECT_EQ(got.bytes, want->bytes);
        EXPECT_EQ(bes[static_cast<size_t>(r)]->allocation_count(), 1u);
        bes[static_cast<size_t>(r)]->bind_thread();
        const auto a = weight_list(want->weights), b = weight_list(got.weights);
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) {
            const Weight &x = a[i].second, &y = b[i].second;
            ASSERT_EQ(x.data == nullptr, y.data == nullptr) << a[i].first;
            if (!x.data) continue;
            ASSERT_TRUE(x.dtype == y.dtype && x.rows == y.rows && x.cols == y.cols) << a[i].first;
            for (int part = 0; part < 2; ++part) {
                const auto n = static_cast<size_t>(part == 0 ? quant::weight_data_bytes(x.dtype, x.rows, x.cols)
                                                             : quant::weight_scale_bytes(x.dtype, x.rows, x.cols));
                if (n == 0) continue;
                std::vector<uint8_t> dev(n);
                bes[static_cast<size_t>(r)]->download(dev.data(), part == 0 ? y.data : y.scales, n);
                bes[static_cast<size_t>(r)]->synchronize();
                ASSERT_EQ(std::memcmp(dev.data(), part == 0 ? x.data : x.scales, n), 0)
                    << "rank " << r << " " << a[i].first << (part == 0 ? " data" : " scales");
            }
        }
    }
    // Host memory besides the ranks' device weights: the pinned staging while a rank loads, plus at most a
    // few chunks of scratch per reader thread (whole rows of an int8 column cut, a slice's source values).
    const uint64_t staging = load_staging_bytes(o.threads) / kLoadSlotBytes * o.staging_bytes;
    EXPECT_GE(mem.peak(), staging);
    EXPECT_LE(mem.peak(), staging + static_cast<uint64_t>(o.threads) * 8 * o.staging_bytes);
    EXPECT_EQ(mem.current(), 0u);
    std::printf("[rank load gpu] %s %s%s on %d GPU(s): loader host memory peak %.1f MiB (staging %.1f MiB)\n",
                c.model, c.weights ? dtype_name(*c.weights).data() : "stored", c.device_quantize ? " device-q8" : "",
                devices >= 2 ? 2 : 1, static_cast<double>(mem.peak()) / (1 << 20), static_cast<double>(staging) / (1 << 20));
}

INSTANTIATE_TEST_SUITE_P(Cases, RankLoadGpu,
                         ::testing::Values(LoadCase{"tiny-mixtral", std::nullopt, false},
                                           LoadCase{"tiny-mixtral", DType::q8, false},
                                           LoadCase{"tiny-mixtral", DType::q8, true},
                                           LoadCase{"tiny-llama", std::nullopt, false},
                                           LoadCase{"tiny-qwen2", std::nullopt, false},
                                           LoadCase{"synthetic", DType::q4, false},
                                           LoadCase{"synthetic", DType::q8, true}),
                         [](const auto& i) {
                             std::string n = fmt::format("{}_{}{}", i.param.model,
                                                         i.param.weights ? dtype_name(*i.param.weights) : "stored",
                                                         i.param.device_quantize ? "_device_q8" : "");
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

}  // namespace
}  // namespace hr::test

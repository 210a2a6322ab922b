// Tensor-parallel loading straight from the checkpoint (loader/rank_load.h): for N = 2 (and 4 with the KV
// heads replicated) every rank's weights equal shard_weights(load_model(...)) bit for bit (dtype, shape,
// data and scales of every weight, and the region's size), for safetensors bf16 as stored, f32, int8 and
// int4 quantize-on-load, pre-quantized int8 and int4, and GGUF (BF16 and Q8_0, kept or converted to int8,
// int4, f32). The fixtures' dimensions do not split int4 groups or ggml blocks, so a synthetic model
// (tests/support/checkpoint_writers.h) with 128-column halves covers those. Also: one allocation per rank,
// the loader's host memory bounded by the staging and chunk scratch (never the model), and the errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "loader/load.h"
#include "loader/rank_load.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "model/shard.h"
#include "model/shard_weights.h"
#include "quant/formats.h"
#include "support/checkpoint_writers.h"
#include "support/fixtures.h"
#include "support/weight_list.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

// The same bytes in every weight (CPU backends: the weights are host memory).
void expect_same_weights(const ModelWeights& want, const ModelWeights& got, const std::string& what) {
    const auto a = test::weight_list(want), b = test::weight_list(got);
    ASSERT_EQ(a.size(), b.size()) << what;
    int checked = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const Weight &x = a[i].second, &y = b[i].second;
        ASSERT_EQ(x.data == nullptr, y.data == nullptr) << what << ": " << a[i].first;
        if (!x.data) continue;
        ASSERT_EQ(x.dtype, y.dtype) << what << ": " << a[i].first;
        ASSERT_EQ(x.rows, y.rows) << what << ": " << a[i].first;
        ASSERT_EQ(x.cols, y.cols) << what << ": " << a[i].first;
        const auto nd = static_cast<size_t>(quant::weight_data_bytes(x.dtype, x.rows, x.cols));
        const auto ns = static_cast<size_t>(quant::weight_scale_bytes(x.dtype, x.rows, x.cols));
        ASSERT_EQ(std::memcmp(x.data, y.data, nd), 0) << what << ": " << a[i].first << " data";
        ASSERT_EQ(x.scales == nullptr, y.scales == nullptr) << what << ": " << a[i].first;
        if (ns) {
            ASSERT_EQ(std::memcmp(x.scales, y.scales, ns), 0) << what << ": " << a[i].first << " scales";
        }
        ++checked;
    }
    EXPECT_GT(checked, 0);
}

struct Loaded {
    std::vector<std::unique_ptr<Backend>> backends;
    ShardedModel model;
};

Result<Loaded> load_ranks(const std::string& path, int n, const LoadOptions& opts) {
    Loaded l;
    std::vector<Backend*> raw;
    for (int r = 0; r < n; ++r) {
        l.backends.push_back(cpu::make_cpu_backend());
        raw.push_back(l.backends.back().get());
    }
    HR_ASSIGN(l.model, load_sharded(path, raw, opts));
    return l;
}

// load_sharded against shard_weights(load_model(...)) on every rank.
void expect_equal_to_cut_model(const std::string& path, int n, std::optional<DType> weights) {
    const std::string what = fmt::format("{} x{} {}", path, n, weights ? dtype_name(*weights) : "auto");
    auto host = cpu::make_cpu_backend();
    LoadOptions opts;
    opts.weights = weights;
    opts.staging_bytes = 64 << 10;  // several chunks per tensor, so that chunk edges are exercised too
    auto full = load_model(path, *host, opts);
    ASSERT_TRUE(full.ok()) << what << ": " << full.error().message;
    auto plan = plan_shards(full->cfg, n);
    ASSERT_TRUE(plan.ok()) << plan.error().message;
    auto got = load_ranks(path, n, opts);
    ASSERT_TRUE(got.ok()) << what << ": " << got.error().message;
    EXPECT_EQ(got->model.model.weight_format, full->weight_format) << what;
    EXPECT_EQ(got->model.model.checkpoint_dtype, full->checkpoint_dtype) << what;
    ASSERT_EQ(got->model.ranks.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
        auto be = cpu::make_cpu_backend();
        auto want = shard_weights(full->cfg, *plan, r, full->weights, *be);
        ASSERT_TRUE(want.ok()) << what << ": " << want.error().message;
        const RankWeights& w = got->model.ranks[static_cast<size_t>(r)];
        EXPECT_EQ(w.bytes, want->bytes) << what << " rank " << r;
        EXPECT_EQ(got->backends[static_cast<size_t>(r)]->allocation_count(), 1u) << what << " rank " << r;
        expect_same_weights(want->weights, w.weights, fmt::format("{} rank {}", what, r));
    }
}

std::string temp_dir(const std::string& tag) {
    return (fs::temp_directory_path() / fmt::format("hr_rank_load_{}_{}", ::getpid(), tag)).string();
}

// A synthetic model directory (moe: Mixtral, else Llama), written once per process.
const std::string& synthetic(bool moe) {
    static const std::string dirs[2] = {temp_dir("llama"), temp_dir("mixtral")};
    static bool written[2] = {false, false};
    const int k = moe ? 1 : 0;
    if (!written[k]) {
        Status st = test::write_synthetic_model(dirs[k], moe);
        EXPECT_TRUE(st.ok()) << st.error().message;
        written[k] = true;
    }
    return dirs[k];
}

// `src` written as headroom's pre-quantized format in `fmt` (what `headroom quantize` writes).
std::string prequantized(const std::string& src, DType fmt, const std::string& tag) {
    const std::string out = temp_dir(tag);
    fs::create_directories(out);
    fs::copy_file(src + "/config.json", out + "/config.json", fs::copy_options::overwrite_existing);
    auto cfg = load_model_config(src + "/config.json");
    auto store = io::TensorStore::open(src);
    EXPECT_TRUE(cfg.ok() && store.ok());
    auto ck = checkpoint_dtype(*store);
    const auto specs = expected_tensors(*cfg);
    std::vector<DType> storage;
    for (const auto& s : specs) storage.push_back(storage_dtype_for(s, fmt, *ck));
    auto stats = write_quantized_checkpoint(*store, specs, storage, fmt, out + "/model.safetensors");
    EXPECT_TRUE(stats.ok()) << stats.error().message;
    return out;
}

TEST(RankLoad, FixturesEqualTheCutModel) {
    for (const char* f : {"tiny-llama", "tiny-mixtral", "tiny-qwen2", "tiny-qwen3", "tiny-qwen3-moe"}) {
        for (std::optional<DType> w : {std::optional<DType>(), std::optional<DType>(DType::f32),
                                       std::optional<DType>(DType::q8)}) {
            expect_equal_to_cut_model(test::model_fixture(f), 2, w);
        }
    }
    // Four ranks over two KV heads: each rank holds its one (replicated) KV head.
    expect_equal_to_cut_model(test::model_fixture("tiny-mixtral"), 4, std::nullopt);
    expect_equal_to_cut_model(test::model_fixture("tiny-mixtral"), 4, DType::q8);
}

TEST(RankLoad, Int4AndInt8OnTheSyntheticModelEqualTheCutModel) {
    for (bool moe : {false, true}) {
        for (std::optional<DType> w : {std::optional<DType>(), std::optional<DType>(DType::q4),
                                       std::optional<DType>(DType::q8), std::optional<DType>(DType::f16)}) {
            expect_equal_to_cut_model(synthetic(moe), 2, w);
        }
    }
    expect_equal_to_cut_model(synthetic(true), 4, DType::q8);  // one q head of 64 rows / columns a rank
}

TEST(RankLoad, PrequantizedEqualsTheCutModel) {
    for (DType fmt : {DType::q8, DType::q4}) {
        const std::string dir = prequantized(synthetic(true), fmt, fmt == DType::q8 ? "pre8" : "pre4");
        expect_equal_to_cut_model(dir, 2, std::nullopt);
        fs::remove_all(dir);
    }
    const std::string dir = prequantized(test::model_fixture("tiny-mixtral"), DType::q8, "pre8_mixtral");
    expect_equal_to_cut_model(dir, 2, std::nullopt);
    expect_equal_to_cut_model(dir, 4, std::nullopt);
    fs::remove_all(dir);
}

TEST(RankLoad, GgufEqualsTheCutModel) {
    // BF16 with Q/K rows permuted (a rank's rows are gathered through the permutation) and Q8_0 matrices
    // (kept: their blocks cut; converted: dequantized rows, int8 from whole rows).
    for (bool q8_0 : {false, true}) {
        const std::string path = temp_dir(q8_0 ? "q8_0.gguf" : "bf16.gguf");
        test::GgufWriter w;
        Status st = w.write(synthetic(true), path, q8_0);
        ASSERT_TRUE(st.ok()) << st.error().message;
        for (std::optional<DType> f : {std::optional<DType>(), std::optional<DType>(DType::q8),
                                       std::optional<DType>(DType::q4), std::optional<DType>(DType::f32)}) {
            expect_equal_to_cut_model(path, 2, f);
        }
        fs::remove(path);
    }
    const std::string path = temp_dir("llama.gguf");  // 6 q heads of 8 rows: 3 per rank, permuted per head
    test::GgufWriter w;
    ASSERT_TRUE(w.write(test::model_fixture("tiny-llama"), path, false).ok());
    expect_equal_to_cut_model(path, 2, std::nullopt);
    expect_equal_to_cut_model(path, 2, DType::q8);
    fs::remove(path);
}

// Host memory: each rank's one region (its weights: a CPU backend's memory is host memory) and the
// loader's own buffers, counted by LoadOptions::memory. The loader never holds more than a few chunks per
// reader thread, whatever the model's size; the path it replaces held the whole model first.
TEST(RankLoad, HostMemoryIsTheRanksWeightsPlusBoundedScratch) {
    for (std::optional<DType> w : {std::optional<DType>(), std::optional<DType>(DType::q8), std::optional<DType>(DType::q4)}) {
        const std::string what = w ? std::string(dtype_name(*w)) : "bf16";
        auto host = cpu::make_cpu_backend();
        auto full = load_model(synthetic(true), *host, LoadOptions{.weights = w});
        ASSERT_TRUE(full.ok()) << full.error().message;
        // Replicated: embedding, head, norms, routers (whole on every rank).
        uint64_t replicated = 0;
        for (const TensorSpec& s : expected_tensors(full->cfg)) {
            if (s.role == TensorRole::embedding || s.role == TensorRole::output_head || s.role == TensorRole::norm ||
                s.role == TensorRole::router)
                replicated += stored_tensor_bytes(s, storage_dtype_for(s, full->weight_format, full->checkpoint_dtype)).total();
        }
        LoadMemory mem;
        LoadOptions o;
        o.weights = w;
        o.threads = 2;
        constexpr uint64_t kChunk = 16 << 10;
        o.staging_bytes = kChunk;
        o.memory = &mem;
        auto got = load_ranks(synthetic(true), 2, o);
        ASSERT_TRUE(got.ok()) << got.error().message;
        // Half of the split tensors, the replicated ones whole, and per tensor its 256-byte alignment and
        // (int8) the row scales of a column cut, which every rank keeps whole.
        const uint64_t slack = expected_tensors(full->cfg).size() * 512 + 4 * 256 * 2 * 5;  // 2 layers x (wo + 4 w2)
        for (const RankWeights& r : got->model.ranks) {
            EXPECT_LE(r.bytes, (full->weight_bytes - replicated) / 2 + replicated + slack) << what;
            EXPECT_LT(r.bytes, full->weight_bytes) << what;
        }
        // Per reader thread at most: one chunk of the rank's rows, or n_ranks whole rows of a column cut
        // (int8) or a slice's source values (int4 from bf16: ~4 x its bytes). 16 chunks in all bounds it.
        const uint64_t bound = static_cast<uint64_t>(o.threads) * 8 * kChunk;
        EXPECT_LE(mem.peak(), bound) << what;
        EXPECT_EQ(mem.current(), 0u) << what;
        std::printf("[rank load] %s: model %.2f MiB, rank %.2f MiB, loader scratch peak %.1f KiB (bound %.0f KiB)\n",
                    what.c_str(), static_cast<double>(full->weight_bytes) / (1 << 20),
                    static_cast<double>(got->model.ranks[0].bytes) / (1 << 20), static_cast<double>(mem.peak()) / 1024,
                    static_cast<double>(bound) / 1024);
    }
}

TEST(RankLoad, Errors) {
    // int4 groups cut by o_proj's 24-column halves: refused naming the tensor, nothing allocated.
    auto a = load_ranks(test::model_fixture("tiny-llama"), 2, LoadOptions{.weights = DType::q4});
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.error().message.find("o_proj"), std::string::npos) << a.error().message;
    // 4 heads over 3 ranks.
    auto b = load_ranks(test::model_fixture("tiny-mixtral"), 3, LoadOptions{});
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.error().message.find("num_attention_heads"), std::string::npos) << b.error().message;
    // --offload-experts with tensor parallel.
    LoadOptions o;
    o.offload.n_experts = 4;
    o.offload.n_host = 1;
    o.offload.host_per_layer = {1, 0};
    o.offload.host_mask = {1, 0, 0, 0, 0, 0, 0, 0};
    auto c = load_ranks(test::model_fixture("tiny-mixtral"), 2, o);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("offload"), std::string::npos) << c.error().message;
}

}  // namespace
}  // namespace hr

// A fixture model's plan equals what is then allocated: the loader's one weights allocation and a
// session's activations and KV cache, recorded through the Backend allocator interface, and nothing more
// during generation; and the planned bf16 weights equal the checkpoint's own tensor bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "loader/load.h"
#include "loader/session.h"
#include "memory/plan.h"
#include "model/tensor_names.h"

namespace hr {
namespace {

// Forwards everything to the CPU backend and records each allocation's size.
class RecordingBackend final : public Backend {
public:
    DeviceKind kind() const override { return cpu_.kind(); }
    std::string name() const override { return "recording " + cpu_.name(); }
    Result<void*> allocate(size_t bytes, std::string_view what) override {
        sizes.push_back(bytes);
        return cpu_.allocate(bytes, what);
    }
    void release(void* p) override { cpu_.release(p); }
    uint64_t allocation_count() const override { return cpu_.allocation_count(); }
    void upload(void* d, const void* s, size_t n) override { cpu_.upload(d, s, n); }
    void download(void* d, const void* s, size_t n) override { cpu_.download(d, s, n); }
    void synchronize() override { cpu_.synchronize(); }
    void copy_rows(void* d, size_t dp, const void* s, size_t sp, size_t w, size_t r) override {
        cpu_.copy_rows(d, dp, s, sp, w, r);
    }
    void embed(Tensor o, Tensor i, const Weight& t) override { cpu_.embed(o, i, t); }
    void rms_norm(Tensor o, Tensor i, const Weight& w, float e) override { cpu_.rms_norm(o, i, w, e); }
    void matmul(Tensor o, Tensor i, const Weight& w) override { cpu_.matmul(o, i, w); }
    void rope(Tensor q, Tensor k, Tensor p, float t) override { cpu_.rope(q, k, p, t); }
    void attention(const AttentionArgs& a) override { cpu_.attention(a); }
    void silu_mul(Tensor o, Tensor g, Tensor u) override { cpu_.silu_mul(o, g, u); }
    void add(Tensor x, Tensor y) override { cpu_.add(x, y); }
    void add_bias(Tensor x, const Weight& b) override { cpu_.add_bias(x, b); }
    void moe_route(Tensor i, Tensor w, Tensor l, bool r) override { cpu_.moe_route(i, w, l, r); }
    void moe_experts(const MoeArgs& a) override { cpu_.moe_experts(a); }
    void gather_rows(Tensor o, Tensor i, Tensor r) override { cpu_.gather_rows(o, i, r); }

    std::vector<uint64_t> sizes;

private:
    cpu::CpuBackend cpu_;
};

struct Case {
    const char* model;
    DType weights;
};

class PlanFixture : public ::testing::TestWithParam<Case> {};

TEST_P(PlanFixture, PlanEqualsWhatIsAllocated) {
    const Case c = GetParam();
    const std::string dir = std::string(HR_FIXTURES_DIR) + "/models/" + c.model;
    Result<ModelConfig> cfg = load_model_config(dir + "/config.json");
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;

    PlanRequest req;
    req.target = PlanTarget::cpu;
    req.budget_bytes = 1ull << 30;
    req.weight_format = c.weights;
    req.kv_dtype = DType::f32;
    req.context = 256;
    req.sequences = 1;
    req.prefill_chunk = 64;
    Result<MemoryPlan> plan = plan_memory(*cfg, req);
    ASSERT_TRUE(plan.ok()) << plan.error().message;
    ASSERT_TRUE(plan->fits);

    RecordingBackend be;
    LoadOptions lo;
    lo.weights = c.weights;
    Result<LoadedModel> m = load_model(dir, be, lo);
    ASSERT_TRUE(m.ok()) << m.error().message;
    SessionOptions so;
    so.context = req.context;
    so.chunk = req.prefill_chunk;
    so.kv_dtype = req.kv_dtype;
    so.block_size = req.block_size;
    Result<std::unique_ptr<Session>> s = Session::create(be, *m, so);
    ASSERT_TRUE(s.ok()) << s.error().message;

    // weights, activations, KV cache: one allocation each, of exactly the planned bytes.
    ASSERT_EQ(be.sizes.size(), 3u);
    EXPECT_EQ(be.sizes[0], plan->region_bytes("weights"));
    EXPECT_EQ(m->weight_bytes, plan->region_bytes("weights"));
    EXPECT_EQ(be.sizes[1], plan->region_bytes("activations"));
    EXPECT_EQ(be.sizes[2], plan->region_bytes("kv_cache"));
    EXPECT_EQ(be.allocation_count(), 3u);

    // Generation allocates nothing after start-up: a prefill of several chunks, then greedy decode steps.
    std::vector<int32_t> prompt(70);  // two chunks of 64
    for (size_t i = 0; i < prompt.size(); ++i)
        prompt[i] = static_cast<int32_t>(1 + static_cast<int64_t>(i * 7919) % (cfg->vocab_size - 1));
    std::vector<float> logits;
    ASSERT_TRUE((*s)->append(prompt, logits, nullptr).ok());
    for (int step = 0; step < 4; ++step) {
        int32_t next = 0;
        for (size_t i = 1; i < logits.size(); ++i) {
            if (logits[i] > logits[static_cast<size_t>(next)]) next = static_cast<int32_t>(i);
        }
        ASSERT_TRUE((*s)->append(std::span<const int32_t>(&next, 1), logits, nullptr).ok());
    }
    EXPECT_EQ((*s)->length(), 74);
    EXPECT_EQ(be.sizes.size(), 3u);
    EXPECT_EQ(be.allocation_count(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Models, PlanFixture,
                         ::testing::Values(Case{"tiny-mixtral", DType::bf16}, Case{"tiny-mixtral", DType::q8},
                                           Case{"tiny-mixtral", DType::q4}, Case{"tiny-llama", DType::bf16},
                                           Case{"tiny-qwen2", DType::q8}, Case{"tiny-qwen3", DType::bf16},
                                           Case{"tiny-qwen3-moe", DType::q4}, Case{"tiny-qwen3-moe-renorm", DType::bf16},
                                           Case{"tiny-llama", DType::q8}, Case{"tiny-llama", DType::q4}),
                         [](const auto& info) {
                             std::string n = std::string(info.param.model) + "_" +
                                             std::string(dtype_name(info.param.weights));
                             for (char& ch : n) ch = (ch == '-') ? '_' : ch;
                             return n;
                         });

// The checkpoint's safetensors header: name -> (bytes, shape), read here without headroom's parser.
struct FileTensor {
    uint64_t bytes;
    std::vector<int64_t> shape;
};
std::map<std::string, FileTensor> read_header(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    std::string text(n, '\0');
    f.read(text.data(), static_cast<std::streamsize>(n));
    std::map<std::string, FileTensor> out;
    const nlohmann::json header = nlohmann::json::parse(text);
    for (const auto& [name, v] : header.items()) {
        if (name == "__metadata__") continue;
        const auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
        out[name] = FileTensor{off[1] - off[0], v.at("shape").get<std::vector<int64_t>>()};
    }
    return out;
}

TEST(PlanFixtureFiles, Bf16WeightsEqualTheCheckpointTensors) {
    for (const char* model : {"tiny-mixtral", "tiny-llama"}) {
        const std::string dir = std::string(HR_FIXTURES_DIR) + "/models/" + model;
        Result<ModelConfig> cfg = load_model_config(dir + "/config.json");
        ASSERT_TRUE(cfg.ok()) << cfg.error().message;
        const std::map<std::string, FileTensor> file = read_header(dir + "/model.safetensors");
        const std::vector<TensorSpec> specs = expected_tensors(*cfg);
        ASSERT_EQ(specs.size(), file.size()) << model;
        uint64_t sum = 0;
        for (const TensorSpec& t : specs) {
            auto it = file.find(t.hf_name);
            ASSERT_NE(it, file.end()) << model << ": " << t.hf_name;
            EXPECT_EQ(it->second.shape, t.shape) << t.hf_name;
            sum += align_up(it->second.bytes);
        }
        EXPECT_EQ(plan_weights(*cfg, DType::bf16).total(), sum) << model;
    }
}

}  // namespace
}  // namespace hr

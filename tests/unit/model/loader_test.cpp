// Loading checks a checkpoint against its config: missing, unexpected, misshapen or non-finite tensors
// are errors naming the tensor; nothing is ever initialised at random.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "loader/load.h"
#include "support/fixtures.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

// Copies tiny-llama into a temp dir with its tensors edited by `edit` (name -> tensor list).
class LoaderTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("hr_loader_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        fs::copy_file(test::model_fixture("tiny-llama") + "/config.json", dir_ / "config.json",
                      fs::copy_options::overwrite_existing);
        auto f = io::SafetensorsFile::open(test::model_fixture("tiny-llama") + "/model.safetensors");
        ASSERT_TRUE(f.ok());
        src_ = *f;
        for (const auto& t : src_->tensors())
            tensors_.push_back(io::TensorToWrite{t.name, t.dtype, t.shape, t.data, t.nbytes});
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write_and_load_error() {
        Status st = io::write_safetensors((dir_ / "model.safetensors").string(), tensors_, {});
        EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
        cpu::CpuBackend be;
        auto m = load_model(dir_.string(), be, {});
        return m.ok() ? std::string("<loaded>") : m.error().message;
    }
    io::TensorToWrite* find(const std::string& name) {
        for (auto& t : tensors_)
            if (t.name == name) return &t;
        return nullptr;
    }

    fs::path dir_;
    std::shared_ptr<io::SafetensorsFile> src_;
    std::vector<io::TensorToWrite> tensors_;
};

TEST_F(LoaderTest, UnchangedCheckpointLoads) { EXPECT_EQ(write_and_load_error(), "<loaded>"); }

TEST_F(LoaderTest, MissingTensorIsAnError) {
    std::erase_if(tensors_, [](const auto& t) { return t.name == "model.layers.1.self_attn.k_proj.weight"; });
    const std::string e = write_and_load_error();
    EXPECT_NE(e.find("required tensor 'model.layers.1.self_attn.k_proj.weight' is missing"), std::string::npos) << e;
}

TEST_F(LoaderTest, UnexpectedTensorIsAnError) {
    io::TensorToWrite extra = tensors_.front();
    extra.name = "lm_head.weight";  // tiny-llama ties its embeddings: a head is unexpected
    tensors_.push_back(extra);
    const std::string e = write_and_load_error();
    EXPECT_NE(e.find("unexpected tensor 'lm_head.weight'"), std::string::npos) << e;
}

TEST_F(LoaderTest, WrongShapeIsAnError) {
    io::TensorToWrite* t = find("model.layers.0.mlp.up_proj.weight");
    ASSERT_NE(t, nullptr);
    t->shape = {t->shape[1], t->shape[0]};  // transposed: same bytes, wrong shape
    const std::string e = write_and_load_error();
    EXPECT_NE(e.find("tensor 'model.layers.0.mlp.up_proj.weight' has shape [48, 128], expected [128, 48]"),
              std::string::npos)
        << e;
}

TEST_F(LoaderTest, NonFiniteNormIsAnError) {
    io::TensorToWrite* t = find("model.norm.weight");
    ASSERT_NE(t, nullptr);
    std::vector<uint16_t> vals(static_cast<const uint16_t*>(t->data),
                               static_cast<const uint16_t*>(t->data) + t->nbytes / 2);
    vals[3] = f32_to_bf16(NAN);
    t->data = vals.data();
    const std::string e = write_and_load_error();
    EXPECT_NE(e.find("tensor 'model.norm.weight' holds a non-finite value at element 3"), std::string::npos) << e;
}

TEST_F(LoaderTest, UncomputableDtypeIsAnError) {
    io::TensorToWrite* t = find("model.norm.weight");
    ASSERT_NE(t, nullptr);
    t->dtype = "I16";  // same byte size as bf16
    const std::string e = write_and_load_error();
    EXPECT_NE(e.find("model.norm.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("I16"), std::string::npos) << e;
}

TEST(Loader, WeightsLiveInOneAllocationOfThePlannedSize) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(be.allocation_count(), 1u);
    EXPECT_EQ(m->weight_bytes, stored_weight_bytes(m->cfg, m->weight_format, m->checkpoint_dtype));
}

}  // namespace
}  // namespace hr

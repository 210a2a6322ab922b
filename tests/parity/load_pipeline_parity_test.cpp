// The load pipeline on the GPU (pinned staging buffers, two copy streams, several reader threads): the
// device's weights region is byte-identical to the reference (whole-tensor conversion on the host, which
// is what the loader uploaded before the pipeline), for every kind of checkpoint. Skips without a GPU.
#include <filesystem>

#include "parity_util.h"
#include "support/fixtures.h"
#include "support/load_reference.h"
#include "support/smollm2.h"

namespace hr::test {
namespace {

class LoadPipelineGpu : public ::testing::TestWithParam<LoadCase> {};

TEST_P(LoadPipelineGpu, DeviceRegionMatchesWholeTensorReference) {
    cuda::CudaBackend* be = gpu();
    if (!be) GTEST_SKIP() << "no CUDA device";
    const LoadCase& c = GetParam();
    std::string skip;
    const std::string path = load_case_path(c, skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    ASSERT_FALSE(path.empty());
    LoadOptions o;
    o.weights = c.weights;
    o.threads = c.threads;
    o.staging_bytes = c.staging;
    o.device_quantize = c.device_quantize;
    auto m = load_model(path, *be, o);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(region_mismatch(*be, *m, path), "");
}

// 4 KiB staging: rows in many chunks, and rows or tensors larger than a slot sent in pieces.
INSTANTIATE_TEST_SUITE_P(
    Cases, LoadPipelineGpu,
    ::testing::Values(LoadCase{"tiny-mixtral", std::nullopt, 0, 4}, LoadCase{"tiny-mixtral", std::nullopt, 4096, 3},
                      LoadCase{"tiny-mixtral", DType::q8, 0, 4}, LoadCase{"tiny-mixtral", DType::q8, 4096, 3},
                      LoadCase{"tiny-mixtral", DType::q8, 4096, 3, false},
                      LoadCase{"tiny-mixtral", DType::q4, 4096, 3}, LoadCase{"tiny-mixtral", DType::bf16, 4096, 2},
                      LoadCase{"tiny-qwen3-moe", DType::q8, 4096, 3},
                      LoadCase{"tiny-mixtral@int8", std::nullopt, 0, 4}, LoadCase{"tiny-mixtral@int8", std::nullopt, 4096, 3},
                      LoadCase{"smollm2", DType::q8, 4096, 3}, LoadCase{"smollm2", DType::q4, 0, 4}),
    load_case_name);

// A NaN in the last row of an expert: the device kernel flags it and the host reference names the tensor.
TEST(LoadPipelineGpu, DeviceQuantizeErrorNamesTheTensor) {
    cuda::CudaBackend* be = gpu();
    if (!be) GTEST_SKIP() << "no CUDA device";
    const std::string dir = nan_fixture(kNanTensor);
    ASSERT_FALSE(dir.empty());
    LoadOptions o;
    o.weights = DType::q8;
    o.threads = 3;
    o.staging_bytes = 4096;
    auto m = load_model(dir, *be, o);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find(kNanTensor), std::string::npos) << m.error().message;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace hr::test

// The load pipeline on the CPU backend (weights written in place): every tensor byte-identical to the
// reference (whole-tensor conversion, as before the pipeline), for native, converted, quantized-on-load,
// pre-quantized and GGUF checkpoints, with chunks smaller than a row or a tensor and several threads.
#include <gtest/gtest.h>

#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "support/fixtures.h"
#include "support/load_reference.h"
#include "support/smollm2.h"

namespace hr::test {
namespace {

class LoadPipelineCpu : public ::testing::TestWithParam<LoadCase> {};

TEST_P(LoadPipelineCpu, RegionMatchesWholeTensorReference) {
    const LoadCase& c = GetParam();
    std::string skip;
    const std::string path = load_case_path(c, skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    ASSERT_FALSE(path.empty());
    cpu::CpuBackend be;
    LoadOptions o;
    o.weights = c.weights;
    o.threads = c.threads;
    o.staging_bytes = c.staging;
    auto m = load_model(path, be, o);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(region_mismatch(be, *m, path), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LoadPipelineCpu,
    ::testing::Values(LoadCase{"tiny-mixtral", std::nullopt, 0, 1}, LoadCase{"tiny-mixtral", std::nullopt, 4096, 3},
                      LoadCase{"tiny-mixtral", DType::q8, 0, 3}, LoadCase{"tiny-mixtral", DType::q8, 4096, 3},
                      LoadCase{"tiny-mixtral", DType::q4, 4096, 3}, LoadCase{"tiny-mixtral", DType::f16, 4096, 2},
                      LoadCase{"tiny-qwen2", DType::q8, 4096, 3}, LoadCase{"tiny-mixtral@int8", std::nullopt, 4096, 3},
                      LoadCase{"smollm2", std::nullopt, 4096, 3}, LoadCase{"smollm2", DType::q8, 0, 3}),
    load_case_name);

// A value that cannot be quantized, in the last row of a matrix, fails the load from whichever chunk and
// thread meets it; the error names the tensor and the rows.
TEST(LoadPipelineCpu, QuantizeErrorInAChunkNamesTensorAndRows) {
    namespace fs = std::filesystem;
    const std::string dir = nan_fixture(kNanTensor);
    ASSERT_FALSE(dir.empty());
    const std::string name = kNanTensor;
    cpu::CpuBackend be;
    LoadOptions o;
    o.weights = DType::q8;
    o.threads = 3;
    o.staging_bytes = 4096;
    auto m = load_model(dir, be, o);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find(name), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("rows"), std::string::npos) << m.error().message;
    std::error_code ec;
    fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace hr::test

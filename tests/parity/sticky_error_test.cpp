// A sticky CUDA error (here an illegal address from a kernel) is fatal: the process reports the CUDA
// error with its location and aborts; it never carries on with a broken context.
#include "parity_util.h"

namespace hr::test {
namespace {

// Runs a GEMV over a weight pointer nothing was allocated at, then waits for it.
void fault_on_gpu() {
    auto be = cuda::CudaBackend::create(0);
    HR_CHECK(be.ok());
    std::vector<float> x(64, 1.0f);
    DevTensor in = place(**be, x, DType::f32, {1, 64});
    DevTensor out = poisoned(**be, {1, 64});
    const Weight bogus{DType::bf16, 64, 64, reinterpret_cast<const void*>(uintptr_t{0x10000}), nullptr};
    (*be)->matmul(out.t, in.t, bogus);
    (*be)->synchronize();
}

TEST(StickyErrorDeathTest, IllegalAddressEndsTheProcess) {
    HR_REQUIRE_GPU();
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child re-runs the binary: no CUDA across fork
    EXPECT_DEATH(fault_on_gpu(), "CUDA error cudaErrorIllegalAddress");
}

}  // namespace
}  // namespace hr::test

// Named tolerances of the quantization tests (reference round trip and CPU kernels), one reason each.
#pragma once

#include <cfloat>

namespace hr::quant::test {

// Round trip |w - deq(q(w))| <= scale/2 + this * absmax: w / scale and scale * q are each one f32
// rounding (<= FLT_EPSILON/2 relative to absmax); 4 epsilons leave room for both and nothing more.
constexpr float kRoundTripSlackRel = 4.0f * FLT_EPSILON;

// Kernel vs "dequantize, then multiply in double": |out - ref| <= this * sum_c |deq(w)_c * x_c|.
// Only f32 summation order differs (plus one f32 rounding of scale * q for int8); measured at most
// 2.3e-7 over the test shapes (up to 4160 columns); 2e-6 leaves ~10x for other compilers and orders.
constexpr double kKernelRel = 2e-6;

// Absolute floor for the kernel comparison, for rows whose products cancel to ~0.
constexpr double kKernelAbs = 1e-6;

}  // namespace hr::quant::test

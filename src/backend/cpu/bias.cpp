// CPU add_bias: a per-column bias added to every row (Qwen2's q, k and v projections).
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"

namespace hr::cpu {

void CpuBackend::add_bias(Tensor x, const Weight& bias) {
    const int64_t n = x.rows(), d = x.cols();
    HR_CHECK_MSG(bias.rows == 1 && bias.cols == d, "add_bias: bias must be [1, d] for x [n, d]");
    float* px = x.as<float>();
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t c = 0; c < d; ++c) px[t * d + c] += load_elem(bias.dtype, bias.data, c);
    }
}

}  // namespace hr::cpu

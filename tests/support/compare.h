// Named tolerances and comparison helpers shared by the tests. Each tolerance says why it is what it is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

namespace hr::test {

// CPU f32 forward vs transformers f32 (eager): both accumulate in f32 but in different orders;
// observed differences are ~1e-6 relative, the issue fixes the bound at 1e-4 of the row's max.
constexpr double kFixtureLogitsRelMax = 1e-4;

// Pooled hidden states (mean layer outputs) from the same CPU forward run in different chunkings: the
// attention sums in another order; f32 rounding, ~1e-6 relative observed, bounded at 1e-4 (abs + rel).
constexpr double kPooledStatesTol = 1e-4;
// Host-side double arithmetic on the same inputs (softmax, products, cosines): only rounding differs.
constexpr double kHostDoubleTol = 1e-9;
// The same model on the same backend with and without prefix-cache hits: the same tokens, but grouped
// into other steps (a hit starts its prefill at a block boundary), and the CPU f32 kernels' summation
// order depends on the step's shape: observed up to 6.2e-7 of the row's max on the fixtures; 1e-5
// leaves room for that.
constexpr double kPrefixHitLogitsRelMax = 1e-5;

struct Diff {
    double max_abs = 0.0;
    double max_ref = 0.0;
    double nmse = 0.0;
};

inline Diff compare(std::span<const float> got, std::span<const float> ref) {
    Diff d;
    double err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
        const double e = std::abs(static_cast<double>(got[i]) - ref[i]);
        d.max_abs = std::max(d.max_abs, std::isfinite(e) ? e : INFINITY);
        d.max_ref = std::max(d.max_ref, std::abs(static_cast<double>(ref[i])));
        err2 += e * e;
        ref2 += static_cast<double>(ref[i]) * ref[i];
    }
    d.nmse = ref2 > 0 ? err2 / ref2 : err2;
    return d;
}

}  // namespace hr::test

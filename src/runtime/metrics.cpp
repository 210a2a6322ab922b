// Histogram implementation (see metrics.h).
#include "runtime/metrics.h"

#include <algorithm>

namespace hr {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    std::lock_guard lock(mu_);
    ++counts_[i];
    ++count_;
    sum_ += v;
}

Histogram::Snapshot Histogram::snapshot() const {
    std::lock_guard lock(mu_);
    Snapshot s;
    s.bounds = bounds_;
    s.cumulative.resize(bounds_.size());
    uint64_t acc = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        acc += counts_[i];
        s.cumulative[i] = acc;
    }
    s.count = count_;
    s.sum = sum_;
    return s;
}

}  // namespace hr

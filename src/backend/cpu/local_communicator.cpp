// In-process all-reduce over host memory (see local_communicator.h). Two barriers per sum: after the
// first every rank's buffer is registered and final, each rank sums its slice of elements (all ranks'
// values, in rank order) into the shared scratch; after the second each copies the whole sum back.
// The next call's first barrier keeps the scratch from being overwritten while a rank still copies.
#include "backend/cpu/local_communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>

namespace hr::cpu {

struct LocalGroupState {
    int n = 1;
    std::chrono::milliseconds timeout{0};
    std::mutex mu;
    std::condition_variable cv;
    int arrived = 0;
    uint64_t generation = 0;
    bool broken = false;
    std::string broken_reason;
    std::vector<float*> bufs;
    std::vector<int64_t> counts;
    std::vector<float> scratch;

    // Waits for all n ranks; an error (and the group broken) when one does not come within the timeout.
    Status barrier(int rank) {
        std::unique_lock<std::mutex> lock(mu);
        if (broken) return errorf("all_reduce (rank {}): the group failed earlier: {}", rank, broken_reason);
        const uint64_t gen = generation;
        if (++arrived == n) {
            // The last to arrive grows the scratch while every other rank waits (none reads it now).
            const int64_t need = *std::max_element(counts.begin(), counts.end());
            if (static_cast<int64_t>(scratch.size()) < need) scratch.resize(static_cast<size_t>(need));
            arrived = 0;
            ++generation;
            cv.notify_all();
            return ok();
        }
        const bool done = cv.wait_for(lock, timeout, [&] { return generation != gen || broken; });
        if (broken) return errorf("all_reduce (rank {}): the group failed: {}", rank, broken_reason);
        if (!done) {
            broken = true;
            broken_reason = fmt::format("rank {} waited {} ms for {} of {} ranks (timeout)", rank, timeout.count(),
                                        n - arrived, n);
            cv.notify_all();
            return errorf("all_reduce timed out: {}", broken_reason);
        }
        return ok();
    }
    void fail(std::string why) {
        std::lock_guard<std::mutex> lock(mu);
        if (!broken) {
            broken = true;
            broken_reason = std::move(why);
        }
        cv.notify_all();
    }
};

namespace {

class LocalCommunicator final : public Communicator {
public:
    LocalCommunicator(std::shared_ptr<LocalGroupState> g, int rank, Backend* be) : g_(std::move(g)), rank_(rank), be_(be) {}
    int rank() const override { return rank_; }
    int size() const override { return g_->n; }

    void all_reduce_sum(Tensor buf) override {
        if (!status_.ok()) return;
        if (buf.dtype != DType::f32) {
            status_ = errorf("all_reduce: rank {} passed a {} buffer, expected f32", rank_, dtype_name(buf.dtype));
            g_->fail(status_.error().message);
            return;
        }
        be_->synchronize();
        const int64_t n = buf.numel();
        {
            std::lock_guard<std::mutex> lock(g_->mu);
            g_->bufs[static_cast<size_t>(rank_)] = buf.as<float>();
            g_->counts[static_cast<size_t>(rank_)] = n;
        }
        status_ = g_->barrier(rank_);
        if (!status_.ok()) return;
        for (int r = 0; r < g_->n; ++r) {
            if (g_->counts[static_cast<size_t>(r)] != n) {
                status_ = errorf("all_reduce: rank {} has {} elements, rank {} has {}", rank_, n, r,
                                 g_->counts[static_cast<size_t>(r)]);
                g_->fail(status_.error().message);
                return;
            }
        }
        // Each rank sums its slice of the elements into scratch (sized by the group, at most the largest n).
        const int64_t lo = n * rank_ / g_->n, hi = n * (rank_ + 1) / g_->n;
        float* sum = g_->scratch.data();
        for (int64_t i = lo; i < hi; ++i) {
            float s = g_->bufs[0][i];
            for (int r = 1; r < g_->n; ++r) s += g_->bufs[static_cast<size_t>(r)][i];
            sum[i] = s;
        }
        status_ = g_->barrier(rank_);
        if (!status_.ok()) return;
        std::memcpy(buf.data, sum, static_cast<size_t>(n) * sizeof(float));
    }

    Status synchronize() override { return status_; }

private:
    std::shared_ptr<LocalGroupState> g_;
    int rank_;
    Backend* be_;
    Status status_;
};

}  // namespace

Result<std::vector<std::unique_ptr<Communicator>>> make_local_group(std::vector<Backend*> backends,
                                                                    std::chrono::milliseconds timeout) {
    if (backends.empty()) return errorf("local communicator: expected at least one rank, found 0");
    auto g = std::make_shared<LocalGroupState>();
    g->n = static_cast<int>(backends.size());
    g->timeout = timeout;
    g->bufs.assign(backends.size(), nullptr);
    g->counts.assign(backends.size(), 0);
    std::vector<std::unique_ptr<Communicator>> out;
    for (size_t r = 0; r < backends.size(); ++r) {
        if (!backends[r] || backends[r]->kind() != DeviceKind::cpu)
            return errorf("local communicator: rank {} is not on a CPU backend (its memory must be host memory)", r);
        out.push_back(std::make_unique<LocalCommunicator>(g, static_cast<int>(r), backends[r]));
    }
    return out;
}

}  // namespace hr::cpu

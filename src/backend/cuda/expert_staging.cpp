// ExpertStager: double-buffered copies of offloaded experts for the prefill GEMMs (expert_staging.h).
#include "backend/cuda/expert_staging.h"

#include "backend/cuda/check.h"
#include "quant/formats.h"

namespace hr::cuda {

namespace {

uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }
uint64_t data_bytes(const Weight& w) { return static_cast<uint64_t>(quant::weight_data_bytes(w.dtype, w.rows, w.cols)); }
uint64_t scale_bytes(const Weight& w) {
    return w.scales ? static_cast<uint64_t>(quant::weight_scale_bytes(w.dtype, w.rows, w.cols)) : 0;
}

}  // namespace

Result<std::unique_ptr<ExpertStager>> ExpertStager::create(void* buf0, void* buf1, uint64_t bytes) {
    std::unique_ptr<ExpertStager> s(new ExpertStager(buf0, buf1, bytes));
    HR_CUDA_CHECK(cudaStreamCreateWithFlags(&s->copy_, cudaStreamNonBlocking));
    for (int b = 0; b < 2; ++b) {
        HR_CUDA_CHECK(cudaEventCreateWithFlags(&s->copied_[static_cast<size_t>(b)], cudaEventDisableTiming));
        HR_CUDA_CHECK(cudaEventCreateWithFlags(&s->free_[static_cast<size_t>(b)], cudaEventDisableTiming));
    }
    return s;
}

ExpertStager::~ExpertStager() {
    auto check = [](cudaError_t e, const char* stmt) {
        if (e != cudaSuccess && e != cudaErrorCudartUnloading) cuda_fatal(e, stmt, "~ExpertStager", __FILE__, __LINE__);
    };
    if (copy_) check(cudaStreamSynchronize(copy_), "cudaStreamSynchronize");
    for (cudaEvent_t e : copied_)
        if (e) check(cudaEventDestroy(e), "cudaEventDestroy");
    for (cudaEvent_t e : free_)
        if (e) check(cudaEventDestroy(e), "cudaEventDestroy");
    if (copy_) check(cudaStreamDestroy(copy_), "cudaStreamDestroy");
}

bool ExpertStager::wanted(std::span<const Weight> a, const int32_t* offsets, int64_t n_experts) {
    for (int64_t e = 0; e < n_experts && e < static_cast<int64_t>(a.size()); ++e)
        if (a[static_cast<size_t>(e)].host && offsets[e + 1] > offsets[e]) return true;
    return false;
}

void ExpertStager::begin(CUstream_st* compute, std::span<const Weight> a, std::span<const Weight> b,
                         const int32_t* offsets, int64_t n_experts) {
    HR_CHECK_MSG(next_ == items_.size(), "ExpertStager: a phase began before the last one was used up");
    compute_ = compute;
    items_.clear();  // keeps its capacity: no host allocation after the first layers
    next_ = 0;
    for (int64_t e = 0; e < n_experts && e < static_cast<int64_t>(a.size()); ++e) {
        const auto i = static_cast<size_t>(e);
        if (!a[i].host || offsets[e + 1] == offsets[e]) continue;
        items_.push_back({&a[i], b.empty() ? nullptr : &b[i]});
    }
    for (size_t i = 0; i < items_.size() && i < 2; ++i) issue(i);
}

void ExpertStager::issue(size_t item) {
    const size_t buf = item % 2;
    // The buffer is free once the compute stream has passed the ops of the item that used it last.
    HR_CUDA_CHECK(cudaStreamWaitEvent(copy_, free_[buf], 0));
    auto* dst = static_cast<uint8_t*>(bufs_[buf]);
    uint64_t off = 0;
    for (size_t m = 0; m < 2; ++m) {
        const Weight* w = items_[item][m];
        if (w == nullptr) continue;
        Weight v = *w;
        v.host = false;
        const uint64_t nd = data_bytes(*w), ns = scale_bytes(*w);
        HR_CHECK_MSG(off + align256(nd) + align256(ns) <= bytes_,
                     fmt::format("ExpertStager: an expert's matrices ({} bytes so far) exceed the staging buffer "
                                 "of {} bytes", off + align256(nd) + align256(ns), bytes_));
        HR_CUDA_CHECK(cudaMemcpyAsync(dst + off, w->data, nd, cudaMemcpyHostToDevice, copy_));
        v.data = dst + off;
        off += align256(nd);
        if (ns > 0) {
            HR_CUDA_CHECK(cudaMemcpyAsync(dst + off, w->scales, ns, cudaMemcpyHostToDevice, copy_));
            v.scales = dst + off;
            off += align256(ns);
        }
        streamed_.fetch_add(nd + ns, std::memory_order_relaxed);
        views_[buf][m] = v;
    }
    HR_CUDA_CHECK(cudaEventRecord(copied_[buf], copy_));
}

std::array<Weight, 2> ExpertStager::acquire() {
    HR_CHECK_MSG(next_ < items_.size(), "ExpertStager: acquire past the phase's items");
    const size_t buf = next_ % 2;
    HR_CUDA_CHECK(cudaStreamWaitEvent(compute_, copied_[buf], 0));
    return views_[buf];
}

void ExpertStager::release() {
    HR_CHECK_MSG(next_ < items_.size(), "ExpertStager: release without acquire");
    const size_t buf = next_ % 2;
    HR_CUDA_CHECK(cudaEventRecord(free_[buf], compute_));
    const size_t ahead = next_ + 2;
    ++next_;
    if (ahead < items_.size()) issue(ahead);
}

}  // namespace hr::cuda

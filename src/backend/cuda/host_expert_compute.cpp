// HostExpertCompute: the host's share of a batch-1 decode MoE layer (host_expert_compute.h).
#include "backend/cuda/host_expert_compute.h"

#include "backend/cpu/host_experts.h"
#include "backend/cuda/check.h"
#include "backend/cuda/kernels.cuh"

namespace hr::cuda {

namespace {
uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }
}  // namespace

Result<std::unique_ptr<HostExpertCompute>> HostExpertCompute::create(int64_t dim, int64_t ffn, int64_t k) {
    if (dim <= 0 || ffn <= 0 || k <= 0 || k > 64)
        return errorf("cuda: host expert compute for dim {}, ffn {}, k {} (expected positive sizes, k <= 64)", dim, ffn, k);
    std::unique_ptr<HostExpertCompute> h(new HostExpertCompute(dim, ffn, k));
    const uint64_t row = align256(static_cast<uint64_t>(dim) * sizeof(float));
    const uint64_t small = align256(static_cast<uint64_t>(k) * 4);
    h->pinned_bytes_ = 2 * row + 2 * small;
    HR_CUDA_CHECK(cudaHostAlloc(&h->pinned_, h->pinned_bytes_, cudaHostAllocMapped | cudaHostAllocPortable));
    void* dev = nullptr;
    HR_CUDA_CHECK(cudaHostGetDevicePointer(&dev, h->pinned_, 0));
    if (dev != h->pinned_)
        return errorf("cuda: mapped host memory has a device address unlike its host address (no unified "
                      "addressing); --offload-compute cpu needs it");
    auto* base = static_cast<uint8_t*>(h->pinned_);
    h->x_ = reinterpret_cast<float*>(base);
    h->out_ = reinterpret_cast<float*>(base + row);
    h->ids_ = reinterpret_cast<int32_t*>(base + 2 * row);
    h->w_ = reinterpret_cast<float*>(base + 2 * row + small);
    h->gate_.resize(static_cast<size_t>(ffn));
    h->up_.resize(static_cast<size_t>(ffn));
    h->y_.resize(static_cast<size_t>(dim));
    HR_CUDA_CHECK(cudaStreamCreateWithFlags(&h->side_, cudaStreamNonBlocking));
    HR_CUDA_CHECK(cudaEventCreateWithFlags(&h->forked_, cudaEventDisableTiming));
    HR_CUDA_CHECK(cudaEventCreateWithFlags(&h->done_, cudaEventDisableTiming));
    return h;
}

HostExpertCompute::~HostExpertCompute() {
    auto check = [](cudaError_t e, const char* stmt) {
        if (e != cudaSuccess && e != cudaErrorCudartUnloading) cuda_fatal(e, stmt, "~HostExpertCompute", __FILE__, __LINE__);
    };
    if (side_) check(cudaStreamSynchronize(side_), "cudaStreamSynchronize");
    if (forked_) check(cudaEventDestroy(forked_), "cudaEventDestroy");
    if (done_) check(cudaEventDestroy(done_), "cudaEventDestroy");
    if (side_) check(cudaStreamDestroy(side_), "cudaStreamDestroy");
    if (pinned_) check(cudaFreeHost(pinned_), "cudaFreeHost");
}

int HostExpertCompute::compute_now(float* out, const float* x, const int32_t* ids, const float* w, int64_t k,
                                   const ExpertWeights& experts, uint64_t mask) {
    return cpu::host_experts_token(out, x, ids, w, k, experts, mask, {gate_, up_, y_});
}

void CUDART_CB HostExpertCompute::run(void* job) {
    const Job& j = *static_cast<const Job*>(job);
    HostExpertCompute& h = *j.self;
    const int n = h.compute_now(h.out_, h.x_, h.ids_, h.w_, j.k, j.experts, j.mask);
    h.computed_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
}

void HostExpertCompute::fork(cudaStream_t s, const MoeArgs& a, uint64_t mask) {
    const int64_t dim = a.in.cols(), k = a.topk_ids.cols();
    HR_CHECK_MSG(a.in.rows() == 1 && fits(dim, a.experts.w1.empty() ? 0 : a.experts.w1[0].rows, k),
                 "host expert compute: one token of at most the sizes it was created for (checked by the caller)");
    // The job's fields are written once per layer (a later write could race with a host function of an
    // earlier step that the host has run ahead of). The job holds the layer's spans, so it reads whatever
    // expert table lives at that address now; another table there (another model) with another size,
    // mask or k replaces the job, after the work queued with the old one has finished.
    std::unique_ptr<Job>& job = jobs_[a.experts.w1.data()];
    const bool same = job && job->mask == mask && job->k == k && job->experts.w1.size() == a.experts.w1.size() &&
                      job->experts.w3.data() == a.experts.w3.data() && job->experts.w2.data() == a.experts.w2.data();
    if (!same) {
        cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        HR_CUDA_CHECK(cudaStreamIsCapturing(s, &cs));
        if (job && cs == cudaStreamCaptureStatusNone) HR_CUDA_CHECK(cudaStreamSynchronize(side_));
        job = std::make_unique<Job>(Job{this, a.experts, mask, k});
    }
    launch_moe_to_host(s, x_, ids_, w_, a.in.as<float>(), a.topk_ids.as<int32_t>(), a.topk_w.as<float>(), dim, k);
    HR_CUDA_CHECK(cudaEventRecord(forked_, s));
    HR_CUDA_CHECK(cudaStreamWaitEvent(side_, forked_, 0));
    HR_CUDA_CHECK(cudaLaunchHostFunc(side_, &HostExpertCompute::run, job.get()));
    HR_CUDA_CHECK(cudaEventRecord(done_, side_));
}

void HostExpertCompute::join(cudaStream_t s, float* out, int64_t dim) {
    HR_CUDA_CHECK(cudaStreamWaitEvent(s, done_, 0));
    launch_add(s, out, out_, dim);  // reads the host's row in place (mapped)
}

}  // namespace hr::cuda

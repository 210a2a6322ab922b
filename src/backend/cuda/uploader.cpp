// The CUDA backend's uploader (backend/uploader.h): n pinned host buffers, allocated once per load,
// and kUploadStreams copy streams. A slot is filled by a reader thread while copies of other slots run;
// before a buffer is handed out again, its previous copy is waited for (one event per buffer). Pinned
// memory is what lets cudaMemcpyAsync run at the link's rate without an extra driver-side bounce.
#include <condition_variable>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/quantize_q8.cuh"

namespace hr::cuda {

namespace {

// Two copy streams keep a copy queued behind the one in flight; an H100 has two H2D copy engines,
// more streams gain nothing.
constexpr int kUploadStreams = 2;

class PinnedUploader final : public Uploader {
public:
    PinnedUploader(int device, size_t slot_bytes) : device_(device), bytes_(slot_bytes) {}
    ~PinnedUploader() override {
        for (cudaStream_t s : streams_) HR_CUDA_CHECK(cudaStreamSynchronize(s));
        if (bad_host_) HR_CUDA_CHECK(cudaFreeHost(bad_host_));
        for (Buf& b : bufs_) {
            HR_CUDA_CHECK(cudaEventDestroy(b.done));
            HR_CUDA_CHECK(cudaFreeHost(b.host));
        }
        for (cudaStream_t s : streams_) HR_CUDA_CHECK(cudaStreamDestroy(s));
    }

    Status init(int n_slots) {
        HR_CUDA_CHECK(cudaSetDevice(device_));
        for (int i = 0; i < kUploadStreams; ++i) {
            cudaStream_t s = nullptr;
            HR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
            streams_.push_back(s);
        }
        for (int i = 0; i < n_slots; ++i) {
            Buf b;
            // Failing to pin is an environment limit (locked-memory ulimit, host memory), not a CUDA fault.
            // Mapped: the quantize kernel reads a slot directly, without a device copy of it.
            const cudaError_t e = cudaHostAlloc(reinterpret_cast<void**>(&b.host), bytes_, cudaHostAllocMapped);
            if (e != cudaSuccess) {
                (void)cudaGetLastError();
                return errorf("cuda: cannot pin {} staging buffers of {} MiB host memory for loading (buffer {} "
                              "failed: {})", n_slots, bytes_ >> 20, i, cudaGetErrorString(e));
            }
            HR_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&b.dev), b.host, 0));
            HR_CUDA_CHECK(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming));
            bufs_.push_back(b);
            free_.push_back(i);
        }
        HR_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&bad_host_), sizeof(int), cudaHostAllocMapped));
        *bad_host_ = 0;
        HR_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&bad_dev_), bad_host_, 0));
        return ok();
    }

    size_t slot_bytes() const override { return bytes_; }

    bool device_q8(int64_t cols) const override { return cols > 0 && cols <= kQuantizeQ8MaxCols; }

    void commit_q8(const UploadSlot& s, DType src, int64_t rows, int64_t cols, void* q, void* scales) override {
        Buf& b = bufs_[static_cast<size_t>(s.id)];
        HR_CUDA_CHECK(cudaSetDevice(device_));
        cudaStream_t st = streams_[static_cast<size_t>(s.id % kUploadStreams)];
        launch_quantize_q8_rows(st, b.dev + (s.p0 - b.host), src, rows, cols, static_cast<int8_t*>(q),
                                static_cast<float*>(scales), bad_dev_);
        HR_CUDA_CHECK(cudaEventRecord(b.done, st));
        std::lock_guard lock(mu_);
        free_.push_back(s.id);
        cv_.notify_one();
    }

    bool device_q8_failed() const override { return *reinterpret_cast<volatile int*>(bad_host_) != 0; }

    UploadSlot acquire(void* dst0, size_t n0, void* dst1, size_t n1) override {
        const size_t a0 = (n0 + 255) / 256 * 256;
        HR_CHECK_MSG(a0 + n1 <= bytes_, fmt::format("uploader: {} + {} bytes exceed a slot of {}", n0, n1, bytes_));
        int i;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return !free_.empty(); });
            i = free_.front();
            free_.erase(free_.begin());
        }
        Buf& b = bufs_[static_cast<size_t>(i)];
        HR_CUDA_CHECK(cudaEventSynchronize(b.done));  // the buffer's previous copy has landed
        b.dst0 = dst0;
        b.n0 = n0;
        b.dst1 = dst1;
        b.n1 = n1;
        return {b.host, n1 ? b.host + a0 : nullptr, i};
    }

    void commit(const UploadSlot& s) override {
        Buf& b = bufs_[static_cast<size_t>(s.id)];
        HR_CUDA_CHECK(cudaSetDevice(device_));  // reader threads start on device 0
        cudaStream_t st = streams_[static_cast<size_t>(s.id % kUploadStreams)];
        if (b.n0) HR_CUDA_CHECK(cudaMemcpyAsync(b.dst0, s.p0, b.n0, cudaMemcpyHostToDevice, st));
        if (b.n1) HR_CUDA_CHECK(cudaMemcpyAsync(b.dst1, s.p1, b.n1, cudaMemcpyHostToDevice, st));
        HR_CUDA_CHECK(cudaEventRecord(b.done, st));
        std::lock_guard lock(mu_);
        free_.push_back(s.id);  // FIFO: the buffer whose copy was queued first is handed out first
        cv_.notify_one();
    }

    void finish() override {
        for (cudaStream_t s : streams_) HR_CUDA_CHECK(cudaStreamSynchronize(s));
    }

private:
    struct Buf {
        uint8_t* host = nullptr;
        uint8_t* dev = nullptr;  // the same buffer as the device addresses it (mapped pinned memory)
        cudaEvent_t done = nullptr;
        void* dst0 = nullptr;
        size_t n0 = 0;
        void* dst1 = nullptr;
        size_t n1 = 0;
    };
    int device_;
    size_t bytes_;
    std::vector<cudaStream_t> streams_;
    std::vector<Buf> bufs_;
    std::vector<int> free_;
    int* bad_host_ = nullptr;  // set by the quantize kernel (mapped pinned memory)
    int* bad_dev_ = nullptr;
    std::mutex mu_;
    std::condition_variable cv_;
};

}  // namespace

Result<std::unique_ptr<Uploader>> CudaBackend::make_uploader(size_t slot_bytes, int n_slots) {
    check_not_capturing("make_uploader");
    if (slot_bytes == 0 || n_slots < 1)
        return errorf("cuda: uploader needs buffers, found {} of {} bytes", n_slots, slot_bytes);
    auto u = std::make_unique<PinnedUploader>(device_, slot_bytes);
    HR_TRY(u->init(n_slots));
    return std::unique_ptr<Uploader>(std::move(u));
}

}  // namespace hr::cuda

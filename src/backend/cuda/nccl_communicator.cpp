// NCCL all-reduce (see nccl_communicator.h). Errors are never fatal here: NCCL reports a failed or hung
// peer asynchronously, so synchronize() polls the stream and ncclCommGetAsyncError until a deadline and
// aborts the communicator (ncclCommAbort, which unblocks the kernels) on an error or a timeout; the
// Status then goes up to the engine, which ends the process with every client told (issue 18 item 4).
#include "backend/cuda/nccl_communicator.h"

#include <cuda_runtime.h>

#include <set>
#include <thread>

#include "backend/cuda/check.h"
#include "backend/cuda/nccl_api.h"

namespace hr::cuda {

namespace {

class NcclCommunicator final : public Communicator {
public:
    NcclCommunicator(const nccl::Api& api, nccl::Comm comm, int rank, int size, CudaBackend* be,
                     std::chrono::milliseconds timeout)
        : api_(api), comm_(comm), rank_(rank), size_(size), be_(be), timeout_(timeout) {}
    ~NcclCommunicator() override {
        if (!comm_) return;
        if (aborted_) return;
        api_.CommDestroy(comm_);
    }
    NcclCommunicator(const NcclCommunicator&) = delete;
    NcclCommunicator& operator=(const NcclCommunicator&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void all_reduce_sum(Tensor buf) override {
        if (!status_.ok()) return;
        if (buf.dtype != DType::f32) {
            status_ = errorf("all_reduce: rank {} passed a {} buffer, expected f32", rank_, dtype_name(buf.dtype));
            return;
        }
        HR_CUDA_CHECK(cudaSetDevice(be_->device()));
        const nccl::Code r = api_.AllReduce(buf.data, buf.data, static_cast<size_t>(buf.numel()), nccl::kFloat32,
                                            nccl::kSum, comm_, reinterpret_cast<cudaStream_t>(be_->stream()));
        if (r != nccl::kSuccess) fail(r, "ncclAllReduce");
    }

    Status synchronize() override {
        if (!status_.ok()) return status_;
        HR_CUDA_CHECK(cudaSetDevice(be_->device()));
        const auto deadline = std::chrono::steady_clock::now() + timeout_;
        auto* stream = reinterpret_cast<cudaStream_t>(be_->stream());
        for (;;) {
            const cudaError_t q = cudaStreamQuery(stream);
            if (q == cudaSuccess) return status_;
            if (q != cudaErrorNotReady) HR_CUDA_CHECK(q);  // a CUDA fault: fatal as everywhere (check.h)
            nccl::Code async = nccl::kSuccess;
            const nccl::Code g = api_.CommGetAsyncError(comm_, &async);
            if (g != nccl::kSuccess) {
                fail(g, "ncclCommGetAsyncError");
                return status_;
            }
            if (async != nccl::kSuccess && async != nccl::kInProgress) {
                fail(async, "all_reduce (asynchronous)");
                return status_;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                abort();
                status_ = errorf("all_reduce timed out: rank {} (GPU {}) waited {} ms for its peers; the NCCL "
                                 "communicator was aborted",
                                 rank_, be_->device(), timeout_.count());
                return status_;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

private:
    void fail(nccl::Code r, const char* what) {
        abort();
        status_ = errorf("{} failed on rank {} (GPU {}): {} ({})", what, rank_, be_->device(), api_.GetErrorString(r),
                         static_cast<int>(r));
    }
    void abort() {
        if (aborted_ || !comm_) return;
        api_.CommAbort(comm_);  // ends this rank's pending NCCL kernels; the comm is unusable afterwards
        aborted_ = true;
    }

    const nccl::Api& api_;
    nccl::Comm comm_;
    int rank_;
    int size_;
    CudaBackend* be_;
    std::chrono::milliseconds timeout_;
    Status status_;
    bool aborted_ = false;
};

}  // namespace

Result<std::vector<std::unique_ptr<Communicator>>> make_nccl_group(std::vector<CudaBackend*> backends,
                                                                   std::chrono::milliseconds timeout) {
    if (backends.empty()) return errorf("NCCL communicator: expected at least one GPU, found 0");
    std::vector<int> devices;
    std::set<int> seen;
    for (size_t r = 0; r < backends.size(); ++r) {
        if (!backends[r]) return errorf("NCCL communicator: rank {} has no backend", r);
        const int d = backends[r]->device();
        if (!seen.insert(d).second) return errorf("NCCL communicator: GPU {} appears twice (ranks need distinct GPUs)", d);
        devices.push_back(d);
    }
    HR_ASSIGN(const nccl::Api* api, nccl::api());  // libnccl.so.2 opened here, at the first group
    const int n = static_cast<int>(backends.size());
    std::vector<nccl::Comm> comms(backends.size(), nullptr);
    const nccl::Code r = api->CommInitAll(comms.data(), n, devices.data());
    if (r != nccl::kSuccess)
        return errorf("NCCL communicator: ncclCommInitAll over {} GPUs failed: {} ({})", n, api->GetErrorString(r),
                      static_cast<int>(r));
    std::vector<std::unique_ptr<Communicator>> out;
    for (int i = 0; i < n; ++i)
        out.push_back(std::make_unique<NcclCommunicator>(*api, comms[static_cast<size_t>(i)], i, n,
                                                         backends[static_cast<size_t>(i)], timeout));
    return out;
}

}  // namespace hr::cuda

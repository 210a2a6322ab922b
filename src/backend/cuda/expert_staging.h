// Streaming offloaded experts (Weight::host, --offload-experts) into two device staging buffers during
// prefill, on a copy stream of its own, so that the copy of the next offloaded expert overlaps the GEMMs
// of the current one (double buffering). Decode does not use it: its GEMVs read the mapped host memory
// in place (zero-copy), which is graph-safe and reads only what the step needs.
//
// One phase is one pass over a layer's experts in expert order (the gate/up pass, then the down pass of
// CudaBackend::moe_experts' prefill path). begin() lists the phase's items (the offloaded experts with
// tokens, in the order the compute loop reaches them) and starts copying the first two; acquire() makes
// the compute stream wait for the current item's copy and returns its device views; release() marks its
// buffer free once the compute stream has passed the GEMMs that read it (an event) and starts copying the
// item two ahead into that buffer. Ordering: copy -> compute through copied_[b]; compute -> reuse of the
// buffer through free_[b], also across phases and layers.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hr::cuda {

class ExpertStager {
public:
    // buf0 and buf1: device memory of `bytes` each (from CudaBackend::allocate, counted in the plan's
    // workspace.expert_staging). Creates the copy stream and the events.
    static Result<std::unique_ptr<ExpertStager>> create(void* buf0, void* buf1, uint64_t bytes);
    ~ExpertStager();
    ExpertStager(const ExpertStager&) = delete;
    ExpertStager& operator=(const ExpertStager&) = delete;

    uint64_t buffer_bytes() const { return bytes_; }
    // Staging buffer b (0 or 1), device memory of buffer_bytes(): also the start-up probe's scratch
    // (offload_probe.cpp), used before any prefill.
    void* buffer(int b) const { return bufs_[static_cast<size_t>(b & 1)]; }
    // True when the phase has an offloaded expert with tokens. counts [E + 1]: the host copy of the
    // per-expert pair offsets (expert e has counts[e + 1] - counts[e] pairs).
    static bool wanted(std::span<const Weight> a, const int32_t* offsets, int64_t n_experts);

    // A phase over matrices a (and b, empty or the same length) of the layer's experts: item = expert e
    // with a[e].host and tokens, its a[e] (and b[e]) copied into one buffer.
    void begin(CUstream_st* compute, std::span<const Weight> a, std::span<const Weight> b, const int32_t* offsets,
               int64_t n_experts);
    // The next item of the phase (in expert order): the compute stream waits for its copy. Returns the
    // device views of a[e] and b[e] (index 0 and 1).
    std::array<Weight, 2> acquire();
    // The compute stream has enqueued every op that reads the current item.
    void release();

    // Bytes copied over the host link so far (any thread: /metrics).
    uint64_t streamed_bytes() const { return streamed_.load(std::memory_order_relaxed); }

private:
    ExpertStager(void* buf0, void* buf1, uint64_t bytes) : bufs_{buf0, buf1}, bytes_(bytes) {}
    void issue(size_t item);  // copy item into buffer item % 2 on the copy stream

    std::array<void*, 2> bufs_;
    uint64_t bytes_ = 0;
    cudaStream_t copy_ = nullptr;
    cudaStream_t compute_ = nullptr;
    std::array<cudaEvent_t, 2> copied_{};
    std::array<cudaEvent_t, 2> free_{};
    std::array<std::array<Weight, 2>, 2> views_{};
    std::vector<std::array<const Weight*, 2>> items_;  // the phase's items (b may be null)
    size_t next_ = 0;                                  // the item acquire() returns next
    std::atomic<uint64_t> streamed_{0};
};

}  // namespace hr::cuda

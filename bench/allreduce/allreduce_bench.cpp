// NCCL all-reduce cost of tensor parallel (docs/parallel.md): the forward sums [T, dim] f32 twice per
// layer (after o_proj and after the FFN), so a step pays 2 x n_layers all-reduces of T x dim floats.
// For each T this times all_reduce_sum + synchronize on N GPUs (one thread per GPU, as the
// TensorParallelRunner drives them) and prints the per-call time and the per-step total for Mixtral-8x7B
// (dim 4096, 32 layers). Usage: allreduce_bench [N=2] [iters=200]. UNVERIFIED: written without GPUs.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl_communicator.h"

using namespace hr;

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 2;
    const int iters = argc > 2 ? std::atoi(argv[2]) : 200;
    constexpr int64_t kDim = 4096, kLayers = 32;
    const std::vector<int64_t> tokens = {1, 8, 32, 128, 512, 2048};
    if (n < 2 || iters < 1 || cuda::cuda_device_count() < n) {
        std::fprintf(stderr, "allreduce_bench: need N >= 2 GPUs (found %d) and iters >= 1\n", cuda::cuda_device_count());
        return 2;
    }
    std::vector<std::unique_ptr<cuda::CudaBackend>> bes;
    std::vector<cuda::CudaBackend*> raw;
    for (int r = 0; r < n; ++r) {
        auto b = cuda::CudaBackend::create(r);
        if (!b.ok()) {
            std::fprintf(stderr, "allreduce_bench: %s\n", b.error().message.c_str());
            return 1;
        }
        raw.push_back(b->get());
        bes.push_back(std::move(b).value());
    }
    auto comms = cuda::make_nccl_group(raw);
    if (!comms.ok()) {
        std::fprintf(stderr, "allreduce_bench: %s\n", comms.error().message.c_str());
        return 1;
    }
    const int64_t max_elems = tokens.back() * kDim;
    std::vector<void*> bufs;
    for (auto& b : bes) {
        b->bind_thread();
        bufs.push_back(b->allocate(static_cast<size_t>(max_elems) * sizeof(float), "buf").value());
    }

    std::printf("NCCL all-reduce (sum, f32) over %d GPUs, %d iterations; per step: 2 x %lld layers (Mixtral-8x7B)\n", n,
                iters, static_cast<long long>(kLayers));
    std::printf("%8s %12s %14s %14s %12s\n", "tokens", "bytes", "us/all-reduce", "ms/step", "GB/s (bus)");
    for (int64_t T : tokens) {
        const int64_t elems = T * kDim;
        std::vector<double> seconds(static_cast<size_t>(n));
        std::vector<std::thread> th;
        bool failed = false;
        for (int r = 0; r < n; ++r) {
            th.emplace_back([&, r] {
                bes[static_cast<size_t>(r)]->bind_thread();
                Communicator& c = *(*comms)[static_cast<size_t>(r)];
                const Tensor t = Tensor::make(DType::f32, bufs[static_cast<size_t>(r)], {elems});
                for (int i = 0; i < 10; ++i) c.all_reduce_sum(t);  // warm-up
                if (!c.synchronize().ok()) failed = true;
                const auto t0 = std::chrono::steady_clock::now();
                for (int i = 0; i < iters; ++i) c.all_reduce_sum(t);
                Status s = c.synchronize();
                if (!s.ok()) {
                    std::fprintf(stderr, "rank %d: %s\n", r, s.error().message.c_str());
                    failed = true;
                }
                seconds[static_cast<size_t>(r)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            });
        }
        for (auto& t : th) t.join();
        if (failed) return 1;
        const double per = *std::max_element(seconds.begin(), seconds.end()) / iters;
        const double bytes = static_cast<double>(elems) * sizeof(float);
        // NCCL's bus bandwidth for all-reduce: bytes x 2 (n - 1) / n per call.
        const double bus = bytes * 2.0 * (n - 1) / n / per / 1e9;
        std::printf("%8lld %12.0f %14.1f %14.3f %12.1f\n", static_cast<long long>(T), bytes, per * 1e6,
                    per * 2 * kLayers * 1e3, bus);
    }
    for (size_t r = 0; r < bes.size(); ++r) bes[r]->release(bufs[r]);  // release() makes its device current
    return 0;
}

// --offload-compute on the CUDA backend: the start-up probe that times one host expert both ways, and the
// switch between the device reading host experts in place and the host computing them
// (host_expert_compute.h). memory/offload_compute.h turns the probe into the choice.
#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/format.h>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/expert_staging.h"
#include "backend/cuda/host_expert_compute.h"
#include "quant/formats.h"

namespace hr::cuda {

namespace {

constexpr int kProbeRuns = 5;  // timed runs of each way, after one warm-up; the median is taken
constexpr int64_t kMaxTopK = 16;  // launch_moe_route's limit: the host buffers hold this many per token

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

uint64_t bytes_of(const Weight& w) {
    return static_cast<uint64_t>(quant::weight_data_bytes(w.dtype, w.rows, w.cols)) +
           (w.scales ? static_cast<uint64_t>(quant::weight_scale_bytes(w.dtype, w.rows, w.cols)) : 0);
}

void CUDART_CB noop(void*) {}

// Median ms of `enqueue` on s between two timing events.
template <class F>
double time_on_stream(cudaStream_t s, F enqueue) {
    cudaEvent_t e0, e1;
    HR_CUDA_CHECK(cudaEventCreate(&e0));
    HR_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<double> ms;
    for (int r = 0; r <= kProbeRuns; ++r) {
        HR_CUDA_CHECK(cudaEventRecord(e0, s));
        enqueue();
        HR_CUDA_CHECK(cudaEventRecord(e1, s));
        HR_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0.0f;
        HR_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r > 0) ms.push_back(t);  // the first warms up
    }
    HR_CUDA_CHECK(cudaEventDestroy(e0));
    HR_CUDA_CHECK(cudaEventDestroy(e1));
    return median(ms);
}

Status check_layer(const ExpertWeights& layer, const char* what) {
    if (layer.w1.empty() || layer.w1.size() != layer.w3.size() || layer.w1.size() != layer.w2.size())
        return errorf("cuda: {}: a MoE layer's expert table is empty or uneven", what);
    return ok();
}

}  // namespace

Status CudaBackend::set_offload_compute(bool cpu, const ExpertWeights& layer) {
    check_not_capturing("set_offload_compute");
    if (cpu && !host_compute_) {
        HR_TRY(check_layer(layer, "--offload-compute cpu"));
        HR_ASSIGN(host_compute_, HostExpertCompute::create(layer.w1[0].cols, layer.w1[0].rows, kMaxTopK));
    }
    offload_cpu_ = cpu;
    return ok();
}

uint64_t CudaBackend::host_computed_experts() const { return host_compute_ ? host_compute_->experts_computed() : 0; }

Result<OffloadProbe> CudaBackend::probe_offload_compute(const ExpertWeights& layer, int64_t expert) {
    check_not_capturing("probe_offload_compute");
    HR_TRY(check_layer(layer, "--offload-compute probe"));
    if (expert < 0 || expert >= static_cast<int64_t>(layer.w1.size()) || !layer.w1[static_cast<size_t>(expert)].host)
        return errorf("cuda: --offload-compute probe: expert {} of the layer is not in host memory", expert);
    if (!stager_)
        return errorf("cuda: --offload-compute probe: no expert staging buffers (reserve_expert_staging comes first)");
    const auto ei = static_cast<size_t>(expert);
    const int64_t dim = layer.w1[ei].cols, ffn = layer.w1[ei].rows;
    // Device scratch in staging buffer 0 (free before the first prefill): x, out, ws_in, ws_out [1, dim];
    // ws_gate, ws_up [1, ffn]; the id and the weight.
    const uint64_t row = (static_cast<uint64_t>(dim) * 4 + 255) / 256 * 256;
    const uint64_t hid = (static_cast<uint64_t>(ffn) * 4 + 255) / 256 * 256;
    const uint64_t need = 4 * row + 2 * hid + 512;
    if (need > stager_->buffer_bytes())
        return errorf("cuda: --offload-compute probe: {} bytes of scratch needed, the staging buffer has {}", need,
                      stager_->buffer_bytes());
    auto* base = static_cast<uint8_t*>(stager_->buffer(0));
    const cudaStream_t s = stream_;
    HR_CUDA_CHECK(cudaMemsetAsync(base, 0, need, s));
    const int32_t id = static_cast<int32_t>(expert);
    const float one = 1.0f;
    HR_CUDA_CHECK(cudaMemcpyAsync(base + 4 * row + 2 * hid, &id, sizeof id, cudaMemcpyHostToDevice, s));
    HR_CUDA_CHECK(cudaMemcpyAsync(base + 4 * row + 2 * hid + 256, &one, sizeof one, cudaMemcpyHostToDevice, s));
    HR_CUDA_CHECK(cudaStreamSynchronize(s));
    MoeArgs a;
    a.in = Tensor::make(DType::f32, base, {1, dim});
    a.out = Tensor::make(DType::f32, base + row, {1, dim});
    a.ws_in = Tensor::make(DType::f32, base + 2 * row, {1, dim});
    a.ws_out = Tensor::make(DType::f32, base + 3 * row, {1, dim});
    a.ws_gate = Tensor::make(DType::f32, base + 4 * row, {1, ffn});
    a.ws_up = Tensor::make(DType::f32, base + 4 * row + hid, {1, ffn});
    a.topk_ids = Tensor::make(DType::i32, base + 4 * row + 2 * hid, {1, 1});
    a.topk_w = Tensor::make(DType::f32, base + 4 * row + 2 * hid + 256, {1, 1});
    a.experts = layer;

    OffloadProbe p;
    p.expert_bytes = bytes_of(layer.w1[ei]) + bytes_of(layer.w3[ei]) + bytes_of(layer.w2[ei]);
    p.host_call_ms = time_on_stream(s, [&] { HR_CUDA_CHECK(cudaLaunchHostFunc(s, &noop, nullptr)); });
    // The device way: the decode step's own MoE path (one token, this expert), reading it in place.
    const bool was_cpu = offload_cpu_;
    offload_cpu_ = false;
    p.gpu_expert_ms = time_on_stream(s, [&] { moe_experts(a); });
    offload_cpu_ = was_cpu;
    // The host way: the same expert through host_experts_token on this thread.
    if (!host_compute_) {
        HR_ASSIGN(host_compute_, HostExpertCompute::create(dim, ffn, kMaxTopK));
    }
    std::vector<float> x(static_cast<size_t>(dim), 0.01f), out(static_cast<size_t>(dim));
    const uint64_t mask = uint64_t{1} << (expert & 63);
    std::vector<double> ms;
    for (int r = 0; r <= kProbeRuns; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        host_compute_->compute_now(out.data(), x.data(), &id, &one, 1, layer, mask);
        if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    p.cpu_expert_ms = median(ms);
    return p;
}

}  // namespace hr::cuda

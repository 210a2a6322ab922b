// The CPU backend: f32 activations and accumulation, weights decoded to their exact values. It is the
// reference (oracle) every other backend is tested against; its vector kernels (matmul_ggml.h, attention)
// are themselves tested against scalar reference paths kept beside them. Work runs on its own thread pool
// (thread_pool.h).
#pragma once

#include <atomic>
#include <memory>

#include "backend/backend.h"

namespace hr::cpu {

class CpuBackend final : public Backend {
public:
    CpuBackend() = default;
    ~CpuBackend() override = default;

    DeviceKind kind() const override { return DeviceKind::cpu; }
    std::string name() const override;

    Result<void*> allocate(size_t bytes, std::string_view what) override;
    void release(void* p) override;
    uint64_t allocation_count() const override { return allocations_.load(); }
    void upload(void* dst, const void* src_host, size_t bytes) override;
    void download(void* dst_host, const void* src, size_t bytes) override;
    // Backend memory is host memory: the loader writes weights in place (no staging copy).
    Result<std::unique_ptr<Uploader>> make_uploader(size_t, int) override {
        return std::unique_ptr<Uploader>(new InPlaceUploader());
    }
    void synchronize() override {}
    void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                   size_t rows) override;

    void embed(Tensor out, Tensor ids, const Weight& table) override;
    void rms_norm(Tensor out, Tensor in, const Weight& weight, float eps) override;
    void matmul(Tensor out, Tensor in, const Weight& w) override;
    void matmuls(Tensor in, std::span<const MatmulJob> jobs) override;  // one pass for all (matmul.cpp)
    void rope(Tensor q, Tensor k, Tensor positions, float theta) override;
    void attention(const AttentionArgs& args) override;
    void silu_mul(Tensor out, Tensor gate, Tensor up) override;
    void add(Tensor x, Tensor y) override;
    void add_bias(Tensor x, const Weight& bias) override;
    void moe_route(Tensor topk_ids, Tensor topk_w, Tensor router_logits, bool renormalize) override;
    void moe_experts(const MoeArgs& args) override;
    void gather_rows(Tensor out, Tensor in, Tensor rows) override;

private:
    std::atomic<uint64_t> allocations_{0};
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace hr::cpu

// The backend boundary: memory and a short list of ops. The forward pass (model/forward.cpp) is
// written once against this interface; the CPU backend is the reference, CUDA implements the same ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "backend/offload_probe.h"
#include "backend/op_args.h"
#include "backend/uploader.h"
#include "core/status.h"
#include "core/tensor.h"

namespace hr {

enum class DeviceKind { cpu, cuda };

class Backend {
public:
    virtual ~Backend() = default;
    virtual DeviceKind kind() const = 0;
    virtual std::string name() const = 0;

    // --- memory ---------------------------------------------------------------------------
    // Every allocation of backend memory goes through allocate(); engines allocate their planned
    // regions once at start-up and nothing after, which allocation_count() lets tests prove.
    // Returned memory is aligned to 256 bytes.
    virtual Result<void*> allocate(size_t bytes, std::string_view what) = 0;
    virtual void release(void* p) = 0;
    virtual uint64_t allocation_count() const = 0;
    // Host <-> backend copies (synchronous with respect to the host after synchronize()).
    virtual void upload(void* dst, const void* src_host, size_t bytes) = 0;
    virtual void download(void* dst_host, const void* src, size_t bytes) = 0;
    virtual void synchronize() = 0;
    // Backend-to-backend copy of `rows` rows of `width` bytes, src rows src_pitch bytes apart to dst rows
    // dst_pitch apart (one row: a plain copy). Unlike upload/download it is an op: on the stream, in order
    // with the others, never waits for the host, and a graph may record it. Source and destination rows
    // must not overlap. (The KV cache's copy-on-write of a block: every layer's slice in one call.)
    virtual void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                           size_t rows) = 0;
    // Host memory that the backend's ops can read in place (--offload-experts: the host.experts region):
    // CUDA gives pinned, mapped memory whose pointer is valid on the host and the device; the default is
    // ordinary backend memory (the CPU backend's memory is host memory). Counted like allocate().
    virtual Result<void*> allocate_host(size_t bytes, std::string_view what) { return allocate(bytes, what); }
    virtual void release_host(void* p) { release(p); }
    // Called once at start-up by the loader when some expert weights live in host memory: the backend may
    // reserve what it needs to use them (CUDA: the two staging buffers of the plan's
    // workspace.expert_staging, each bytes_per_expert). Default: nothing.
    virtual Status reserve_expert_staging(uint64_t bytes_per_expert) {
        (void)bytes_per_expert;
        return ok();
    }
    // Bytes of host-resident weights the backend has copied over the host link so far (/metrics). Safe
    // to call from any thread.
    virtual uint64_t host_stream_bytes() const { return 0; }
    // --offload-compute (memory/offload_compute.h): how batch-1 decode computes the selected experts that
    // live in host memory. probe: at start-up, times expert `expert` of `layer` (a host expert) read in
    // place by the device and computed by the host. set: cpu = the host computes them next to the device's
    // work (`layer`: any MoE layer, for the buffer sizes); false = the device reads them (the default).
    // Backends whose memory is host memory have nothing to choose: probe is an error, set(false) a no-op.
    virtual Result<OffloadProbe> probe_offload_compute(const ExpertWeights& layer, int64_t expert) {
        (void)layer;
        (void)expert;
        return errorf("{}: --offload-compute applies to a GPU backend (its experts are in host memory already)", name());
    }
    virtual Status set_offload_compute(bool cpu, const ExpertWeights& layer) {
        (void)layer;
        if (cpu) return errorf("{}: --offload-compute cpu applies to a GPU backend", name());
        return ok();
    }
    virtual bool offload_compute_cpu() const { return false; }
    // Offloaded experts the host has computed so far (--offload-compute cpu; /metrics). Any thread.
    virtual uint64_t host_computed_experts() const { return 0; }
    // The loader's path into backend memory (backend/uploader.h): n_slots staging buffers of slot_bytes,
    // allocated once here. This default stages in heap memory and calls upload(); backends override it
    // (CPU: in place; CUDA: pinned buffers and several copy streams).
    virtual Result<std::unique_ptr<Uploader>> make_uploader(size_t slot_bytes, int n_slots) {
        auto fn = [this](void* dst, const void* src, size_t n) { upload(dst, src, n); };
        return std::unique_ptr<Uploader>(new CopyUploader<decltype(fn)>(fn, slot_bytes, n_slots));
    }

    // Called on a host thread before it issues this backend's ops when the backend is driven from a thread
    // other than the one that made it (tensor parallel: one thread per device). CUDA: cudaSetDevice.
    virtual void bind_thread() {}

    // --- graphs (optional) -------------------------------------------------------------------
    // Steps of at most graph_max_tokens() tokens may be recorded once and replayed (0: not supported).
    // record() runs `body` with its ops captured, not executed (no uploads, downloads or synchronize
    // inside); replay() enqueues them again, reading whatever the device buffers hold then.
    virtual int64_t graph_max_tokens() const { return 0; }
    virtual Result<int> record(const std::function<void()>& body) {
        (void)body;
        return errorf("{}: graphs are not supported", name());
    }
    virtual void replay(int id) { (void)id; }

    // --- ops (all on the backend's stream, in order) ---------------------------------------
    // out[t] = table[ids[t]] converted to f32.   out [n, dim] f32; ids [n] i32; table [vocab, dim]
    virtual void embed(Tensor out, Tensor ids, const Weight& table) = 0;
    // out = in / rms(in) * weight, per row.      out, in [n, dim] f32; weight rows = 1, cols = dim
    virtual void rms_norm(Tensor out, Tensor in, const Weight& weight, float eps) = 0;
    // x += y, then out = rms_norm(x): the residual add and the next norm as one op (a backend may fuse
    // them into one pass). out may not alias x or y.   out, x, y [n, dim] f32; weight rows = 1, cols = dim
    virtual void add_rms_norm(Tensor out, Tensor x, Tensor y, const Weight& weight, float eps) {
        add(x, y);
        rms_norm(out, x, weight, eps);
    }
    // out = in W^T with f32 accumulation.        out [n, rows] f32; in [n, cols] f32
    virtual void matmul(Tensor out, Tensor in, const Weight& w) = 0;
    // jobs[i].out = in W_i^T for every job: several products of one input (q, k, v), which a backend
    // may run as one pass.                        in [n, cols] f32; every W_i has cols columns
    virtual void matmuls(Tensor in, std::span<const MatmulJob> jobs) {
        for (const MatmulJob& j : jobs) matmul(j.out, in, *j.w);
    }
    // Rotary embedding as transformers applies it (rotate_half: pairs (i, i + head_dim/2)), in place.
    // q [n, n_heads, head_dim] f32; k [n, n_kv_heads, head_dim] f32; positions [n] i32
    virtual void rope(Tensor q, Tensor k, Tensor positions, float theta) = 0;
    virtual void attention(const AttentionArgs& args) = 0;
    // rope(args.q, args.k_new, args.positions, theta), then attention(args): one op so that a backend may
    // rotate, write the cache and attend in one pass (CUDA: decode tokens, CudaOptions::fused_decode_attention).
    // Afterwards args.q and args.k_new are unspecified (rotated or not): nothing may read them.
    virtual void rope_attention(const AttentionArgs& args, float theta) {
        rope(args.q, args.k_new, args.positions, theta);
        attention(args);
    }
    // out = silu(gate) * up.                      all [n, ffn_dim] f32
    virtual void silu_mul(Tensor out, Tensor gate, Tensor up) = 0;
    // x += y.                                     both [n, dim] f32
    virtual void add(Tensor x, Tensor y) = 0;
    // x[t] += bias for every row t (Qwen2's q/k/v bias).   x [n, d] f32; bias rows = 1, cols = d
    virtual void add_bias(Tensor x, const Weight& bias) = 0;
    // MoE routing: softmax over all experts, top-k (ties: lower index); with `renormalize` (Mixtral,
    // Qwen3-MoE norm_topk_prob) the k weights are divided by their sum, else they stay probabilities.
    // topk_ids [n, k] i32; topk_w [n, k] f32; router_logits [n, n_experts] f32
    virtual void moe_route(Tensor topk_ids, Tensor topk_w, Tensor router_logits, bool renormalize) = 0;
    virtual void moe_experts(const MoeArgs& args) = 0;
    // The entry of an MoE layer: add_rms_norm(out, x, y, norm, eps), then r.router_logits = out R^T (matmul)
    // and moe_route(r.topk_ids, r.topk_w, r.router_logits, r.renormalize): one op so that a backend may do a
    // token's whole row in one pass (CUDA: CudaOptions::fused_router). out may not alias x or y.
    virtual void add_rms_norm_route(Tensor out, Tensor x, Tensor y, const Weight& norm, float eps, const RouteArgs& r) {
        add_rms_norm(out, x, y, norm, eps);
        matmul(r.router_logits, out, *r.router);
        moe_route(r.topk_ids, r.topk_w, r.router_logits, r.renormalize);
    }
    // out[i] = in[rows[i]].                       out [m, d]; in [n, d] f32; rows [m] i32
    virtual void gather_rows(Tensor out, Tensor in, Tensor rows) = 0;
};

}  // namespace hr

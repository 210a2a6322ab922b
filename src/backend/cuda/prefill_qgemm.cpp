// Prefill through the quantized tensor-core GEMM (prefill_qgemm.h). The MoE layer: pairs grouped by
// expert on the device (launch_moe_plan), the tokens converted to f16 once (into ws_in, which the old
// path used for the gathered f32 copy), w1/w3 reading each pair's token through perm and writing
// f16 silu(gate) * up at the pair's sorted position (act), w2 reading those rows and writing f32 (ws_out),
// then the weighted combine. Expert weights are addressed per expert (QgMat), so staged copies of
// host-resident experts work as well as resident ones: with host experts the grouped launches skip them
// (QgParams::skip_experts) and each one runs from its staged copy over its own slice of the sorted pairs.
#include "backend/cuda/prefill_qgemm.h"

#include <array>
#include <cstdint>
#include <span>

#include "backend/cuda/check.h"
#include "backend/cuda/expert_staging.h"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/qgemm.h"

namespace hr::cuda {
namespace {

bool aligned(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

bool quantized(DType dt) { return dt == DType::q8 || dt == DType::q4; }

void set_mat(QgMat& m, std::span<const Weight> w) {
    for (size_t e = 0; e < w.size(); ++e) {
        m.data[e] = w[e].data;
        m.scales[e] = w[e].scales;
    }
}

// Bit e: expert e of these matrices lives in host memory (Weight::host).
uint64_t host_mask(std::span<const Weight> w) {
    uint64_t m = 0;
    for (size_t e = 0; e < w.size() && e < 64; ++e)
        if (w[e].host) m |= uint64_t{1} << e;
    return m;
}

// The items of a stager phase begun over matrices `a` (ExpertStager::begin: the host experts with pairs,
// in expert order), each run over its slice [off, off + c) of the sorted pairs by one(views, off, c).
template <class F>
void run_staged_items(ExpertStager& st, std::span<const Weight> a, const int32_t* offsets, int64_t E, F&& one) {
    if (!ExpertStager::wanted(a, offsets, E)) return;
    for (int64_t e = 0; e < E && e < static_cast<int64_t>(a.size()); ++e) {
        const int64_t off = offsets[e], c = offsets[e + 1] - off;
        if (!a[static_cast<size_t>(e)].host || c == 0) continue;
        one(st.acquire(), off, c);
        st.release();
    }
}

}  // namespace

bool moe_prefill_qgemm(CUstream_st* s, const MoeArgs& a, const QgemmWorkspace& ws, const QgemmStaging* staging) {
    const int64_t n = a.in.rows(), dim = a.in.cols(), k = a.topk_ids.cols(), nk = n * k;
    const auto E = static_cast<int64_t>(a.experts.w1.size());
    if (n == 0 || E < 1 || E > kMaxExperts) return false;
    const Weight& w1 = a.experts.w1[0];
    const int64_t ffn = w1.rows;
    if (!quantized(w1.dtype) || !qgemm_shape_supported(w1.dtype, ffn, dim) ||
        !qgemm_shape_supported(w1.dtype, dim, ffn))
        return false;
    // f16 tokens [n, dim] in ws_in (f32 [>= nk, dim]); f16 gate [nk, ffn] in act; f32 [nk, dim] in ws_out.
    if (nk > ws.pairs || nk * ffn > ws.act_elems || a.ws_in.numel() * 2 < n * dim || a.ws_out.numel() < nk * dim ||
        !aligned(a.ws_in.data) || !aligned(ws.act))
        return false;
    void* xh = a.ws_in.data;
    QgParams p13{};
    set_mat(p13.mat[0], a.experts.w1);
    set_mat(p13.mat[1], a.experts.w3);
    p13.dtype = w1.dtype;
    p13.rows = ffn;
    p13.cols = dim;
    p13.n_experts = static_cast<int>(E);
    p13.offsets = ws.offsets;
    p13.n_positions = nk;
    p13.perm = ws.perm;
    p13.k = static_cast<int>(k);
    p13.x = xh;
    p13.out_h = ws.act;
    QgParams p2{};
    set_mat(p2.mat[0], a.experts.w2);
    p2.dtype = w1.dtype;
    p2.rows = dim;
    p2.cols = ffn;
    p2.n_experts = static_cast<int>(E);
    p2.offsets = ws.offsets;
    p2.n_positions = nk;
    p2.x = ws.act;
    p2.out_f32 = a.ws_out.as<float>();
    if (!qgemm_supported(p13, true) || !qgemm_supported(p2, false)) return false;
    const uint64_t host13 = host_mask(a.experts.w1), host2 = host_mask(a.experts.w2);
    const bool staged = staging != nullptr && staging->stager != nullptr && (host13 | host2) != 0;
    launch_moe_plan(s, ws.perm, ws.inv, ws.offsets, a.topk_ids.as<int32_t>(), nk, E);
    launch_to_half(s, xh, a.in.as<float>(), n * dim, true);
    if (!staged) {
        launch_qgemm(s, p13, true);   // act[pos] = f16(silu(W1 x) * (W3 x)), pos sorted by expert
        launch_qgemm(s, p2, false);   // ws_out[pos] = W2 act[pos]
        launch_moe_combine(s, a.out.as<float>(), a.ws_out.as<float>(), a.topk_w.as<float>(), ws.inv, n, k, dim);
        return true;
    }
    // The expert counts on the host: which host experts have pairs, and where their slices start.
    int32_t* offsets = staging->host_offsets;
    HR_CUDA_CHECK(cudaMemcpyAsync(offsets, ws.offsets, static_cast<size_t>(E + 1) * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, s));
    HR_CUDA_CHECK(cudaStreamSynchronize(s));
    ExpertStager& st = *staging->stager;
    auto* act = static_cast<uint16_t*>(ws.act);  // f16 [nk, ffn]
    // One host expert over its slice of the pairs: the dense form of the same kernel (offsets null, one
    // expert, the slice's perm), so its tiles start at the slice's first pair as in the grouped launch and
    // the results equal the resident run's bit for bit.
    auto slice13 = [&](const std::array<Weight, 2>& v, int64_t off, int64_t c) {
        QgParams q = p13;
        q.mat[0].data[0] = v[0].data;
        q.mat[0].scales[0] = v[0].scales;
        q.mat[1].data[0] = v[1].data;
        q.mat[1].scales[0] = v[1].scales;
        q.n_experts = 1;
        q.offsets = nullptr;
        q.skip_experts = 0;
        q.n_positions = c;
        q.perm = ws.perm + off;
        q.out_h = act + off * ffn;
        launch_qgemm(s, q, true);
    };
    auto slice2 = [&](const std::array<Weight, 2>& v, int64_t off, int64_t c) {
        QgParams q = p2;
        q.mat[0].data[0] = v[0].data;
        q.mat[0].scales[0] = v[0].scales;
        q.n_experts = 1;
        q.offsets = nullptr;
        q.skip_experts = 0;
        q.n_positions = c;
        q.x = act + off * ffn;  // 16-byte aligned: ffn % 64 == 0
        q.out_f32 = a.ws_out.as<float>() + off * dim;
        launch_qgemm(s, q, false);
    };
    // Per phase: the copies of the first two host experts start, the resident experts' grouped launch
    // runs while they cross the link, then each host expert from its buffer.
    p13.skip_experts = host13;
    p2.skip_experts = host2;
    if (ExpertStager::wanted(a.experts.w1, offsets, E)) st.begin(s, a.experts.w1, a.experts.w3, offsets, E);
    launch_qgemm(s, p13, true);
    run_staged_items(st, a.experts.w1, offsets, E, slice13);
    if (ExpertStager::wanted(a.experts.w2, offsets, E)) st.begin(s, a.experts.w2, {}, offsets, E);
    launch_qgemm(s, p2, false);
    run_staged_items(st, a.experts.w2, offsets, E, slice2);
    launch_moe_combine(s, a.out.as<float>(), a.ws_out.as<float>(), a.topk_w.as<float>(), ws.inv, n, k, dim);
    return true;
}

bool matmul_qgemm(CUstream_st* s, float* out, const float* in, int64_t n, const Weight& w, void* act,
                  int64_t act_elems) {
    if (n == 0 || !quantized(w.dtype) || !qgemm_shape_supported(w.dtype, w.rows, w.cols) ||
        n * w.cols > act_elems || !aligned(act))
        return false;
    QgParams p{};
    p.mat[0].data[0] = w.data;
    p.mat[0].scales[0] = w.scales;
    p.dtype = w.dtype;
    p.rows = w.rows;
    p.cols = w.cols;
    p.n_positions = n;
    p.x = act;
    p.out_f32 = out;
    if (!qgemm_supported(p, false)) return false;
    launch_to_half(s, act, in, n * w.cols, true);
    launch_qgemm(s, p, false);
    return true;
}

}  // namespace hr::cuda

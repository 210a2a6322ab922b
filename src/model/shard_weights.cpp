// Cutting a model's weights for one rank (see shard_weights.h). Two passes over the same walk: the first
// sums the bytes (each weight's data and scales 256-byte aligned), the second fills the one allocation.
#include "model/shard_weights.h"

#include <cstring>
#include <vector>

#include "model/activations.h"
#include "quant/formats.h"

namespace hr {

namespace {

enum class Cut { whole, rows, cols };

// Bytes of one row's data / scales of a [*, cols] weight in dtype dt.
int64_t row_data(DType dt, int64_t cols) { return quant::weight_data_bytes(dt, 1, cols); }
int64_t row_scales(DType dt, int64_t cols) { return quant::weight_scale_bytes(dt, 1, cols); }
// Offset of column c inside a row's scales (int8: one scale per row, shared by every column).
int64_t scale_col_offset(DType dt, int64_t c) { return dt == DType::q4 ? row_scales(dt, c) : 0; }

class Cutter {
public:
    Cutter(Backend& be, uint8_t* base) : be_(be), base_(base) {}
    uint64_t bytes() const { return used_; }

    // The part [begin, begin + n) of w's rows or columns (whole: all of it), as a view into the region.
    Weight cut(const Weight& w, Cut how, int64_t begin, int64_t n) {
        if (!w.data) return w;  // an unused slot stays unbound
        Weight out = w;
        out.host = false;
        const int64_t rows = how == Cut::rows ? n : w.rows;
        const int64_t cols = how == Cut::cols ? n : w.cols;
        out.rows = rows;
        out.cols = cols;
        const int64_t rd = row_data(w.dtype, w.cols), rs = row_scales(w.dtype, w.cols);
        const int64_t first_row = how == Cut::rows ? begin : 0;
        // Data.
        out.data = place(rows * row_data(w.dtype, cols), [&](uint8_t* dst) {
            const auto* src = static_cast<const uint8_t*>(w.data);
            if (how != Cut::cols) {
                upload(dst, src + first_row * rd, rows * rd);
            } else {
                const int64_t off = row_data(w.dtype, begin), len = row_data(w.dtype, cols);
                std::vector<uint8_t> tmp(static_cast<size_t>(rows * len));
                for (int64_t r = 0; r < rows; ++r)
                    std::memcpy(tmp.data() + r * len, src + r * rd + off, static_cast<size_t>(len));
                upload(dst, tmp.data(), rows * len);
            }
        });
        // Scales.
        if (w.scales && rs > 0) {
            out.scales = place(rows * row_scales(w.dtype, cols), [&](uint8_t* dst) {
                const auto* src = static_cast<const uint8_t*>(w.scales);
                if (how != Cut::cols) {
                    upload(dst, src + first_row * rs, rows * rs);
                } else {
                    const int64_t off = scale_col_offset(w.dtype, begin), len = row_scales(w.dtype, cols);
                    std::vector<uint8_t> tmp(static_cast<size_t>(rows * len));
                    for (int64_t r = 0; r < rows; ++r)
                        std::memcpy(tmp.data() + r * len, src + r * rs + off, static_cast<size_t>(len));
                    upload(dst, tmp.data(), rows * len);
                }
            });
        }
        return out;
    }

private:
    template <class F>
    const void* place(int64_t bytes, F fill) {
        const uint64_t at = used_;
        used_ += align_up(static_cast<uint64_t>(bytes));
        if (!base_) return nullptr;  // the counting pass
        fill(base_ + at);
        return base_ + at;
    }
    void upload(uint8_t* dst, const uint8_t* src, int64_t n) { be_.upload(dst, src, static_cast<size_t>(n)); }

    Backend& be_;
    uint8_t* base_;
    uint64_t used_ = 0;
};

void cut_model(const ModelConfig& cfg, const ShardPlan& plan, const RankShard& s, const ModelWeights& full,
               Cutter& c, ModelWeights& out) {
    const int64_t hd = cfg.head_dim;
    const int64_t q0 = s.q_heads.begin * hd, qn = s.q_heads.size() * hd;
    const int64_t k0 = s.kv_heads.begin * hd, kn = s.kv_heads.size() * hd;
    out = ModelWeights{};
    out.embedding = c.cut(full.embedding, Cut::whole, 0, 0);
    out.final_norm = c.cut(full.final_norm, Cut::whole, 0, 0);
    const bool tied = full.lm_head.data == full.embedding.data;
    out.lm_head = tied ? out.embedding : c.cut(full.lm_head, Cut::whole, 0, 0);
    for (const LayerWeights& f : full.layers) {
        LayerWeights l;
        l.attn_norm = c.cut(f.attn_norm, Cut::whole, 0, 0);
        l.ffn_norm = c.cut(f.ffn_norm, Cut::whole, 0, 0);
        l.q_norm = c.cut(f.q_norm, Cut::whole, 0, 0);
        l.k_norm = c.cut(f.k_norm, Cut::whole, 0, 0);
        l.wq = c.cut(f.wq, Cut::rows, q0, qn);
        l.wk = c.cut(f.wk, Cut::rows, k0, kn);
        l.wv = c.cut(f.wv, Cut::rows, k0, kn);
        l.bq = c.cut(f.bq, Cut::cols, q0, qn);  // [1, q_dim] vectors: their columns are the heads
        l.bk = c.cut(f.bk, Cut::cols, k0, kn);
        l.bv = c.cut(f.bv, Cut::cols, k0, kn);
        l.wo = c.cut(f.wo, Cut::cols, q0, qn);
        if (plan.ffn > 0) {
            l.w1 = c.cut(f.w1, Cut::rows, s.ffn.begin, s.ffn.size());
            l.w3 = c.cut(f.w3, Cut::rows, s.ffn.begin, s.ffn.size());
            l.w2 = c.cut(f.w2, Cut::cols, s.ffn.begin, s.ffn.size());
        }
        l.router = c.cut(f.router, Cut::whole, 0, 0);
        for (size_t e = 0; e < f.ew1.size(); ++e) {
            l.ew1.push_back(c.cut(f.ew1[e], Cut::rows, s.expert_ffn.begin, s.expert_ffn.size()));
            l.ew3.push_back(c.cut(f.ew3[e], Cut::rows, s.expert_ffn.begin, s.expert_ffn.size()));
            l.ew2.push_back(c.cut(f.ew2[e], Cut::cols, s.expert_ffn.begin, s.expert_ffn.size()));
        }
        out.layers.push_back(std::move(l));
    }
}

}  // namespace

Result<RankWeights> shard_weights(const ModelConfig& cfg, const ShardPlan& plan, int rank, const ModelWeights& full,
                                  Backend& be) {
    if (rank < 0 || rank >= plan.n_ranks)
        return errorf("shard_weights: rank {} is outside [0, {})", rank, plan.n_ranks);
    if (static_cast<int64_t>(full.layers.size()) != cfg.n_layers)
        return errorf("shard_weights: {} layers of weights for a config of {}", full.layers.size(), cfg.n_layers);
    for (const LayerWeights& l : full.layers) {
        for (const Weight& w : l.ew1)
            if (w.host) return errorf("tensor parallel with experts in host memory (--offload-experts): not implemented");
        HR_TRY(check_shard_format(cfg, plan, l.wo.dtype));
        if (l.w2.data) HR_TRY(check_shard_format(cfg, plan, l.w2.dtype));
        if (!l.ew2.empty()) HR_TRY(check_shard_format(cfg, plan, l.ew2.front().dtype));
    }
    const RankShard s = rank_shard(cfg, plan, rank);
    RankWeights out;
    Cutter count(be, nullptr);
    cut_model(cfg, plan, s, full, count, out.weights);
    out.bytes = count.bytes();
    HR_ASSIGN(void* base, be.allocate(out.bytes, fmt::format("weights (tensor-parallel rank {})", rank)));
    out.region = std::shared_ptr<void>(base, [&be](void* p) { be.release(p); });
    Cutter fill(be, static_cast<uint8_t*>(base));
    cut_model(cfg, plan, s, full, fill, out.weights);
    be.synchronize();
    return out;
}

}  // namespace hr

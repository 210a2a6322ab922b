// Model loading: check the checkpoint against the config's tensor table, then convert/quantize each
// tensor into its storage dtype inside one backend allocation.
#include "loader/load.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "core/half.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensor_store.h"
#include "memory/weight_format.h"
#include "model/tensor_names.h"
#include "quant/formats.h"
#include "quant/quantize.h"

namespace hr {

namespace {

bool is_plain_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

float read_plain(DType dt, const uint8_t* p, int64_t i) {
    switch (dt) {
        case DType::f32: {
            float f;
            std::memcpy(&f, p + i * 4, 4);
            return f;
        }
        case DType::f16: {
            uint16_t h;
            std::memcpy(&h, p + i * 2, 2);
            return f16_to_f32(h);
        }
        default: {
            uint16_t h;
            std::memcpy(&h, p + i * 2, 2);
            return bf16_to_f32(h);
        }
    }
}

void write_plain(DType dt, uint8_t* p, int64_t i, float v) {
    switch (dt) {
        case DType::f32: std::memcpy(p + i * 4, &v, 4); return;
        case DType::f16: {
            uint16_t h = f32_to_f16(v);
            std::memcpy(p + i * 2, &h, 2);
            return;
        }
        default: {
            uint16_t h = f32_to_bf16(v);
            std::memcpy(p + i * 2, &h, 2);
            return;
        }
    }
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

// Non-finite values in small, sensitive tensors (norms, embeddings, router, head) refuse the load.
Status check_finite(const io::TensorInfo& t, DType dt) {
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(read_plain(dt, t.data, i)))
            return errorf("{}: tensor '{}' holds a non-finite value at element {}; refusing to load", t.file, t.name, i);
    }
    return ok();
}

Result<DType> prequantized_format(const io::TensorStore& store) {
    const auto& md = store.metadata();
    auto f = md.find(kFormatKey);
    if (f == md.end()) return DType::f32;  // sentinel: not pre-quantized
    auto v = md.find(kFormatVersionKey);
    if (v == md.end() || v->second != kFormatVersion)
        return errorf("{}: headroom checkpoint format version '{}' is not supported (expected '{}')", store.path(),
                      v == md.end() ? std::string("<missing>") : v->second, kFormatVersion);
    if (f->second == "int8") return DType::q8;
    if (f->second == "int4") return DType::q4;
    return errorf("{}: unknown headroom checkpoint format '{}' (expected int8 or int4)", store.path(), f->second);
}

struct Placement {
    const TensorSpec* spec;
    const io::TensorInfo* info;
    const io::TensorInfo* scales;  // pre-quantized only
    DType src_dtype;
    DType storage;
    uint64_t data_off;
    uint64_t scale_off;
};

Status check_shape(const io::TensorInfo& t, const std::vector<int64_t>& want) {
    if (t.shape != want)
        return errorf("{}: tensor '{}' has shape {}, expected {} from config.json", t.file, t.name, shape_str(t.shape),
                      shape_str(want));
    return ok();
}

}  // namespace

uint64_t stored_weight_bytes(const ModelConfig& cfg, DType weight_format, DType checkpoint_dtype) {
    uint64_t total = 0;
    for (const TensorSpec& s : expected_tensors(cfg))
        total += stored_tensor_bytes(s, storage_dtype_for(s, weight_format, checkpoint_dtype)).total();
    return total;
}

Result<LoadedModel> load_model(const std::string& dir, Backend& be, const LoadOptions& opts) {
    const auto t0 = std::chrono::steady_clock::now();
    LoadedModel m;
    HR_ASSIGN(m.cfg, load_model_config(dir + "/config.json"));
    HR_ASSIGN(io::TensorStore store, io::TensorStore::open(dir));
    HR_ASSIGN(DType preq, prequantized_format(store));
    m.prequantized = preq != DType::f32;

    const std::vector<TensorSpec> specs = expected_tensors(m.cfg);
    const io::TensorInfo* emb = store.find(specs[0].hf_name);
    if (!emb) return errorf("{}: required tensor '{}' is missing", store.path(), specs[0].hf_name);
    HR_ASSIGN(m.checkpoint_dtype, io::computable_dtype(*emb));
    if (!is_plain_float(m.checkpoint_dtype))
        return errorf("{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", emb->file, emb->name, emb->dtype);

    if (opts.weights && !(is_plain_float(*opts.weights) || *opts.weights == DType::q8 || *opts.weights == DType::q4))
        return errorf("weight format {} is not supported (expected bf16, f16, f32, int8 or int4)",
                      dtype_name(*opts.weights));
    if (m.prequantized) {
        if (opts.weights && *opts.weights != preq)
            return errorf("{}: the checkpoint is pre-quantized to {}; loading it as {} is not supported (load the "
                          "original checkpoint instead)", store.path(), dtype_name(preq), dtype_name(*opts.weights));
        m.weight_format = preq;
    } else {
        m.weight_format = opts.weights.value_or(m.checkpoint_dtype);
    }

    // Match the checkpoint against the table: every expected tensor present with the right shape,
    // and nothing else.
    std::set<std::string> expected_names;
    std::vector<Placement> places;
    uint64_t off = 0;
    for (const TensorSpec& s : specs) {
        Placement p{&s, nullptr, nullptr, DType::f32, storage_dtype_for(s, m.weight_format, m.checkpoint_dtype), 0, 0};
        p.info = store.find(s.hf_name);
        if (!p.info) return errorf("{}: required tensor '{}' is missing (never initialised at random)", store.path(), s.hf_name);
        expected_names.insert(s.hf_name);
        const int64_t rows = spec_rows(s), cols = spec_cols(s);
        const bool stored_quantized = m.prequantized && (p.storage == DType::q8 || p.storage == DType::q4);
        if (stored_quantized) {
            const std::string sname = s.hf_name + kScalesSuffix;
            p.scales = store.find(sname);
            if (!p.scales) return errorf("{}: required tensor '{}' is missing", store.path(), sname);
            expected_names.insert(sname);
            if (p.storage == DType::q8) {
                if (p.info->dtype != "I8") return errorf("{}: tensor '{}' has dtype {}, expected I8 (int8 data)", p.info->file, s.hf_name, p.info->dtype);
                HR_TRY(check_shape(*p.info, {rows, cols}));
                if (p.scales->dtype != "F32") return errorf("{}: tensor '{}' has dtype {}, expected F32", p.scales->file, sname, p.scales->dtype);
                HR_TRY(check_shape(*p.scales, {rows}));
            } else {
                if (p.info->dtype != "U8") return errorf("{}: tensor '{}' has dtype {}, expected U8 (packed int4 data)", p.info->file, s.hf_name, p.info->dtype);
                HR_TRY(check_shape(*p.info, {rows, quant::q4_row_bytes(cols)}));
                if (p.scales->dtype != "F16") return errorf("{}: tensor '{}' has dtype {}, expected F16", p.scales->file, sname, p.scales->dtype);
                HR_TRY(check_shape(*p.scales, {rows, quant::q4_groups(cols)}));
            }
            p.src_dtype = p.storage;
        } else {
            HR_TRY(check_shape(*p.info, s.shape));
            HR_ASSIGN(p.src_dtype, io::computable_dtype(*p.info));
            if (!is_plain_float(p.src_dtype))
                return errorf("{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", p.info->file, s.hf_name, p.info->dtype);
            if (s.role == TensorRole::norm || s.role == TensorRole::embedding || s.role == TensorRole::router ||
                s.role == TensorRole::output_head)
                HR_TRY(check_finite(*p.info, p.src_dtype));
        }
        const TensorBytes tb = stored_tensor_bytes(s, p.storage);
        p.data_off = off;
        p.scale_off = off + tb.data;
        off += tb.total();
        places.push_back(p);
    }
    for (const io::TensorInfo& t : store.tensors()) {
        if (!expected_names.count(t.name))
            return errorf("{}: unexpected tensor '{}' (not part of {} with {} layers{})", t.file, t.name,
                          architecture_name(m.cfg.arch), m.cfg.n_layers,
                          m.prequantized ? "" : "; a pre-quantized tensor needs headroom.format metadata");
    }

    // One allocation for all weights; then convert each tensor through a host staging buffer.
    m.weight_bytes = off;
    HR_ASSIGN(void* base, be.allocate(off, "weights"));
    Backend* bep = &be;
    m.region = std::shared_ptr<void>(base, [bep](void* p) { bep->release(p); });
    auto* region = static_cast<uint8_t*>(base);
    std::vector<uint8_t> staging, staging_scales;
    for (const Placement& p : places) {
        const int64_t rows = spec_rows(*p.spec), cols = spec_cols(*p.spec);
        const uint64_t dbytes = static_cast<uint64_t>(quant::weight_data_bytes(p.storage, rows, cols));
        const uint64_t sbytes = static_cast<uint64_t>(quant::weight_scale_bytes(p.storage, rows, cols));
        if (p.scales) {  // pre-quantized: bytes as they are
            be.upload(region + p.data_off, p.info->data, dbytes);
            be.upload(region + p.scale_off, p.scales->data, sbytes);
        } else if (p.storage == p.src_dtype) {
            be.upload(region + p.data_off, p.info->data, dbytes);
        } else if (is_plain_float(p.storage)) {
            staging.resize(dbytes);
            const int64_t n = rows * cols;
            for (int64_t i = 0; i < n; ++i) write_plain(p.storage, staging.data(), i, read_plain(p.src_dtype, p.info->data, i));
            be.upload(region + p.data_off, staging.data(), dbytes);
        } else {
            staging.resize(dbytes);
            staging_scales.resize(sbytes);
            Status st = quant::quantize_matrix(p.storage, p.info->data, p.src_dtype, rows, cols, staging.data(),
                                               staging_scales.data());
            if (!st.ok()) return errorf("{}: tensor '{}': {}", p.info->file, p.info->name, st.error().message);
            be.upload(region + p.data_off, staging.data(), dbytes);
            be.upload(region + p.scale_off, staging_scales.data(), sbytes);
        }
    }
    be.synchronize();

    // Views in the roles the forward pass uses.
    auto view = [&](size_t i) {
        const Placement& p = places[i];
        Weight w;
        w.dtype = p.storage;
        w.rows = spec_rows(*p.spec);
        w.cols = spec_cols(*p.spec);
        w.data = region + p.data_off;
        w.scales = (p.storage == DType::q8 || p.storage == DType::q4) ? region + p.scale_off : nullptr;
        return w;
    };
    size_t i = 0;
    m.weights.embedding = view(i++);
    const ModelConfig& c = m.cfg;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        LayerWeights lw;
        lw.attn_norm = view(i++);
        lw.wq = view(i++);
        lw.wk = view(i++);
        lw.wv = view(i++);
        lw.wo = view(i++);
        lw.ffn_norm = view(i++);
        if (c.is_moe()) {
            lw.router = view(i++);
            for (int64_t e = 0; e < c.n_experts; ++e) {
                lw.ew1.push_back(view(i++));
                lw.ew2.push_back(view(i++));
                lw.ew3.push_back(view(i++));
            }
        } else {
            lw.w1 = view(i++);
            lw.w3 = view(i++);
            lw.w2 = view(i++);
        }
        m.weights.layers.push_back(std::move(lw));
    }
    m.weights.final_norm = view(i++);
    m.weights.lm_head = c.tie_word_embeddings ? m.weights.embedding : view(i++);
    HR_CHECK(i == places.size());
    m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

}  // namespace hr

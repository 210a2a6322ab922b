// Model loading: check the checkpoint against the config's tensor table, then convert/quantize each
// tensor into its storage dtype inside one backend allocation.
#include "loader/load.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "core/half.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensor_store.h"
#include "loader/gguf_checkpoint.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"
#include "quant/formats.h"
#include "quant/quantize.h"

namespace hr {

namespace {

bool is_plain_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

float read_plain(DType dt, const uint8_t* p, int64_t i) {
    uint16_t h;
    switch (dt) {
        case DType::f32: {
            float f;
            std::memcpy(&f, p + i * 4, 4);
            return f;
        }
        case DType::f16: std::memcpy(&h, p + i * 2, 2); return f16_to_f32(h);
        default: std::memcpy(&h, p + i * 2, 2); return bf16_to_f32(h);
    }
}

// Non-finite values in small, sensitive tensors (norms, embeddings, router, head) refuse the load;
// quantized tensors are checked by the quantizer itself.
Status check_finite(const io::TensorInfo& t, DType dt) {
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(read_plain(dt, t.data, i)))
            return errorf("{}: tensor '{}' holds a non-finite value at element {}; refusing to load", t.file, t.name, i);
    }
    return ok();
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

// An ordinary checkpoint: every expected tensor present with the config's shape and a float dtype,
// and no tensor that the config does not explain.
Status check_checkpoint(const io::TensorStore& store, const ModelConfig& cfg, std::span<const TensorSpec> specs) {
    std::set<std::string_view> names;
    for (const TensorSpec& s : specs) {
        names.insert(s.hf_name);
        const io::TensorInfo* t = store.find(s.hf_name);
        if (!t) return errorf("{}: required tensor '{}' is missing (never initialised at random)", store.path(), s.hf_name);
        if (t->shape != s.shape)
            return errorf("{}: tensor '{}' has shape {}, expected {} from config.json", t->file, t->name,
                          shape_str(t->shape), shape_str(s.shape));
        HR_ASSIGN(DType dt, io::computable_dtype(*t));
        if (!is_plain_float(dt))
            return errorf("{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", t->file, t->name, t->dtype);
        if (s.role == TensorRole::norm || s.role == TensorRole::embedding || s.role == TensorRole::router ||
            s.role == TensorRole::output_head)
            HR_TRY(check_finite(*t, dt));
    }
    for (const io::TensorInfo& t : store.tensors()) {
        if (!names.count(t.name))
            return errorf("{}: unexpected tensor '{}' (not part of {} with {} layers{})", t.file, t.name,
                          architecture_name(cfg.arch), cfg.n_layers,
                          cfg.tie_word_embeddings ? ", tied embeddings" : "");
    }
    return ok();
}

// GGUF on CUDA: the ggml block formats have no CUDA kernels yet, so a load that would keep them is
// refused with the formats that work (docs/formats.md says why it is not converted silently).
Status check_gguf_storage(const GgufCheckpoint& g, std::span<const DType> storage, const Backend& be) {
    if (be.kind() != DeviceKind::cuda) return ok();
    std::set<std::string_view> kept;
    for (DType d : storage) {
        if (is_ggml_block_dtype(d)) kept.insert(dtype_name(d));
    }
    if (kept.empty()) return ok();
    std::string names;
    for (std::string_view n : kept) names += fmt::format("{}{}", names.empty() ? "" : ", ", n);
    return errorf("{}: --device cuda does not run the GGUF block formats of this file ({}) yet; load it with "
                  "--weights int8 or --weights int4 (converted from the dequantized values: `headroom inspect {} "
                  "--weights int8` shows the conversion error), or run it with --device cpu",
                  g.file->path(), names, g.file->path());
}

}  // namespace

uint64_t stored_weight_bytes(const ModelConfig& cfg, DType weight_format, DType checkpoint_dtype) {
    uint64_t total = 0;
    for (const TensorSpec& s : expected_tensors(cfg))
        total += stored_tensor_bytes(s, storage_dtype_for(s, weight_format, checkpoint_dtype, cfg.tensor_dtypes.get())).total();
    return total;
}

Result<LoadedModel> load_model(const std::string& dir, Backend& be, const LoadOptions& opts) {
    const auto t0 = std::chrono::steady_clock::now();
    LoadedModel m;
    // GGUF hook: a .gguf file is a checkpoint whose tensors keep their own dtypes (loader/gguf_checkpoint.h).
    std::optional<GgufCheckpoint> gguf;
    std::optional<io::TensorStore> store_opt;
    if (is_gguf_file(dir)) {
        HR_ASSIGN(gguf, GgufCheckpoint::open(dir));
        m.cfg = gguf->cfg;
        m.checkpoint_dtype = DType::f32;
        HR_ASSIGN(m.weight_format, gguf->weight_format(opts.weights));
    } else {
        HR_ASSIGN(m.cfg, load_model_config(dir + "/config.json"));
        HR_ASSIGN(store_opt, io::TensorStore::open(dir));
    }
    std::optional<DType> preq;
    if (!gguf) {
        HR_ASSIGN(preq, prequantized_format(store_opt->metadata(), store_opt->path()));
        HR_ASSIGN(m.checkpoint_dtype, checkpoint_dtype(*store_opt));
    }
    m.prequantized = preq.has_value();
    if (gguf) {
        // the weight format was set above
    } else if (m.prequantized) {
        HR_ASSIGN(m.weight_format, weights_for_prequantized(opts.weights, *preq, store_opt->path()));
    } else {
        m.weight_format = opts.weights.value_or(m.checkpoint_dtype);
        if (!(is_plain_float(m.weight_format) || m.weight_format == DType::q8 || m.weight_format == DType::q4))
            return errorf("weight format {} is not supported (expected bf16, f16, f32, int8 or int4)",
                          dtype_name(m.weight_format));
    }

    const std::vector<TensorSpec> specs = expected_tensors(m.cfg);
    std::vector<DType> storage;
    for (const TensorSpec& s : specs)
        storage.push_back(storage_dtype_for(s, m.weight_format, m.checkpoint_dtype, m.cfg.tensor_dtypes.get()));
    if (gguf) {
        HR_TRY(check_gguf_storage(*gguf, storage, be));
    } else if (m.prequantized) {
        HR_TRY(check_stored_names(*store_opt, specs, storage));
    } else {
        HR_TRY(check_checkpoint(*store_opt, m.cfg, specs));
    }

    // Offsets in the one weights region, 256-byte aligned per part (as the planner counts them).
    std::vector<uint64_t> data_off(specs.size()), scale_off(specs.size());
    uint64_t off = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorBytes tb = stored_tensor_bytes(specs[i], storage[i]);
        data_off[i] = off;
        scale_off[i] = off + tb.data;
        off += tb.total();
    }
    m.weight_bytes = off;
    HR_ASSIGN(void* base, be.allocate(off, "weights"));
    Backend* bep = &be;
    m.region = std::shared_ptr<void>(base, [bep](void* p) { bep->release(p); });
    auto* region = static_cast<uint8_t*>(base);

    // Each tensor goes through a host staging buffer in its storage dtype, then to the backend.
    std::vector<uint8_t> staging, staging_scales;
    std::vector<float> scratch;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& s = specs[i];
        const int64_t rows = spec_rows(s), cols = spec_cols(s);
        const uint64_t dbytes = static_cast<uint64_t>(quant::weight_data_bytes(storage[i], rows, cols));
        const uint64_t sbytes = static_cast<uint64_t>(quant::weight_scale_bytes(storage[i], rows, cols));
        if (gguf) {
            staging.resize(dbytes);
            staging_scales.resize(sbytes);
            HR_TRY(gguf->fill(i, storage[i], staging.data(), sbytes ? staging_scales.data() : nullptr, scratch));
            be.upload(region + data_off[i], staging.data(), dbytes);
            if (sbytes) be.upload(region + scale_off[i], staging_scales.data(), sbytes);
            continue;
        }
        if (m.prequantized) {
            HR_ASSIGN(HostWeight hw, stored_weight(*store_opt, s, storage[i]));
            be.upload(region + data_off[i], hw.data, dbytes);
            if (sbytes) be.upload(region + scale_off[i], hw.scales, sbytes);
            continue;
        }
        const io::TensorInfo* t = store_opt->find(s.hf_name);
        HR_ASSIGN(DType src_dt, io::computable_dtype(*t));
        if (src_dt == storage[i]) {  // no conversion: straight from the mapping
            be.upload(region + data_off[i], t->data, dbytes);
            continue;
        }
        staging.resize(dbytes);
        staging_scales.resize(sbytes);
        HR_TRY(convert_weight(*t, s, storage[i], staging.data(), sbytes ? staging_scales.data() : nullptr));
        be.upload(region + data_off[i], staging.data(), dbytes);
        if (sbytes) be.upload(region + scale_off[i], staging_scales.data(), sbytes);
        if (opts.log_progress && storage[i] != src_dt && (i % 64 == 0))
            log_info("converted {}/{} tensors", i + 1, specs.size());
    }
    be.synchronize();

    // Views in the roles the forward pass uses.
    auto view = [&](size_t i) {
        Weight w;
        w.dtype = storage[i];
        w.rows = spec_rows(specs[i]);
        w.cols = spec_cols(specs[i]);
        w.data = region + data_off[i];
        w.scales = (storage[i] == DType::q8 || storage[i] == DType::q4) ? region + scale_off[i] : nullptr;
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
    HR_CHECK(i == specs.size());
    m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

}  // namespace hr

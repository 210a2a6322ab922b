// Opening and checking a checkpoint for a load (see checkpoint.h).
#include "loader/checkpoint.h"

#include <cmath>
#include <cstring>
#include <set>
#include <span>

#include "core/half.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "memory/weight_format.h"
#include "quant/formats.h"

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
Status check_gguf_storage(const GgufCheckpoint& g, std::span<const DType> storage, DeviceKind device) {
    if (device != DeviceKind::cuda) return ok();
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

Result<Checkpoint> Checkpoint::open(const std::string& path, std::optional<DType> weights, DeviceKind device) {
    Checkpoint c;
    c.path = path;
    // GGUF hook: a .gguf file is a checkpoint whose tensors keep their own dtypes (loader/gguf_checkpoint.h).
    if (is_gguf_file(path)) {
        HR_ASSIGN(c.gguf, GgufCheckpoint::open(path));
        c.cfg = c.gguf->cfg;
        c.checkpoint_dtype = DType::f32;
        HR_ASSIGN(c.weight_format, c.gguf->weight_format(weights));
    } else {
        HR_ASSIGN(c.cfg, load_model_config(path + "/config.json"));
        HR_ASSIGN(c.store, io::TensorStore::open(path));
        HR_ASSIGN(std::optional<DType> preq, prequantized_format(c.store->metadata(), c.store->path()));
        HR_ASSIGN(c.checkpoint_dtype, hr::checkpoint_dtype(*c.store));
        c.prequantized = preq.has_value();
        if (c.prequantized) {
            HR_ASSIGN(c.weight_format, weights_for_prequantized(weights, *preq, c.store->path()));
        } else {
            c.weight_format = weights.value_or(c.checkpoint_dtype);
            if (!(is_plain_float(c.weight_format) || c.weight_format == DType::q8 || c.weight_format == DType::q4))
                return errorf("weight format {} is not supported (expected bf16, f16, f32, int8 or int4)",
                              dtype_name(c.weight_format));
        }
    }
    c.specs = expected_tensors(c.cfg);
    for (const TensorSpec& s : c.specs)
        c.storage.push_back(storage_dtype_for(s, c.weight_format, c.checkpoint_dtype, c.cfg.tensor_dtypes.get()));
    if (c.gguf) {
        HR_TRY(check_gguf_storage(*c.gguf, c.storage, device));
    } else if (c.prequantized) {
        HR_TRY(check_stored_names(*c.store, c.specs, c.storage));
        for (size_t i = 0; i < c.specs.size(); ++i) {
            HR_ASSIGN(HostWeight hw, stored_weight(*c.store, c.specs[i], c.storage[i]));
            c.stored.push_back(hw);
        }
    } else {
        HR_TRY(check_checkpoint(*c.store, c.cfg, c.specs));
        for (const TensorSpec& s : c.specs) c.src.push_back(c.store->find(s.hf_name));
    }
    return c;
}

Status Checkpoint::fill_rows(size_t i, int64_t row0, int64_t n_rows, uint8_t* data, uint8_t* scales,
                             std::vector<float>& scratch) const {
    const TensorSpec& s = specs[i];
    if (gguf) return gguf->fill_rows(i, storage[i], row0, n_rows, data, scales, scratch);
    const auto dr = static_cast<uint64_t>(quant::weight_data_bytes(storage[i], 1, s.cols()));
    const auto sr = static_cast<uint64_t>(quant::weight_scale_bytes(storage[i], 1, s.cols()));
    const uint64_t dskip = static_cast<uint64_t>(row0) * dr, dn = static_cast<uint64_t>(n_rows) * dr;
    const uint64_t sskip = static_cast<uint64_t>(row0) * sr, sn = static_cast<uint64_t>(n_rows) * sr;
    if (prequantized) {  // bytes as stored: no arithmetic
        advise_willneed(static_cast<const uint8_t*>(stored[i].data) + dskip, dn);
        std::memcpy(data, static_cast<const uint8_t*>(stored[i].data) + dskip, dn);
        if (sn) std::memcpy(scales, static_cast<const uint8_t*>(stored[i].scales) + sskip, sn);
        return ok();
    }
    const io::TensorInfo* t = src[i];
    HR_ASSIGN(DType src_dt, io::computable_dtype(*t));
    const uint64_t src_row = static_cast<uint64_t>(s.cols()) * dtype_size(src_dt);
    advise_willneed(t->data + static_cast<uint64_t>(row0) * src_row, static_cast<uint64_t>(n_rows) * src_row);
    if (src_dt == storage[i]) {  // no conversion: straight from the mapping
        std::memcpy(data, t->data + dskip, dn);
        return ok();
    }
    return convert_weight_rows(*t, s, storage[i], row0, n_rows, data, sn ? scales : nullptr);
}

std::optional<Checkpoint::InPlace> Checkpoint::in_place(size_t i) const {
    if (prequantized) return InPlace{static_cast<const uint8_t*>(stored[i].data), static_cast<const uint8_t*>(stored[i].scales)};
    if (gguf) {
        const GgufBinding& b = gguf->bindings[i];
        if (storage[i] != b.dtype || b.permuted_heads > 0) return std::nullopt;
        return InPlace{b.data, nullptr};
    }
    auto dt = io::computable_dtype(*src[i]);
    if (!dt.ok() || *dt != storage[i]) return std::nullopt;
    return InPlace{src[i]->data, nullptr};
}

}  // namespace hr

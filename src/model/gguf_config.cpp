// GGUF metadata -> ModelConfig, and the Hugging Face <-> GGUF tensor name table (one place for every
// architecture headroom reads from GGUF).
#include "model/gguf_config.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "io/safetensors.h"
#include "model/arch/registry.h"
#include "quant/formats.h"
#include "quant/ggml_blocks.h"

namespace hr {

namespace {

// --- the name table ------------------------------------------------------------------------------
// Per-layer tensors: Hugging Face suffix after "model.layers.N." -> GGUF suffix after "blk.N.".
struct LayerRule {
    std::string_view hf;
    std::string_view gguf;
};
constexpr LayerRule kLayerRules[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},           // qwen2
    {"self_attn.k_proj.bias", "attn_k.bias"},           // qwen2
    {"self_attn.v_proj.bias", "attn_v.bias"},           // qwen2
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},  // qwen3, qwen3moe
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},  // qwen3, qwen3moe
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},  // mixtral router
    {"mlp.gate.weight", "ffn_gate_inp.weight"},               // qwen3moe router
};

// One expert's matrix: "<prefix>E.<leaf>" -> expert E of the stacked GGUF tensor (or the legacy
// per-expert tensor "blk.N.<legacy with E>").
struct ExpertRule {
    std::string_view prefix;
    std::string_view leaf;
    std::string_view stacked;
    std::string_view legacy;  // "{}" stands for the expert index
};
constexpr ExpertRule kExpertRules[] = {
    {"block_sparse_moe.experts.", "w1.weight", "ffn_gate_exps.weight", "ffn_gate.{}.weight"},
    {"block_sparse_moe.experts.", "w3.weight", "ffn_up_exps.weight", "ffn_up.{}.weight"},
    {"block_sparse_moe.experts.", "w2.weight", "ffn_down_exps.weight", "ffn_down.{}.weight"},
    {"mlp.experts.", "gate_proj.weight", "ffn_gate_exps.weight", "ffn_gate.{}.weight"},
    {"mlp.experts.", "up_proj.weight", "ffn_up_exps.weight", "ffn_up.{}.weight"},
    {"mlp.experts.", "down_proj.weight", "ffn_down_exps.weight", "ffn_down.{}.weight"},
};

// Reads a decimal index at the front of `s` and the '.' after it; nullopt if there is none.
std::optional<int64_t> take_index(std::string_view& s) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p == s.data() || p == s.data() + s.size() || *p != '.' || v < 0) return std::nullopt;
    s.remove_prefix(static_cast<size_t>(p - s.data()) + 1);
    return v;
}

std::string shape_text(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// --- metadata ------------------------------------------------------------------------------------
// Metadata look-ups that name the file and key in every error.
struct Meta {
    const io::GgufFile& f;
    std::string arch;

    std::string key(std::string_view suffix) const { return fmt::format("{}.{}", arch, suffix); }

    Result<std::optional<int64_t>> opt_int(const std::string& k) const {
        auto r = f.get_int(k);
        if (!r.ok()) return errorf("{}: {}", f.path(), r.error().message);
        return *r;
    }
    Result<int64_t> req_int(const std::string& k, int64_t lo, int64_t hi) const {
        HR_ASSIGN(std::optional<int64_t> v, opt_int(k));
        if (!v) return errorf("{}: metadata key '{}' is missing (expected an integer in [{}, {}])", f.path(), k, lo, hi);
        return in_range(k, *v, lo, hi);
    }
    Result<int64_t> in_range(const std::string& k, int64_t v, int64_t lo, int64_t hi) const {
        if (v < lo || v > hi)
            return errorf("{}: metadata key '{}' = {} is out of range (expected an integer in [{}, {}])", f.path(), k, v,
                          lo, hi);
        return v;
    }
    Result<std::optional<double>> opt_float(const std::string& k) const {
        auto r = f.get_float(k);
        if (!r.ok()) return errorf("{}: {}", f.path(), r.error().message);
        return *r;
    }
};

// Limits no real model reaches; they keep every product of the config far from overflow.
constexpr int64_t kMaxDim = 1 << 18;
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxExperts = 1024;
constexpr int64_t kMaxContext = int64_t{1} << 24;

constexpr const char* kSupportedArchs = "llama (dense, or with experts as Mixtral), qwen2, qwen3, qwen3moe";

}  // namespace

std::optional<GgufSource> gguf_source_for(std::string_view hf) {
    if (hf == "model.embed_tokens.weight") return GgufSource{"token_embd.weight", -1, {}};
    if (hf == "model.norm.weight") return GgufSource{"output_norm.weight", -1, {}};
    if (hf == "lm_head.weight") return GgufSource{"output.weight", -1, {}};
    constexpr std::string_view kLayers = "model.layers.";
    if (!hf.starts_with(kLayers)) return std::nullopt;
    std::string_view rest = hf.substr(kLayers.size());
    const std::optional<int64_t> layer = take_index(rest);
    if (!layer) return std::nullopt;
    for (const LayerRule& r : kLayerRules) {
        if (rest == r.hf) return GgufSource{fmt::format("blk.{}.{}", *layer, r.gguf), -1, {}};
    }
    for (const ExpertRule& r : kExpertRules) {
        if (!rest.starts_with(r.prefix)) continue;
        std::string_view tail = rest.substr(r.prefix.size());
        const std::optional<int64_t> expert = take_index(tail);
        if (!expert || tail != r.leaf) continue;
        return GgufSource{fmt::format("blk.{}.{}", *layer, r.stacked), *expert,
                          fmt::format("blk.{}.{}", *layer, fmt::format(fmt::runtime(r.legacy), *expert))};
    }
    return std::nullopt;
}

bool is_gguf_file(const std::string& path) {
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) return false;
    char magic[4] = {};
    const size_t n = std::fread(magic, 1, 4, fp);
    std::fclose(fp);
    return n == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

Result<std::vector<GgufBinding>> bind_gguf_tensors(const io::GgufFile& f, const ModelConfig& cfg) {
    const std::vector<TensorSpec> specs = expected_tensors(cfg);
    HR_ASSIGN(std::optional<std::string> arch, f.get_string("general.architecture"));
    // convert_hf_to_gguf permutes Q and K rows for the llama architecture only (qwen* keep HF order).
    const bool permuted = arch && *arch == "llama";
    std::set<std::string_view> used;
    std::vector<GgufBinding> out;
    out.reserve(specs.size());
    for (const TensorSpec& s : specs) {
        const std::optional<GgufSource> src = gguf_source_for(s.hf_name);
        if (!src) return errorf("{}: no GGUF name is known for tensor '{}'", f.path(), s.hf_name);
        const io::GgufTensor* t = f.find(src->name);
        int64_t expert = src->expert;
        if (!t && expert >= 0) {
            t = f.find(src->legacy);
            if (t) expert = -1;
        }
        if (!t) {
            return errorf("{}: tensor '{}' (Hugging Face '{}') is missing{}", f.path(), src->name, s.hf_name,
                          expert >= 0 ? fmt::format(" (nor the per-expert '{}')", src->legacy) : std::string());
        }
        if (!t->supported) {
            HR_ASSIGN(DType unused, io::dtype_for_ggml(t->ggml_type, t->name));
            (void)unused;
        }
        GgufBinding b;
        b.tensor = t;
        b.dtype = t->dtype;
        b.rows = 1;
        for (size_t d = 0; d + 1 < s.shape.size(); ++d) b.rows *= s.shape[d];
        b.cols = s.shape.empty() ? 1 : s.shape.back();
        std::vector<int64_t> want = s.shape;
        if (expert >= 0) want.insert(want.begin(), cfg.n_experts);
        if (t->shape != want) {
            return errorf("{}: tensor '{}' (Hugging Face '{}') has shape {}, expected {} from the metadata", f.path(),
                          t->name, s.hf_name, shape_text(t->shape), shape_text(want));
        }
        if (is_ggml_block_dtype(b.dtype)) HR_TRY(quant::check_ggml_cols(b.dtype, b.cols, f.path() + ": tensor '" + t->name + "'"));
        b.row_bytes = quant::weight_data_bytes(b.dtype, 1, b.cols);
        const int64_t per_expert = b.rows * b.row_bytes;
        const int64_t n_slices = expert >= 0 ? cfg.n_experts : 1;
        if (static_cast<uint64_t>(per_expert) * static_cast<uint64_t>(n_slices) != t->nbytes) {
            return errorf("{}: tensor '{}' holds {} bytes, expected {} for {} {} x {} {}", f.path(), t->name, t->nbytes,
                          per_expert * n_slices, n_slices, b.rows, b.cols, dtype_name(b.dtype));
        }
        b.data = t->data + (expert >= 0 ? expert : 0) * per_expert;
        if (permuted && s.hf_name.ends_with("self_attn.q_proj.weight")) b.permuted_heads = cfg.n_heads;
        if (permuted && s.hf_name.ends_with("self_attn.k_proj.weight")) b.permuted_heads = cfg.n_kv_heads;
        used.insert(t->name);
        out.push_back(b);
    }
    for (const io::GgufTensor& t : f.tensors()) {
        if (!used.count(t.name)) {
            return errorf("{}: unexpected tensor '{}' ({} {}): not part of a {} model with {} layers{}{}", f.path(),
                          io::printable_name(t.name), shape_text(t.shape), io::ggml_type_name(t.ggml_type),
                          arch ? *arch : "?", cfg.n_layers, cfg.is_moe() ? fmt::format(", {} experts", cfg.n_experts) : "",
                          cfg.tie_word_embeddings ? ", tied embeddings" : "");
        }
    }
    return out;
}

Result<ModelConfig> gguf_model_config(const io::GgufFile& f) {
    HR_ASSIGN(std::optional<std::string> arch_opt, f.get_string("general.architecture"));
    if (!arch_opt) return errorf("{}: metadata key 'general.architecture' is missing (expected {})", f.path(), kSupportedArchs);
    Meta m{f, *arch_opt};
    ModelConfig c;
    const ArchUnit* unit = find_arch_by_gguf(m.arch);
    if (!unit) {
        return errorf("{}: general.architecture '{}' is not supported (supported: {})", f.path(),
                      io::printable_name(m.arch), kSupportedArchs);
    }
    c.arch = unit->arch;
    // The blocks each architecture implies (llama.cpp writes no key for them).
    c.qkv_bias = c.arch == Architecture::qwen2;
    c.qk_norm = c.arch == Architecture::qwen3 || c.arch == Architecture::qwen3_moe;

    HR_ASSIGN(c.n_layers, m.req_int(m.key("block_count"), 1, kMaxLayers));
    HR_ASSIGN(c.dim, m.req_int(m.key("embedding_length"), 1, kMaxDim));
    HR_ASSIGN(c.n_heads, m.req_int(m.key("attention.head_count"), 1, kMaxDim));
    HR_ASSIGN(std::optional<int64_t> kv, m.opt_int(m.key("attention.head_count_kv")));
    HR_ASSIGN(c.n_kv_heads, m.in_range(m.key("attention.head_count_kv"), kv.value_or(c.n_heads), 1, c.n_heads));
    if (c.n_heads % c.n_kv_heads != 0)
        return errorf("{}: {} ({}) must be a multiple of {} ({})", f.path(), m.key("attention.head_count"), c.n_heads,
                      m.key("attention.head_count_kv"), c.n_kv_heads);
    HR_ASSIGN(std::optional<int64_t> key_len, m.opt_int(m.key("attention.key_length")));
    if (key_len) {
        HR_ASSIGN(c.head_dim, m.in_range(m.key("attention.key_length"), *key_len, 2, kMaxDim));
    } else {
        if (c.dim % c.n_heads != 0)
            return errorf("{}: {} ({}) is not divisible by {} ({}) and {} is absent", f.path(), m.key("embedding_length"),
                          c.dim, m.key("attention.head_count"), c.n_heads, m.key("attention.key_length"));
        c.head_dim = c.dim / c.n_heads;
    }
    if (c.head_dim % 2 != 0)
        return errorf("{}: head dimension must be even for rotary embedding, found {}", f.path(), c.head_dim);
    HR_ASSIGN(std::optional<int64_t> val_len, m.opt_int(m.key("attention.value_length")));
    if (val_len && *val_len != c.head_dim)
        return errorf("{}: {} = {} differs from the key length {} (not supported)", f.path(),
                      m.key("attention.value_length"), *val_len, c.head_dim);
    HR_ASSIGN(std::optional<int64_t> rope_dims, m.opt_int(m.key("rope.dimension_count")));
    if (rope_dims && *rope_dims != c.head_dim)
        return errorf("{}: {} = {} rotates part of each head (partial rotary is not supported; expected {})", f.path(),
                      m.key("rope.dimension_count"), *rope_dims, c.head_dim);
    for (const char* k : {"rope.scaling.type", "rope.scaling.factor"}) {
        if (f.metadata().count(m.key(k))) {
            HR_ASSIGN(std::optional<std::string> st, f.get_string(m.key("rope.scaling.type")));
            if (!(st && *st == "none"))
                return errorf("{}: metadata key '{}' is present: rope scaling is not supported yet", f.path(), m.key(k));
        }
    }
    HR_ASSIGN(c.max_position_embeddings, m.req_int(m.key("context_length"), 1, kMaxContext));
    HR_ASSIGN(std::optional<double> theta, m.opt_float(m.key("rope.freq_base")));
    c.rope_theta = theta.value_or(10000.0);
    if (!(c.rope_theta > 0))
        return errorf("{}: {} must be positive, found {}", f.path(), m.key("rope.freq_base"), c.rope_theta);
    HR_ASSIGN(std::optional<double> eps, m.opt_float(m.key("attention.layer_norm_rms_epsilon")));
    if (!eps)
        return errorf("{}: metadata key '{}' is missing (expected a positive number)", f.path(),
                      m.key("attention.layer_norm_rms_epsilon"));
    c.norm_eps = *eps;
    if (!(c.norm_eps > 0))
        return errorf("{}: {} must be positive, found {}", f.path(), m.key("attention.layer_norm_rms_epsilon"), c.norm_eps);
    HR_ASSIGN(std::optional<int64_t> window, m.opt_int(m.key("attention.sliding_window")));
    c.sliding_window = window.value_or(0);
    if (c.sliding_window < 0)
        return errorf("{}: {} must not be negative, found {}", f.path(), m.key("attention.sliding_window"), c.sliding_window);

    HR_ASSIGN(std::optional<int64_t> n_exp, m.opt_int(m.key("expert_count")));
    HR_ASSIGN(c.n_experts, m.in_range(m.key("expert_count"), n_exp.value_or(0), 0, kMaxExperts));
    if (c.n_experts > 0) {
        if (c.arch == Architecture::llama) c.arch = Architecture::mixtral;  // llama.cpp writes Mixtral as llama
        if (c.arch != Architecture::mixtral && c.arch != Architecture::qwen3_moe)
            return errorf("{}: {} = {} but architecture '{}' has no experts", f.path(), m.key("expert_count"),
                          c.n_experts, m.arch);
        HR_ASSIGN(c.n_experts_active, m.req_int(m.key("expert_used_count"), 1, c.n_experts));
    } else if (c.arch == Architecture::qwen3_moe) {
        return errorf("{}: metadata key '{}' is missing (expected the expert count of a qwen3moe model)", f.path(),
                      m.key("expert_count"));
    }
    HR_ASSIGN(c.ffn_dim, m.req_int(m.key("feed_forward_length"), 1, kMaxDim));
    if (c.arch == Architecture::qwen3_moe) {
        // Qwen3-MoE: experts of expert_feed_forward_length; routing renormalises the top-k weights unless
        // expert_weights_norm says false.
        HR_ASSIGN(c.moe_ffn_dim, m.req_int(m.key("expert_feed_forward_length"), 1, kMaxDim));
        auto norm = f.get_bool(m.key("expert_weights_norm"));
        if (!norm.ok()) return errorf("{}: {}", f.path(), norm.error().message);
        c.routing = norm->value_or(true) ? MoeRouting::softmax_topk_renorm : MoeRouting::softmax_topk;
        // A layer without a router keeps a dense MLP (HF mlp_only_layers / decoder_sparse_step).
        for (int64_t l = 0; l < c.n_layers; ++l) {
            if (!f.find(fmt::format("blk.{}.ffn_gate_inp.weight", l))) c.mlp_only_layers.push_back(l);
        }
        if (c.n_moe_layers() == 0)
            return errorf("{}: {} experts but no layer has a router (blk.N.ffn_gate_inp.weight)", f.path(), c.n_experts);
    }

    // Vocabulary: <arch>.vocab_size, else the token list; the embedding's rows must agree.
    HR_ASSIGN(std::optional<int64_t> vocab, m.opt_int(m.key("vocab_size")));
    if (!vocab) {
        if (const io::GgufArray* toks = f.get_array("tokenizer.ggml.tokens")) vocab = static_cast<int64_t>(toks->size());
    }
    const io::GgufTensor* embd = f.find("token_embd.weight");
    if (!vocab && embd && embd->shape.size() == 2) vocab = embd->shape[0];
    if (!vocab)
        return errorf("{}: the vocabulary size is unknown: no '{}', no tokenizer.ggml.tokens and no token_embd.weight",
                      f.path(), m.key("vocab_size"));
    HR_ASSIGN(c.vocab_size, m.in_range(m.key("vocab_size"), *vocab, 1, kMaxVocab));
    c.tie_word_embeddings = f.find("output.weight") == nullptr;

    HR_ASSIGN(std::optional<int64_t> bos, m.opt_int("tokenizer.ggml.bos_token_id"));
    HR_ASSIGN(std::optional<int64_t> eos, m.opt_int("tokenizer.ggml.eos_token_id"));
    c.bos_token_id = bos.value_or(-1);
    c.eos_token_id = eos.value_or(-1);
    for (int64_t id : {c.bos_token_id, c.eos_token_id}) {
        if (id < -1 || id >= c.vocab_size)
            return errorf("{}: special token id {} is outside the vocabulary (size {})", f.path(), id, c.vocab_size);
    }
    // The values headroom computes from are f32 (every GGUF type dequantizes to f32 exactly).
    c.torch_dtype = DType::f32;

    HR_ASSIGN(std::vector<GgufBinding> bound, bind_gguf_tensors(f, c));
    auto dtypes = std::make_shared<CheckpointDtypes>();
    std::map<DType, int64_t> quantizable_elems;
    const std::vector<TensorSpec> specs = expected_tensors(c);
    for (size_t i = 0; i < specs.size(); ++i) {
        dtypes->by_name.emplace(specs[i].hf_name, bound[i].dtype);
        if (specs[i].quantizable) quantizable_elems[bound[i].dtype] += bound[i].rows * bound[i].cols;
    }
    int64_t best = -1;
    for (const auto& [dt, n] : quantizable_elems) {
        if (n > best) {
            best = n;
            dtypes->native = dt;
        }
    }
    c.tensor_dtypes = std::move(dtypes);
    return c;
}

Result<ModelConfig> load_gguf_model_config(const std::string& path) {
    HR_ASSIGN(std::shared_ptr<io::GgufFile> f, io::GgufFile::open(path));
    return gguf_model_config(*f);
}

}  // namespace hr

// ModelConfig: what the network is (dimensions, experts, rotary, the blocks of each layer), parsed from
// a Hugging Face config.json. The keys each architecture reads live in its unit (model/arch/); this
// file holds the shared fields and the entry points.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/dtype.h"
#include "core/status.h"

namespace hr {

enum class Architecture { llama, mistral, mixtral, qwen2, qwen3, qwen3_moe };

std::string_view architecture_name(Architecture a);  // the HF class name, e.g. "MixtralForCausalLM"

// GGUF (model/gguf_config.h): a checkpoint whose tensors each have their own exact dtype (Q4_1 matrices,
// a Q8_0 embedding, F32 norms). by_name maps every Hugging Face tensor name to its dtype in the file;
// `native` is the dtype holding most quantizable weights, the weight format that `--weights auto` means
// for the file (every tensor kept as stored: memory/weight_format.h).
struct CheckpointDtypes {
    std::map<std::string, DType, std::less<>> by_name;
    DType native = DType::f32;
};

// How a MoE layer turns router logits into expert weights (both: softmax over all experts, top-k).
enum class MoeRouting {
    softmax_topk_renorm,  // Mixtral; Qwen3-MoE with norm_topk_prob: the k weights renormalised to sum to 1
    softmax_topk,         // Qwen3-MoE without norm_topk_prob: the k softmax probabilities as they are
};

// The blocks one decoder layer is built from (model/blocks.h runs them).
enum class FfnKind { dense, moe };
struct LayerDesc {
    bool qkv_bias = false;  // q, k, v projections carry a bias (Qwen2)
    bool qk_norm = false;   // RMSNorm over head_dim per head on q and k, before rotary (Qwen3)
    FfnKind ffn = FfnKind::dense;
};

struct ModelConfig {
    Architecture arch = Architecture::llama;
    int64_t vocab_size = 0;
    int64_t dim = 0;               // hidden_size
    int64_t ffn_dim = 0;           // intermediate_size: dense MLP layers (Mixtral: per expert too)
    int64_t n_layers = 0;
    int64_t n_heads = 0;
    int64_t n_kv_heads = 0;
    int64_t head_dim = 0;          // config head_dim, or dim / n_heads
    int64_t n_experts = 0;         // 0 for dense models
    int64_t n_experts_active = 0;  // top-k
    int64_t max_position_embeddings = 0;
    double rope_theta = 10000.0;
    double norm_eps = 1e-5;
    bool tie_word_embeddings = false;
    int64_t sliding_window = 0;    // 0: none
    int64_t bos_token_id = -1;     // -1: unset
    int64_t eos_token_id = -1;     // first eos id when config lists several
    DType torch_dtype = DType::bf16;
    std::shared_ptr<const CheckpointDtypes> tensor_dtypes;  // GGUF only (gguf_model_config); null otherwise

    // Per-architecture blocks; the defaults are Llama/Mixtral, so a config that sets only the fields
    // above keeps meaning what it meant.
    bool qkv_bias = false;
    bool qk_norm = false;
    int64_t moe_ffn_dim = 0;                // per-expert intermediate size; 0: ffn_dim (Mixtral)
    MoeRouting routing = MoeRouting::softmax_topk_renorm;
    int64_t decoder_sparse_step = 1;        // layer l is MoE when (l + 1) % step == 0 (and not mlp-only)
    std::vector<int64_t> mlp_only_layers;   // layers that keep a dense MLP in a MoE model

    bool is_moe() const { return n_experts > 0; }  // at least one MoE layer
    int64_t q_dim() const { return n_heads * head_dim; }
    int64_t kv_dim() const { return n_kv_heads * head_dim; }
    int64_t expert_ffn_dim() const { return moe_ffn_dim > 0 ? moe_ffn_dim : ffn_dim; }
    bool layer_is_moe(int64_t layer) const;
    int64_t n_moe_layers() const;
    bool has_dense_layers() const { return n_moe_layers() < n_layers; }
    int64_t max_ffn_dim() const;       // the widest MLP intermediate (dense or expert) of any layer
    LayerDesc layer(int64_t l) const;  // the blocks of layer l
};

// Parses and validates config.json text. `source` names the file in error messages.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);
Result<ModelConfig> load_model_config(const std::string& path);  // path to a config.json

// Checks a context length against the config: > max_position_embeddings, or a sliding window shorter
// than the context (not implemented yet), is an error naming both numbers.
Status check_context(const ModelConfig& cfg, int64_t context);

}  // namespace hr

// ModelConfig: what the network is (dimensions, experts, rotary), parsed from a Hugging Face
// config.json for LlamaForCausalLM, MistralForCausalLM and MixtralForCausalLM.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/dtype.h"
#include "core/status.h"

namespace hr {

enum class Architecture { llama, mistral, mixtral };

std::string_view architecture_name(Architecture a);  // the HF class name, e.g. "MixtralForCausalLM"

// GGUF (model/gguf_config.h): a checkpoint whose tensors each have their own exact dtype (Q4_1 matrices,
// a Q8_0 embedding, F32 norms). by_name maps every Hugging Face tensor name to its dtype in the file;
// `native` is the dtype holding most quantizable weights, the weight format that `--weights auto` means
// for the file (every tensor kept as stored: memory/weight_format.h).
struct CheckpointDtypes {
    std::map<std::string, DType, std::less<>> by_name;
    DType native = DType::f32;
};

struct ModelConfig {
    Architecture arch = Architecture::llama;
    int64_t vocab_size = 0;
    int64_t dim = 0;               // hidden_size
    int64_t ffn_dim = 0;           // intermediate_size (per expert for Mixtral)
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

    bool is_moe() const { return n_experts > 0; }
    int64_t q_dim() const { return n_heads * head_dim; }
    int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Parses and validates config.json text. `source` names the file in error messages.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);
Result<ModelConfig> load_model_config(const std::string& path);  // path to a config.json

// Checks a context length against the config: > max_position_embeddings, or a sliding window shorter
// than the context (not implemented yet), is an error naming both numbers.
Status check_context(const ModelConfig& cfg, int64_t context);

}  // namespace hr

// What the architecture units share: typed reads of config.json keys (errors name the file, the key,
// what was expected and what was found), the MoE keys, and the tensor-table blocks a layer is built
// from (norms, attention with optional bias / per-head norm, dense MLP, MoE).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace hr::arch {

using json = nlohmann::json;

// Absent or null leaves `out` unchanged unless `required`.
Status get_int(const json& j, const char* key, const std::string& src, int64_t& out, bool required);
Status get_float(const json& j, const char* key, const std::string& src, double& out, bool required);
Status get_bool(const json& j, const char* key, const std::string& src, bool& out);
Status positive(const std::string& src, const char* key, int64_t v);
// `key` = true is an error saying this architecture does not support it (e.g. attention_bias).
Status reject_true(const json& j, const char* key, const std::string& src, std::string_view arch);

// The keys every architecture shares (sizes, heads, rotary, norms, tie, special ids, dtype).
Status parse_common(const json& j, const std::string& src, ModelConfig& c);
// num_experts_per_tok and the expert count from `experts_key` (or its alternative, when not empty).
Status parse_experts(const json& j, const std::string& src, const char* experts_key, const char* alt_key,
                     ModelConfig& c);
// Qwen's use_sliding_window: false (or absent) means sliding_window is not in effect.
Status parse_use_sliding_window(const json& j, const std::string& src, ModelConfig& c);

// --- tensor-table blocks: prefix is "model.layers.<l>." ------------------------------------------------
std::string layer_prefix(int64_t layer);
// input_layernorm and post_attention_layernorm.
void norm_tensors(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out);
// self_attn.{q,k,v,o}_proj.weight, with q/k/v .bias when c.qkv_bias, q_norm/k_norm when c.qk_norm.
void attention_tensors(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out);
struct MlpNames {
    std::string_view gate, up, down;  // e.g. "gate_proj", "up_proj", "down_proj" or "w1", "w3", "w2"
};
// <block>.<gate|up|down>.weight of a dense MLP of width c.ffn_dim; block e.g. "mlp".
void dense_mlp_tensors(const ModelConfig& c, int64_t l, std::string_view block, const MlpNames& n,
                       std::vector<TensorSpec>& out);
// <block>.<router>.weight and <block>.experts.<e>.<gate|up|down>.weight of width c.expert_ffn_dim().
void moe_tensors(const ModelConfig& c, int64_t l, std::string_view block, std::string_view router, const MlpNames& n,
                 std::vector<TensorSpec>& out);

}  // namespace hr::arch

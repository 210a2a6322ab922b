// The registry of architecture units: one unit per architecture (one file each in model/arch/), looked
// up by the Hugging Face class name (config.json architectures[0]), by model_type, or by the GGUF
// general.architecture. Adding an architecture is one file plus one line in registry.cpp.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace hr {

struct ArchUnit {
    Architecture arch;
    std::string_view hf_class;    // e.g. "Qwen3MoeForCausalLM"
    std::string_view model_type;  // config.json model_type, e.g. "qwen3_moe"
    std::string_view gguf_arch;   // GGUF general.architecture, e.g. "qwen3moe" ("" when GGUF names it otherwise)
    // Reads the architecture's own config.json keys into cfg (the shared keys are already read:
    // model/arch/common.h) and sets its blocks (qkv_bias, qk_norm, experts, routing, sparse layers).
    Status (*parse_config)(const nlohmann::json& j, const std::string& src, ModelConfig& cfg);
    // Appends layer l's tensors (HF names, shapes, roles, slots) to the table.
    void (*layer_tensors)(const ModelConfig& cfg, int64_t layer, std::vector<TensorSpec>& out);
};

std::span<const ArchUnit* const> arch_units();
const ArchUnit& arch_unit(Architecture a);
const ArchUnit* find_arch_by_hf_class(std::string_view hf_class);      // null when unknown
const ArchUnit* find_arch_by_model_type(std::string_view model_type);  // null when unknown
const ArchUnit* find_arch_by_gguf(std::string_view gguf_arch);         // null when unknown
std::string supported_architectures();  // "LlamaForCausalLM, ..." for error messages

}  // namespace hr

// A GGUF file seen as a Hugging Face checkpoint: the ModelConfig from its metadata, and the one table
// that maps each Hugging Face tensor name of that config to the GGUF tensor holding it (llama, mixtral
// as llama with experts, qwen2, qwen3, qwen3moe). The loader and the planner read GGUF files through
// these two functions only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace hr {

// True when `path` is a regular file starting with the GGUF magic (the extension is not trusted).
bool is_gguf_file(const std::string& path);

// Where a Hugging Face tensor lives in a GGUF file: `name`, and for one expert of a stacked
// [n_experts, rows, cols] tensor (blk.N.ffn_gate_exps.weight) its index; -1 for a whole tensor.
// `legacy` is the per-expert name older converters wrote (blk.N.ffn_gate.E.weight), tried second.
struct GgufSource {
    std::string name;
    int64_t expert = -1;
    std::string legacy;
};
// The name table; nullopt for a name it does not know.
std::optional<GgufSource> gguf_source_for(std::string_view hf_name);

// One spec of expected_tensors(cfg) bound to the bytes that hold it.
struct GgufBinding {
    const io::GgufTensor* tensor = nullptr;  // the GGUF tensor (the stacked one for an expert)
    DType dtype = DType::f32;                // exact dtype of the values (tensor->dtype)
    const uint8_t* data = nullptr;           // the spec's bytes: rows x row_bytes
    int64_t rows = 0, cols = 0;              // as the spec: [out, in]; a vector is 1 x n
    int64_t row_bytes = 0;
    // llama.cpp permuted this projection's rows for its rope (llama architecture, Q and K): the head
    // count to undo it with (io::unpermute_qk_row_bytes); 0 when the rows are in Hugging Face order.
    int64_t permuted_heads = 0;
};

// Binds every spec of expected_tensors(cfg) (same order) to the file: each present with the spec's
// shape and a dtype headroom holds exactly, rows a whole number of blocks, and no GGUF tensor left
// over. Errors name the tensor (both names) and what was expected and found.
Result<std::vector<GgufBinding>> bind_gguf_tensors(const io::GgufFile& f, const ModelConfig& cfg);

// The ModelConfig of a GGUF file from its metadata (general.architecture and <arch>.* keys; see
// docs/formats.md), with cfg.tensor_dtypes filled from bind_gguf_tensors (so a config that parses is
// one whose tensors load). Errors name the key, what was expected and what was found.
Result<ModelConfig> gguf_model_config(const io::GgufFile& f);

// Opens `path` and returns its config (plan, serve: no tensor data is read).
Result<ModelConfig> load_gguf_model_config(const std::string& path);

}  // namespace hr

// GGUF -> pre-quantized model directory (see quantize_gguf.h).
#include "quantize_gguf.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "loader/gguf_checkpoint.h"
#include "memory/weight_format.h"

namespace hr::app {

namespace {

// A Hugging Face config.json that parse_model_config reads back to the same ModelConfig.
nlohmann::ordered_json hf_config(const ModelConfig& c) {
    const bool moe = c.is_moe();
    nlohmann::ordered_json j = {
        {"architectures", {std::string(architecture_name(c.arch))}},
        {"model_type", moe ? "mixtral" : "llama"},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.dim},
        {"intermediate_size", c.ffn_dim},
        {"num_hidden_layers", c.n_layers},
        {"num_attention_heads", c.n_heads},
        {"num_key_value_heads", c.n_kv_heads},
        {"head_dim", c.head_dim},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rope_theta", c.rope_theta},
        {"rms_norm_eps", c.norm_eps},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"hidden_act", "silu"},
        {"torch_dtype", "float32"},
    };
    if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
    if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
    if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
    if (moe) {
        j["num_local_experts"] = c.n_experts;
        j["num_experts_per_tok"] = c.n_experts_active;
    }
    return j;
}

}  // namespace

Result<QuantizeStats> quantize_gguf(const std::string& path, DType format, const std::string& out_dir) {
    HR_ASSIGN(GgufCheckpoint ck, GgufCheckpoint::open(path));
    // Everything that is not quantized is written as f32 (the exact dequantized values), so that the
    // directory is an ordinary f32 checkpoint to the pre-quantized loader.
    std::vector<DType> storage;
    for (const TensorSpec& s : ck.specs) storage.push_back(storage_dtype_for(s, format, DType::f32));
    std::vector<float> scratch;
    auto source = [&](size_t i) -> Result<io::TensorInfo> {
        HR_TRY(ck.dequantize(i, scratch));
        io::TensorInfo t;
        t.name = ck.specs[i].hf_name;
        t.dtype = "F32";
        t.shape = ck.specs[i].shape;
        t.data = reinterpret_cast<const uint8_t*>(scratch.data());
        t.nbytes = scratch.size() * sizeof(float);
        t.file = path;
        return t;
    };
    HR_ASSIGN(QuantizeStats stats,
              write_quantized_checkpoint(source, ck.specs, storage, format, out_dir + "/model.safetensors"));
    const std::string cfg_path = out_dir + "/config.json";
    std::ofstream f(cfg_path, std::ios::binary | std::ios::trunc);
    f << hf_config(ck.cfg).dump(2) << "\n";
    if (!f) return errorf("cannot write '{}'", cfg_path);
    return stats;
}

}  // namespace hr::app

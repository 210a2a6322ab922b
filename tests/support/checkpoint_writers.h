// Checkpoints written by tests: a synthetic Hugging Face directory whose dimensions every weight format can
// split over 2 tensor-parallel ranks (int4 groups of 128, ggml blocks of 32), and a GGUF file laid out as
// llama.cpp's converter does (GGUF names, Q and K rows permuted for its rope, experts stacked), from any
// safetensors model directory, in BF16 or with the matrices in Q8_0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/half.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/gguf_config.h"
#include "model/gguf_metadata.h"
#include "model/tensor_names.h"

namespace hr::test {

// config.json of a small Mixtral (moe) or Llama (dense): dim 256, 4 q heads of 64 (2 KV heads), FFN 256,
// 2 layers, vocab 128: wo's and w2's halves are 128 columns, so int4 and Q8_0 split on their blocks.
inline std::string synthetic_config_json(bool moe) {
    std::string j = R"({"architectures": [")";
    j += moe ? "MixtralForCausalLM" : "LlamaForCausalLM";
    j += R"("], "model_type": ")";
    j += moe ? "mixtral" : "llama";
    j += R"(", "hidden_size": 256, "intermediate_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "vocab_size": 128, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        "bos_token_id": 1, "eos_token_id": 2)";
    if (moe) j += R"(, "num_local_experts": 4, "num_experts_per_tok": 2)";
    return j + "}";
}

// Writes config.json and model.safetensors (BF16, deterministic values: norms near 1, matrices in
// [-0.5, 0.5) with a few larger ones so that int8 row scales differ from the slices' own).
inline Status write_synthetic_model(const std::string& dir, bool moe) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/config.json") << synthetic_config_json(moe);
    HR_ASSIGN(ModelConfig cfg, load_model_config(dir + "/config.json"));
    std::vector<std::vector<uint16_t>> values;
    std::vector<io::TensorToWrite> out;
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (const TensorSpec& s : expected_tensors(cfg)) {
        std::vector<uint16_t> v(static_cast<size_t>(s.numel()));
        for (size_t k = 0; k < v.size(); ++k) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            float x = static_cast<float>((state >> 40) & 0xffff) / 65536.0f - 0.5f;
            if (k % 97 == 13) x *= 7.0f;  // outliers: a row's absmax sits in one column slice only
            if (s.role == TensorRole::norm) x = 1.0f + 0.1f * x;
            v[k] = f32_to_bf16(x);
        }
        values.push_back(std::move(v));
        out.push_back({s.hf_name, "BF16", s.shape, values.back().data(), values.back().size() * 2});
    }
    return io::write_safetensors(dir + "/model.safetensors", out, {});
}

// One Q8_0 row (blocks of 32: an f16 scale, 32 int8) of bf16 values.
inline void q8_0_row(const uint16_t* bf16, int64_t cols, uint8_t* out) {
    for (int64_t b = 0; b < cols / 32; ++b) {
        float amax = 0;
        for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(bf16_to_f32(bf16[b * 32 + k])));
        const uint16_t d = f32_to_f16(amax / 127.0f);
        const float df = f16_to_f32(d);
        uint8_t* blk = out + b * 34;
        std::memcpy(blk, &d, 2);
        for (int k = 0; k < 32; ++k) {
            const float q = df > 0 ? std::round(bf16_to_f32(bf16[b * 32 + k]) / df) : 0.0f;
            blk[2 + k] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
        }
    }
}

// The model directory `src` (BF16 safetensors) as a GGUF file at `path`; q8_0: attention, MLP and expert
// matrices in Q8_0 (their columns a multiple of 32), the rest BF16.
class GgufWriter {
public:
    Status write(const std::string& src, const std::string& path, bool q8_0) {
        HR_ASSIGN(ModelConfig c, load_model_config(src + "/config.json"));
        HR_ASSIGN(auto st, io::SafetensorsFile::open(src + "/model.safetensors"));
        // convert_hf_to_gguf permutes Q/K rows for the llama architecture (Mistral, Mixtral) only.
        const bool permute = c.arch != Architecture::qwen2 && c.arch != Architecture::qwen3 && c.arch != Architecture::qwen3_moe;
        std::map<std::string, io::GgufTensorToWrite> out;  // by GGUF name
        for (const TensorSpec& s : expected_tensors(c)) {
            const io::TensorInfo* t = st->find(s.hf_name);
            if (!t || t->dtype != "BF16") return errorf("tensor '{}' missing or not BF16", s.hf_name);
            const auto g = gguf_source_for(s.hf_name);
            if (!g) return errorf("no GGUF name for '{}'", s.hf_name);
            const int64_t cols = s.cols(), rows = s.rows();
            const bool quant = q8_0 && s.shape.size() == 2 &&
                               (s.role == TensorRole::attention || s.role == TensorRole::mlp || s.role == TensorRole::expert);
            if (quant && cols % 32 != 0) return errorf("'{}': {} columns are not Q8_0 blocks", s.hf_name, cols);
            const int64_t row_bytes = quant ? cols / 32 * 34 : cols * 2;
            std::vector<uint8_t> bytes(static_cast<size_t>(rows * row_bytes));
            for (int64_t r = 0; r < rows; ++r) {
                const auto* row = reinterpret_cast<const uint16_t*>(t->data) + r * cols;
                if (quant) q8_0_row(row, cols, bytes.data() + r * row_bytes);
                else std::memcpy(bytes.data() + r * row_bytes, row, static_cast<size_t>(cols * 2));
            }
            int64_t heads = 0;
            if (permute && s.hf_name.ends_with("q_proj.weight")) heads = c.n_heads;
            if (permute && s.hf_name.ends_with("k_proj.weight")) heads = c.n_kv_heads;
            if (heads) bytes = permute_rows(bytes, rows, row_bytes, heads);
            const uint32_t type = static_cast<uint32_t>(quant ? io::GgmlType::Q8_0 : io::GgmlType::BF16);
            auto& buf = bufs_[g->name];
            buf.insert(buf.end(), bytes.begin(), bytes.end());  // experts in order 0..E-1
            std::vector<int64_t> shape = s.shape;
            if (g->expert >= 0) shape.insert(shape.begin(), g->expert + 1);
            out[g->name] = {g->name, shape, type, nullptr, buf.size()};
        }
        std::vector<io::GgufTensorToWrite> list;
        for (auto& [name, t] : out) {
            t.data = bufs_[name].data();
            list.push_back(t);
        }
        return io::write_gguf(path, gguf_metadata_for(c), list);
    }

private:
    // llama.cpp's permutation: within each head, GGUF row 2i + s holds HF row s * hd/2 + i.
    static std::vector<uint8_t> permute_rows(const std::vector<uint8_t>& src, int64_t rows, int64_t row_bytes,
                                             int64_t heads) {
        std::vector<uint8_t> out(src.size());
        const int64_t hd = rows / heads;
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < hd / 2; ++i)
                for (int64_t s = 0; s < 2; ++s)
                    std::memcpy(out.data() + (h * hd + 2 * i + s) * row_bytes,
                                src.data() + (h * hd + s * hd / 2 + i) * row_bytes, static_cast<size_t>(row_bytes));
        return out;
    }
    std::map<std::string, std::vector<uint8_t>> bufs_;
};

}  // namespace hr::test

// Config, Hugging Face names and conversion error of a GGUF file for `headroom inspect` (inspect_gguf.cpp).
#include "inspect_gguf_model.h"

#include <cmath>

#include <fmt/format.h>

#include "loader/gguf_checkpoint.h"
#include "memory/weight_format.h"
#include "model_args.h"

namespace hr::app {

namespace {

using ojson = nlohmann::ordered_json;

ojson config_to_json(const ModelConfig& c) {
    return {{"architecture", std::string(architecture_name(c.arch))},
            {"vocab_size", c.vocab_size},
            {"dim", c.dim},
            {"ffn_dim", c.ffn_dim},
            {"n_layers", c.n_layers},
            {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"n_experts", c.n_experts},
            {"n_experts_active", c.n_experts_active},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rope_theta", c.rope_theta},
            {"norm_eps", c.norm_eps},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"sliding_window", c.sliding_window},
            {"bos_token_id", c.bos_token_id},
            {"eos_token_id", c.eos_token_id},
            {"native_weight_format", std::string(dtype_name(c.tensor_dtypes->native))}};
}

}  // namespace

Result<ojson> gguf_model_section(const std::string& path, const std::string& weights) {
    ojson out;
    Result<GgufCheckpoint> ck = GgufCheckpoint::open(path);
    if (!ck.ok()) {
        if (!weights.empty()) return ck.take_error();
        out["config"] = nullptr;
        out["config_error"] = ck.error().message;
        return out;
    }
    out["config"] = config_to_json(ck->cfg);
    ojson names = ojson::object();
    for (size_t i = 0; i < ck->specs.size(); ++i) {
        const std::string& g = ck->bindings[i].tensor->name;
        if (!names.contains(g)) names[g] = ck->specs[i].hf_name;  // a stacked expert tensor: its first expert
    }
    out["hf_names"] = std::move(names);
    if (weights.empty()) return out;

    HR_ASSIGN(std::optional<DType> wf, weights_option(weights));
    HR_ASSIGN(DType format, ck->weight_format(wf));
    ojson rows = ojson::array();
    double num = 0, den = 0;
    std::vector<float> values;
    for (size_t i = 0; i < ck->specs.size(); ++i) {
        const TensorSpec& s = ck->specs[i];
        const DType to = storage_dtype_for(s, format, DType::f32, ck->cfg.tensor_dtypes.get());
        const DType from = ck->bindings[i].dtype;
        if (to == from) continue;  // kept exactly as stored
        HR_TRY(ck->dequantize(i, values));
        HR_ASSIGN(double e, conversion_error(values, s, to));
        double sq = 0;
        for (float v : values) sq += static_cast<double>(v) * v;
        num += e * e * sq;
        den += sq;
        rows.push_back({{"name", s.hf_name}, {"from", dtype_name(from)}, {"to", dtype_name(to)}, {"rel_l2", e}});
    }
    out["conversion"] = {{"weights", weights}, {"rel_l2", den > 0 ? std::sqrt(num / den) : 0.0}, {"tensors", rows}};
    return out;
}

void print_gguf_model_section(const ojson& s) {
    if (s["config"].is_null()) {
        fmt::print("\nconfig: {}\n", s["config_error"].get<std::string>());
        return;
    }
    fmt::print("\nconfig (from the metadata):\n");
    for (const auto& [k, v] : s["config"].items()) fmt::print("  {:<24} {}\n", k, v.dump());
    if (!s.contains("conversion")) return;
    const ojson& c = s["conversion"];
    fmt::print("\nconversion to --weights {} from the dequantized GGUF values (relative L2 error):\n",
               c["weights"].get<std::string>());
    size_t w = 4;
    for (const auto& r : c["tensors"]) w = std::max(w, r["name"].get<std::string>().size());
    for (const auto& r : c["tensors"]) {
        fmt::print("  {:<{}}  {:>5} -> {:<5}  {:.3e}\n", r["name"].get<std::string>(), w, r["from"].get<std::string>(),
                   r["to"].get<std::string>(), r["rel_l2"].get<double>());
    }
    fmt::print("  all converted tensors: {:.3e} ({} tensors; the others are kept exactly)\n", c["rel_l2"].get<double>(),
               c["tensors"].size());
}

}  // namespace hr::app

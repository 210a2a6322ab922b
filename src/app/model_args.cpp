// Shared model-loading options of the CLI.
#include "model_args.h"

#include <charconv>

#include "backend/cpu/cpu_backend.h"
#include "memory/weight_format.h"
#ifdef HEADROOM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace hr::app {

void add_model_options(CLI::App& cmd, ModelArgs& a) {
    cmd.add_option("--model", a.model_dir, "Hugging Face model directory (config.json, *.safetensors) or a GGUF file")->required();
    cmd.add_option("--weights", a.weights, "weight format: bf16, f16, f32, int8, int4 or auto (the checkpoint's own; for GGUF each tensor exactly as stored)");
    cmd.add_option("--device", a.device, "cpu or cuda");
    cmd.add_option("--kv-cache,--kv-dtype", a.kv_cache,
                   "KV cache: f16, bf16, f32, int8 or fp8 (int8/fp8: one f32 scale per token and kv head; "
                   "default f32 on cpu; serve: f16 on cuda)");
}

Result<DType> kv_cache_option(const ModelArgs& a, DType fallback) {
    if (a.kv_cache.empty()) return fallback;
    return parse_kv_dtype(a.kv_cache);
}

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
    if (device == "cpu") return cpu::make_cpu_backend();
#ifdef HEADROOM_HAVE_CUDA
    if (device == "cuda") return cuda::make_cuda_backend(0);
    return errorf("--device: expected cpu or cuda, found '{}'", device);
#else
    if (device == "cuda") return errorf("--device cuda: this build of headroom has no CUDA backend (built without nvcc)");
    return errorf("--device: expected cpu, found '{}'", device);
#endif
}

Result<std::optional<DType>> weights_option(const std::string& text) {
    if (text == "f32") return std::optional<DType>{DType::f32};
    return parse_weight_format(text);
}

Result<std::vector<int32_t>> parse_token_ids(const std::string& text) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i <= text.size()) {
        size_t j = text.find(',', i);
        if (j == std::string::npos) j = text.size();
        const std::string part = text.substr(i, j - i);
        int32_t v = 0;
        auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || ec != std::errc() || p != part.data() + part.size() || v < 0)
            return errorf("--token-ids: expected comma-separated non-negative integers, found '{}'", part);
        ids.push_back(v);
        i = j + 1;
    }
    return ids;
}

}  // namespace hr::app

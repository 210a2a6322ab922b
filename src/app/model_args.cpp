// Shared model-loading options of the CLI.
#include "model_args.h"

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "io/tensor_store.h"
#include "memory/host_memory.h"
#include "memory/plan.h"
#include "memory/weight_format.h"
#include "model/gguf_config.h"
#include "model/quantize_weights.h"
#ifdef HEADROOM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/model_workspace.h"
#endif

namespace hr::app {

void add_model_options(CLI::App& cmd, ModelArgs& a) {
    cmd.add_option("--model", a.model_dir, "Hugging Face model directory (config.json, *.safetensors) or a GGUF file")->required();
    cmd.add_option("--weights", a.weights, "weight format: bf16, f16, f32, int8, int4 or auto (the checkpoint's own; for GGUF each tensor exactly as stored)");
    cmd.add_option("--device", a.device, "cpu or cuda");
    cmd.add_option("--kv-cache,--kv-dtype", a.kv_cache,
                   "KV cache: f16, bf16, f32, int8 or fp8 (int8/fp8: one f32 scale per token and kv head; "
                   "default f32 on cpu; serve: f16 on cuda)");
    cmd.add_option("--offload-experts", a.offload_experts,
                   "MoE experts kept in pinned host memory: auto (the fewest that fit the device) or a number of "
                   "(layer, expert) instances: the coldest by the checkpoint's router statistics (quantize --calibrate), "
                   "else spread evenly over the layers; never without this flag");
    cmd.add_option("--offload-compute", a.offload_compute,
                   "batch-1 decode with --offload-experts on a GPU: gpu (the GPU reads the selected host experts over "
                   "the link), cpu (the CPU computes them next to the GPU's work) or auto (the faster by rates "
                   "measured at start-up)")
        ->capture_default_str();
}

Result<OffloadCompute> offload_compute_option(const ModelArgs& a) { return parse_offload_compute(a.offload_compute); }

Result<DType> kv_cache_option(const ModelArgs& a, DType fallback) {
    if (a.kv_cache.empty()) return fallback;
    return parse_kv_dtype(a.kv_cache);
}

Result<std::shared_ptr<const ExpertHits>> checkpoint_expert_hits(const std::string& model_path, const ModelConfig& cfg) {
    std::error_code ec;
    namespace fs = std::filesystem;
    // Only a directory with safetensors weights can hold them (plan also takes a bare config directory).
    if (is_gguf_file(model_path) || !fs::is_directory(model_path, ec) ||
        (!fs::exists(fs::path(model_path) / "model.safetensors", ec) &&
         !fs::exists(fs::path(model_path) / "model.safetensors.index.json", ec)))
        return std::shared_ptr<const ExpertHits>{};
    HR_ASSIGN(io::TensorStore store, io::TensorStore::open(model_path));
    return expert_hits_of(store.metadata(), cfg, store.path());
}

Result<ExpertPlacement> offload_placement(const ModelArgs& a, int64_t context) {
    if (a.offload_experts.empty()) return ExpertPlacement{};
    HR_ASSIGN(OffloadRequest o, parse_offload_experts(a.offload_experts));
    const bool gguf = is_gguf_file(a.model_dir);
    HR_ASSIGN(ModelConfig cfg, gguf ? load_gguf_model_config(a.model_dir) : load_model_config(a.model_dir + "/config.json"));
    HR_ASSIGN(std::shared_ptr<const ExpertHits> hits, checkpoint_expert_hits(a.model_dir, cfg));
    if (!o.automatic) return place_experts(cfg, o.experts, hits.get());
    if (a.device != "cuda") {
        if (!cfg.is_moe()) return errorf("--offload-experts auto: the model has no MoE experts to keep in host memory");
        return ExpertPlacement{.n_host = 0, .n_experts = cfg.n_experts,
                               .host_per_layer = std::vector<int64_t>(static_cast<size_t>(cfg.n_layers), 0)};
    }
    PlanRequest req;
    HR_ASSIGN(req.weight_format, weights_option(a.weights));
    if (!req.weight_format && !gguf) {
        HR_ASSIGN(io::TensorStore store, io::TensorStore::open(a.model_dir));
        HR_ASSIGN(req.weight_format, prequantized_format(store.metadata(), store.path()));
    }
    if (!req.weight_format)
        return errorf("--offload-experts auto needs --weights (bf16, f16, int8 or int4): the format decides how many "
                      "experts must move");
#ifdef HEADROOM_HAVE_CUDA
    HR_ASSIGN(cuda::DeviceMemory dm, cuda::query_device_memory(0));
    req.budget_bytes = dm.total;
#else
    return errorf("--device cuda: this build of headroom has no CUDA backend (built without nvcc)");
#endif
    req.device_name = "cuda:0";
    HR_ASSIGN(req.kv_dtype, kv_cache_option(a, DType::f16));
    req.context = std::max<int64_t>(1, std::min(context, cfg.max_position_embeddings));
    req.suggest = false;
    req.offload = o;
    req.expert_hits = hits;
    req.host_available_bytes = read_mem_available();
    HR_ASSIGN(MemoryPlan plan, plan_memory(cfg, req));
    if (!plan.fits)
        return errorf("--offload-experts auto: the model does not fit cuda:0 ({}) even with every expert in host "
                      "memory (short by {})", format_bytes(plan.budget_bytes), format_bytes(plan.shortfall_bytes()));
    return plan.offload;
}

#ifdef HEADROOM_HAVE_CUDA
Status reserve_cuda_workspace(cuda::CudaBackend& be, const ModelConfig& c, int64_t max_tokens) {
    return be.reserve_workspace(cuda::workspace_spec_for(c, max_tokens));
}
#endif

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

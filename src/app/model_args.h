// Options shared by the commands that load a model (--model, --weights, --device) and the code that
// turns them into a backend and a loaded model.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "backend/backend.h"
#include "loader/load.h"
#include "memory/expert_hits.h"

#ifdef HEADROOM_HAVE_CUDA
namespace hr::cuda {
class CudaBackend;
}
#endif

namespace hr::app {

#ifdef HEADROOM_HAVE_CUDA
// Reserves a CUDA backend's workspaces for steps of up to max_tokens tokens of model c (the engine's
// backend in serve, each rank's in tensor parallel; c is the rank-local config there).
Status reserve_cuda_workspace(cuda::CudaBackend& be, const ModelConfig& c, int64_t max_tokens);
#endif

struct ModelArgs {
    std::string model_dir;
    std::string weights = "auto";  // bf16 | f16 | f32 | int8 | int4 | auto
    std::string device = "cpu";    // cpu | cuda
    std::string kv_cache;          // f16 | bf16 | f32 | int8 | fp8; empty: the command's default
    std::string offload_experts;   // --offload-experts auto | N; empty: nothing offloaded
    std::string offload_compute = "auto";  // --offload-compute auto | gpu | cpu (with offloaded experts)
};

void add_model_options(CLI::App& cmd, ModelArgs& a);

// Backend for --device; an error names the devices this build has.
Result<std::unique_ptr<Backend>> make_backend(const std::string& device);

// --weights as a LoadOptions format. "auto" keeps the checkpoint's dtype here (the commands that plan
// memory resolve auto through the planner).
Result<std::optional<DType>> weights_option(const std::string& text);

// --kv-cache as a dtype (core/kv_quant.h for int8 / fp8), or `fallback` when it was not given.
Result<DType> kv_cache_option(const ModelArgs& a, DType fallback);
// --offload-experts for the commands that load without a memory plan of their own (generate, classify,
// logits): a count is placed as given (memory/expert_offload.h); auto plans the model for one sequence
// of `context` tokens on the device (CUDA: the card's total memory) and takes the fewest experts that fit
// (on the CPU backend the host is the device: auto offloads nothing). Empty: nothing offloaded.
Result<ExpertPlacement> offload_placement(const ModelArgs& a, int64_t context);

// The router statistics recorded in the checkpoint at `model_path` (`headroom quantize --calibrate`;
// memory/expert_hits.h), checked against cfg: null for a GGUF file, a built-in name, a config.json, a
// directory without model.safetensors(.index.json) or a checkpoint without them. --offload-experts then keeps the coldest experts in host memory.
Result<std::shared_ptr<const ExpertHits>> checkpoint_expert_hits(const std::string& model_path, const ModelConfig& cfg);

// --offload-compute as the mode to ask the loader for (memory/offload_compute.h).
Result<OffloadCompute> offload_compute_option(const ModelArgs& a);

// Reads a comma-separated list of token ids ("1,415,2936").
Result<std::vector<int32_t>> parse_token_ids(const std::string& text);

}  // namespace hr::app

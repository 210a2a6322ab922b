// Loads a Hugging Face model directory (or a GGUF file: loader/gguf_checkpoint.h) onto a backend: config,
// every tensor checked against the config's tensor table, converted or quantized to its storage dtype, and
// placed in ONE allocation.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "core/byte_progress.h"
#include "core/status.h"
#include "loader/load_memory.h"
#include "memory/expert_offload.h"
#include "memory/offload_compute.h"
#include "model/config.h"
#include "model/weights.h"

namespace hr {

struct LoadOptions {
    // Weight format of the quantizable matrices: bf16, f16, f32, q8 (int8) or q4 (int4);
    // nullopt keeps the checkpoint's own dtype (or the format of a pre-quantized checkpoint; for a GGUF
    // file every tensor's own dtype, exactly: cfg.tensor_dtypes->native).
    std::optional<DType> weights;
    bool log_progress = false;  // a progress bar (progress_tty) or log lines while the weights load
    bool progress_tty = false;
    int threads = 0;            // reader threads (0: one per core, at most kMaxLoadThreads)
    uint64_t staging_bytes = 0; // bytes of one staging buffer and of a chunk (0: kLoadSlotBytes, 32 MiB)
    // int8 quantize-on-load on the device where the backend can (CUDA: backend/cuda/quantize_q8.cu).
    // Off by default until tests/parity/load_pipeline_parity_test.cpp has run on a GPU (written on a
    // machine without one, 2026-12-07); the host quantizer gives the same bytes, only slower.
    bool device_quantize = false;
    // Bytes landed so far, readable from other threads while loading (GET /health); null: not shared.
    ByteProgress* progress = nullptr;
    // TEST ONLY (HEADROOM_LOAD_DELAY_MS, runtime/fault_injection.h): seconds of sleep spread over the load,
    // so that a test can watch a start-up on a tiny model.
    double injected_delay_s = 0;
    // --offload-experts: these experts go to one host region (Backend::allocate_host) instead of the
    // weights region, their Weights marked host (core/tensor.h). Default: none.
    ExpertPlacement offload;
    // --offload-compute: with host experts on a GPU backend, probe and choose how batch-1 decode computes
    // them and set it on the backend (loader/offload_compute_setup.h). nullopt: the backend's mode is left
    // as it is (gpu unless set: the GPU reads them over the link).
    std::optional<OffloadCompute> offload_compute;
    // The loader's host memory besides the weights' destination (staging buffers, scratch), counted with
    // its peak while loading; null: not counted.
    LoadMemory* memory = nullptr;
};

// A model resident on a backend. Owns the weights region (released through the backend).
struct LoadedModel {
    ModelConfig cfg;
    ModelWeights weights;
    DType checkpoint_dtype = DType::bf16;  // float dtype of the checkpoint's unquantized tensors
    DType weight_format = DType::bf16;     // storage of the quantizable matrices
    bool prequantized = false;             // the checkpoint itself held int8/int4 tensors
    uint64_t weight_bytes = 0;             // size of the one weights allocation
    double load_seconds = 0.0;
    std::shared_ptr<void> region;          // the weights allocation
    // --offload-experts: the host region (null when nothing is offloaded) and what it holds.
    std::shared_ptr<void> host_region;
    uint64_t host_bytes = 0;
    int64_t offloaded_experts = 0;
    // The --offload-compute choice made at load (LoadOptions::offload_compute; nullopt: none was made).
    std::optional<OffloadComputeChoice> offload_compute;
};

Result<LoadedModel> load_model(const std::string& model_dir, Backend& be, const LoadOptions& opts);

// Bytes load_model() allocates for cfg in this format, from the same per-tensor table the planner uses.
uint64_t stored_weight_bytes(const ModelConfig& cfg, DType weight_format, DType checkpoint_dtype);

}  // namespace hr

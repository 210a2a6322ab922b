// --offload-compute at start-up (memory/offload_compute.h): once a model with experts in host memory is on
// a GPU backend, probe one host expert both ways (Backend::probe_offload_compute), choose the mode from
// the measured rates (or take the one asked for) and set it on the backend. Called by load_model when
// LoadOptions::offload_compute is given.
#pragma once

#include "backend/backend.h"
#include "core/status.h"
#include "memory/expert_offload.h"
#include "memory/offload_compute.h"
#include "model/config.h"
#include "model/weights.h"

namespace hr {

// Nothing to choose (no host experts, or a backend whose memory is host memory): nullopt, the backend
// unchanged. Otherwise the choice, set on the backend and logged with its rates. A probe that fails (a
// shape the fused decode kernels do not take) leaves the stated default rates and says so; cpu asked
// for is still set.
Result<std::optional<OffloadComputeChoice>> setup_offload_compute(Backend& be, const ModelConfig& cfg,
                                                                  const ModelWeights& w,
                                                                  const ExpertPlacement& placement,
                                                                  OffloadCompute requested);

}  // namespace hr

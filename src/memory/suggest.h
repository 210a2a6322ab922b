// Alternatives to a plan that does not fit, each with its own numbers, ranked by what they give up:
//   0. the requested weights with an int8 KV cache (--kv-cache int8) when that fits the whole request;
//   1. a smaller weight format that fits the whole request (int8 before int4);
//   2. the longest context, then the most sequences, that fit: in the requested format, then smaller ones
//      (for the requested format also the longest context with an int8 KV cache, when 0 did not fit);
//   3. more GPUs of the same card (--tensor-parallel n, planned per GPU; implemented = false until it has run
//      on GPUs);
//   4. MoE experts kept in host memory (--offload-experts auto), with the predicted decode speed, for each
//      format that does not fit as asked, the fastest first.
// Reports list only the implemented ones as alternatives and name the others once, as not implemented
// (plan_report.cpp).
#pragma once

#include <vector>

#include "memory/plan.h"

namespace hr {

// `refused` is plan_memory's result for req (fits = false). Every suggestion is re-planned with
// plan_memory (3 with --tensor-parallel n: per-GPU numbers from the sharding, model/shard.h).
std::vector<Suggestion> suggest_alternatives(const ModelConfig& cfg, const PlanRequest& req, const MemoryPlan& refused);

}  // namespace hr

// TEST-ONLY fault injection: HEADROOM_FAULT_INJECT makes the engine call hr::fatal inside a model step,
// exactly where a sticky CUDA error would surface, so the fatal path (RELIABILITY #99) is tested
// without a GPU. Unset (production): nothing is injected and nothing is checked per step.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/status.h"

namespace hr {

inline constexpr const char* kFaultInjectEnv = "HEADROOM_FAULT_INJECT";

// "fatal_after_steps=N[,min_seqs=K]": the step after N counted steps ends in hr::fatal; a step counts
// when it runs at least K sequences (default 1). min_seqs lets a test make sure that several
// requests are in flight when the fault fires, whatever the warm-up did.
struct FaultPlan {
    int64_t fatal_after_steps = 0;  // >= 0
    int64_t min_seqs = 1;           // >= 1
};

// Parses the variable's value; an empty or malformed value is an error naming what was expected.
Result<FaultPlan> parse_fault_plan(std::string_view spec);

// Reads kFaultInjectEnv once: nullopt when unset, an error when set but malformed.
Result<std::optional<FaultPlan>> fault_plan_from_env();

// TEST-ONLY: HEADROOM_LOAD_DELAY_MS=N makes `serve` spread N ms of sleep over the weights' load, so that
// a test can watch /ping and /health during the start-up of a tiny model. Unset: 0. Malformed: an error.
inline constexpr const char* kLoadDelayEnv = "HEADROOM_LOAD_DELAY_MS";
Result<double> load_delay_from_env();  // seconds

// Counts steps and fires the fault. Used by the engine loop only (one thread).
class FaultInjector {
public:
    explicit FaultInjector(FaultPlan plan) : plan_(plan) {}
    // Called once a step's device work was issued; calls hr::fatal (never returns) when due.
    void after_step(int64_t n_seqs);

private:
    FaultPlan plan_;
    int64_t counted_ = 0;
};

}  // namespace hr

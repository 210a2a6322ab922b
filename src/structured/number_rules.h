// Number grammar of constrained output: -?(0|[1-9][0-9]*)(\.[0-9]+)? with digit caps, and the bound
// check that keeps only prefixes which some completion can bring inside [minimum, maximum].
#pragma once

#include <cstdint>

#include "structured/grammar.h"

namespace hr::structured {

enum NumPhase : uint8_t { num_start = 0, num_sign, num_zero, num_int, num_dot, num_frac };

struct NumState {
    uint8_t phase = num_start;
    bool neg = false;
    int int_digits = 0;
    int frac_digits = 0;
    int64_t int_value = 0;
    int64_t frac_value = 0;
};

// Some completion of st lies within the bounds of spec.
bool number_feasible(const NumSpec& spec, const NumState& st);
// st is a complete number within the bounds (compared as Python / JSON parsers do: as doubles).
bool number_can_end(const NumSpec& spec, const NumState& st);
// Applies one byte; false (st unchanged) when the byte cannot continue a feasible number.
bool number_step(const NumSpec& spec, NumState& st, uint8_t b);

}  // namespace hr::structured

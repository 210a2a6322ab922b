// A plan for people (a df -h style table) and for programs (JSON), as `headroom plan` prints them.
#pragma once

#include <string>
#include <string_view>

#include "memory/plan.h"

namespace hr {

std::string_view suggestion_kind_name(SuggestionKind k);

// `model` labels the plan (the --model argument). Ends with a newline.
std::string format_plan_table(const MemoryPlan& plan, std::string_view model);

// {"fits", "budget_bytes", "total_bytes", "shortfall_bytes", "regions": [{"name", "bytes", "kind", "note"}],
//  "suggestions": [text], "alternatives": [{... numbers of each suggestion ...}], ...}; ends with a newline.
std::string format_plan_json(const MemoryPlan& plan, std::string_view model);

}  // namespace hr

// TEST-ONLY fault injection (see fault_injection.h).
#include "runtime/fault_injection.h"

#include <charconv>
#include <cstdlib>
#include <string>

namespace hr {

namespace {

constexpr std::string_view kForm = "fatal_after_steps=N[,min_seqs=K]";

Result<int64_t> parse_count(std::string_view key, std::string_view v, int64_t min) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n < min) {
        return errorf("{}: '{}' must be an integer >= {}, found '{}' (expected {})", kFaultInjectEnv, key, min, v,
                      kForm);
    }
    return n;
}

}  // namespace

Result<FaultPlan> parse_fault_plan(std::string_view spec) {
    FaultPlan plan;
    bool have_steps = false;
    if (spec.empty()) return errorf("{}: the value is empty (expected {})", kFaultInjectEnv, kForm);
    while (true) {
        const size_t comma = spec.find(',');
        const std::string_view item = spec.substr(0, comma);
        const size_t eq = item.find('=');
        if (eq == std::string_view::npos) {
            return errorf("{}: expected key=value items ({}), found '{}'", kFaultInjectEnv, kForm, item);
        }
        const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
        if (key == "fatal_after_steps") {
            HR_ASSIGN(plan.fatal_after_steps, parse_count(key, value, 0));
            have_steps = true;
        } else if (key == "min_seqs") {
            HR_ASSIGN(plan.min_seqs, parse_count(key, value, 1));
        } else {
            return errorf("{}: unknown key '{}' (expected {})", kFaultInjectEnv, key, kForm);
        }
        if (comma == std::string_view::npos) break;
        spec = spec.substr(comma + 1);
    }
    if (!have_steps) return errorf("{}: 'fatal_after_steps' is required (expected {})", kFaultInjectEnv, kForm);
    return plan;
}

Result<std::optional<FaultPlan>> fault_plan_from_env() {
    const char* v = std::getenv(kFaultInjectEnv);
    if (v == nullptr) return std::optional<FaultPlan>();
    HR_ASSIGN(FaultPlan plan, parse_fault_plan(v));
    return std::optional<FaultPlan>(plan);
}

Result<double> load_delay_from_env() {
    const char* v = std::getenv(kLoadDelayEnv);
    if (v == nullptr) return 0.0;
    char* end = nullptr;
    const long long ms = std::strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || ms < 0 || ms > 3600 * 1000)
        return errorf("{}: expected milliseconds in [0, 3600000], found '{}'", kLoadDelayEnv, v);
    return static_cast<double>(ms) * 1e-3;
}

void FaultInjector::after_step(int64_t n_seqs) {
    if (n_seqs < plan_.min_seqs) return;
    if (counted_++ < plan_.fatal_after_steps) return;
    fatal(__FILE__, __LINE__,
          fmt::format("injected fault ({}): a simulated sticky device error after {} steps of >= {} sequences",
                      kFaultInjectEnv, plan_.fatal_after_steps, plan_.min_seqs));
}

}  // namespace hr

// The list of architecture units. A new architecture adds its file and one line here.
#include "model/arch/registry.h"

#include <array>

namespace hr {

// Each defined in its own file of model/arch/.
const ArchUnit& llama_unit();
const ArchUnit& mistral_unit();
const ArchUnit& mixtral_unit();
const ArchUnit& qwen2_unit();
const ArchUnit& qwen3_unit();
const ArchUnit& qwen3_moe_unit();

namespace {

const std::array<const ArchUnit*, 6>& units() {
    static const std::array<const ArchUnit*, 6> u = {
        &llama_unit(), &mistral_unit(), &mixtral_unit(), &qwen2_unit(), &qwen3_unit(), &qwen3_moe_unit(),
    };
    return u;
}

}  // namespace

std::span<const ArchUnit* const> arch_units() { return units(); }

const ArchUnit& arch_unit(Architecture a) {
    for (const ArchUnit* u : units()) {
        if (u->arch == a) return *u;
    }
    HR_CHECK_MSG(false, "arch_unit: an Architecture value without a unit in model/arch/registry.cpp");
    return *units()[0];
}

const ArchUnit* find_arch_by_hf_class(std::string_view name) {
    for (const ArchUnit* u : units()) {
        if (u->hf_class == name) return u;
    }
    return nullptr;
}

const ArchUnit* find_arch_by_model_type(std::string_view name) {
    for (const ArchUnit* u : units()) {
        if (u->model_type == name) return u;
    }
    return nullptr;
}

const ArchUnit* find_arch_by_gguf(std::string_view name) {
    for (const ArchUnit* u : units()) {
        if (!u->gguf_arch.empty() && u->gguf_arch == name) return u;
    }
    return nullptr;
}

std::string supported_architectures() {
    std::string s;
    for (const ArchUnit* u : units()) {
        if (!s.empty()) s += ", ";
        s += u->hf_class;
    }
    return s;
}

std::string_view architecture_name(Architecture a) { return arch_unit(a).hf_class; }

}  // namespace hr

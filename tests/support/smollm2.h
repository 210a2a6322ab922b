// The real SmolLM2-135M-Instruct Q4_1 GGUF for model tests: its path (HEADROOM_SMOLLM2_GGUF or
// ~/.cache/headroom/, fetched by scripts/test.sh; tests skip when it is absent) and the reference values
// that tests/fixtures/smollm2/make_reference.py computed once with transformers (reference.safetensors).
#pragma once

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "support/fixtures.h"

namespace hr::test {

inline std::string smollm2_path() {
    if (const char* p = std::getenv("HEADROOM_SMOLLM2_GGUF")) return p;
    const char* home = std::getenv("HOME");
    return std::string(home ? home : "/root") + "/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf";
}
inline bool have_smollm2() { return std::filesystem::exists(smollm2_path()); }
inline std::string smollm2_skip_message() {
    return smollm2_path() + " is absent (scripts/test.sh fetches it; or set HEADROOM_SMOLLM2_GGUF): skipping";
}

inline std::string smollm2_reference_path() { return fixtures_dir() + "/smollm2/reference.safetensors"; }

// A tensor of the reference file copied out as T (int32 or f32); empty when absent.
template <class T>
std::vector<T> reference_tensor(const io::SafetensorsFile& f, const std::string& name) {
    const io::TensorInfo* t = f.find(name);
    if (!t) return {};
    std::vector<T> v(t->nbytes / sizeof(T));
    std::memcpy(v.data(), t->data, t->nbytes);
    return v;
}

}  // namespace hr::test

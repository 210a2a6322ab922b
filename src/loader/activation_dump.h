// --dump-activations: collects the forward pass's named intermediates (model/blocks.h ActivationTap)
// over every step of a Session, rows of successive chunks appended, and writes them as one
// safetensors file (DIR/activations.safetensors: each name an f32 [tokens, width] tensor) that a port
// can diff against transformers forward hooks (tools/dump_hf_activations.py).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/blocks.h"

namespace hr {

class ActivationDump {
public:
    explicit ActivationDump(Backend& be) : be_(be) {}
    // A tap for Session::set_tap(); it synchronises the backend and copies each tensor to the host.
    // The dump must outlive the session's use of the tap.
    ActivationTap tap();
    // Creates `dir` if needed and writes dir/activations.safetensors. Errors name the path.
    Status write(const std::string& dir) const;
    // Collected so far: name -> (width, rows * width values).
    struct Entry {
        int64_t cols = 0;
        std::vector<float> values;
    };
    const std::map<std::string, Entry>& entries() const { return entries_; }

private:
    Backend& be_;
    std::map<std::string, Entry> entries_;
};

}  // namespace hr

// The model part of `headroom inspect FILE.gguf`: the config headroom derives from the metadata, the
// Hugging Face name of each GGUF tensor, and with --weights the relative L2 error of converting the
// weights from their dequantized values to that format (what loading with --weights W would hold).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace hr::app {

// {"config": {...} | null, "config_error": "..." (when the file is no model headroom loads),
//  "hf_names": {gguf name: hf name}, "conversion": {"weights", "rel_l2", "tensors": [...]} (with weights)}.
// An error only for --weights (bad value, or a file whose model does not load).
Result<nlohmann::ordered_json> gguf_model_section(const std::string& path, const std::string& weights);
void print_gguf_model_section(const nlohmann::ordered_json& section);

}  // namespace hr::app

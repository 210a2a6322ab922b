// Built-in model configs (the published config.json values) so that plans need no download, and the
// one resolver of a --model argument: a built-in name, a config.json file, or a model directory.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "model/config.h"

namespace hr {

struct BuiltinModel {
    std::string_view name;    // e.g. "mixtral-8x7b"
    std::string_view source;  // the Hugging Face repository whose config.json it copies
    ModelConfig config;
};

std::span<const BuiltinModel> builtin_models();
const BuiltinModel* find_builtin_model(std::string_view name);  // case-insensitive; null when unknown

// --model: an existing directory (reads <dir>/config.json), an existing file (a config.json or a GGUF file), or a
// built-in name. Anything else is an error listing the built-in names.
Result<ModelConfig> resolve_model_config(const std::string& spec);

}  // namespace hr

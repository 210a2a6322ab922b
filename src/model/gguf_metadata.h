// The inverse of gguf_model_config (model/gguf_config.h): a ModelConfig as the GGUF metadata llama.cpp
// writes for it. Kept apart from the reader so that the reader (and its fuzz target) need no writer.
#pragma once

#include <vector>

#include "io/gguf_writer.h"
#include "model/config.h"

namespace hr {

// general.architecture and the <arch>.* hyperparameter keys for `cfg` (Mixtral and Mistral as llama),
// plus the special token ids it has. For writers of GGUF files (the peer benchmark's synthetic Mixtral,
// tests); gguf_model_config reads them back to `cfg`.
std::vector<io::GgufKV> gguf_metadata_for(const ModelConfig& cfg);

}  // namespace hr

// `headroom quantize --model FILE.gguf`: the GGUF file's dequantized values -> a pre-quantized int8/int4
// model directory (model.safetensors + a config.json written from the GGUF metadata). cmd_quantize.cpp
// hands GGUF files here after preparing the output directory.
#pragma once

#include <string>

#include "core/status.h"
#include "model/quantize_weights.h"

namespace hr::app {

Result<QuantizeStats> quantize_gguf(const std::string& gguf_path, DType format, const std::string& out_dir);

}  // namespace hr::app

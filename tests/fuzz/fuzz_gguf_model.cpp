// libFuzzer target: GGUF bytes -> ModelConfig and tensor bindings (model/gguf_config.h). Any input gives a
// config or an error with a message, never a crash; a config that parses binds every tensor of its table
// to bytes inside the input. Seeds: corpus/gguf (the reader's corpus, with a tiny llama model).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "io/gguf.h"
#include "model/gguf_config.h"

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto r = hr::io::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    if (!r.ok()) return 0;
    auto c = hr::gguf_model_config(**r);
    if (!c.ok()) {
        require(!c.error().message.empty());
        return 0;
    }
    require(c->tensor_dtypes != nullptr);
    auto b = hr::bind_gguf_tensors(**r, *c);
    require(b.ok());
    for (const hr::GgufBinding& g : *b) {
        require(g.data >= data && g.rows > 0 && g.row_bytes > 0);
        require(static_cast<size_t>(g.data - data) + static_cast<size_t>(g.rows * g.row_bytes) <= size);
    }
    return 0;
}

// libFuzzer target over Tokenizer::encode/decode of arbitrary bytes, with the fixtures' byte-level
// tokenizer (deepseek: regex pre-tokenizer, byte-level BPE) and SentencePiece-style one (llama2:
// normalizer, byte fallback). Invalid UTF-8 must be an error; valid text must encode, every id must be
// valid, and the byte-level tokenizer must decode its ids back to exactly the input.
#include <cstdint>
#include <memory>
#include <string>

#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

namespace {

void require(bool cond) {
    if (!cond) __builtin_trap();
}

const hr::Tokenizer& load(const char* rel) {
    auto t = hr::Tokenizer::from_file(std::string(HR_FIXTURES_DIR) + rel);
    require(t.ok());
    return *std::move(t).value().release();  // note: lives for the process
}

const hr::Tokenizer* g_byte_level = nullptr;
const hr::Tokenizer* g_spm = nullptr;

}  // namespace

// note: loading two 1-2 MB tokenizer.json files under ASan takes seconds: done here, outside the
// per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    g_byte_level = &load("/tokenizers/deepseek/tokenizer.json");
    g_spm = &load("/tokenizers/llama2/tokenizer.json");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const hr::Tokenizer& byte_level = *g_byte_level;
    const hr::Tokenizer& spm = *g_spm;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const bool valid = !hr::utf8::first_invalid(text).has_value();
    for (const hr::Tokenizer* tok : {&byte_level, &spm}) {
        auto ids = tok->encode(text, /*add_special=*/false);
        require(ids.ok() == valid);
        if (!ids.ok()) continue;
        for (int32_t id : *ids) require(tok->is_valid_id(id));
        auto back = tok->decode(*ids, /*skip_special=*/false);
        require(back.ok());
        if (tok == &byte_level) require(*back == text);
    }
    return 0;
}

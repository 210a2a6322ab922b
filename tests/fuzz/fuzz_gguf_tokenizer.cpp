// libFuzzer target over the GGUF tokenizer loader: bytes -> io::GgufFile::parse -> tokenizer_from_gguf.
// Any input must give a Result, never a crash, abort, leak or hang; a tokenizer that loads must encode
// valid UTF-8 and decode its own ids back without error.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace {

// A broken invariant of headroom itself (not bad input): stop the fuzzer with a crash report.
void require(bool cond) {
    if (!cond) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto file = hr::io::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    if (!file.ok()) return 0;
    auto tok = hr::tokenizer_from_gguf(**file);
    if (!tok.ok()) return 0;
    static const char* const kTexts[] = {"", "hello world 123", " \n\t  x", "<s>caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC",
                                         "<|im_start|>user\nhi<|im_end|>", "\xF0\x9F\xA6\x99 '' 's"};
    for (const char* text : kTexts) {
        for (bool special : {false, true}) {
            auto ids = (*tok)->encode(text, special);
            require(ids.ok());
            for (int32_t id : *ids) require((*tok)->is_valid_id(id));
            require((*tok)->decode(*ids, false).ok());
            require((*tok)->decode(*ids, true).ok());
        }
    }
    return 0;
}

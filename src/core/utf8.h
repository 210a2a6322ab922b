// UTF-8 helpers shared by the tokenizer and the template engine: decoding, validation, the GPT-2
// byte<->char table of byte-level BPE, and Rust's from_utf8_lossy (what Hugging Face decoders use).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hr::utf8 {

// Length of the valid UTF-8 sequence that starts at s[i], or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid, as in Rust's str).
size_t valid_seq_len(std::string_view s, size_t i);

// Offset of the first byte that is not part of valid UTF-8, or nullopt if all of s is valid.
std::optional<size_t> first_invalid(std::string_view s);

// Decodes the code point at s[i] and advances i past it; a byte that does not start a valid sequence
// decodes as U+FFFD and advances i by one (never reads past s).
uint32_t next_cp(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of cp.
void append_cp(std::string& out, uint32_t cp);

// Replaces each maximal invalid subsequence with U+FFFD, exactly like Rust's String::from_utf8_lossy.
std::string lossy(std::string_view bytes);

// True if s ends with bytes that could still become a valid character when more bytes follow.
bool ends_with_incomplete(std::string_view s);

// GPT-2 byte-level alphabet: byte b <-> one printable code point.
uint32_t byte_to_cp(uint8_t b);
// Inverse of byte_to_cp; -1 for code points outside the alphabet.
int cp_to_byte(uint32_t cp);

// Unicode White_Space property (what Rust's char::is_whitespace and regex \s use).
bool is_white_space(uint32_t cp);

}  // namespace hr::utf8

// Decoder chain: each step maps the list of token strings to a new list, then the list is joined.
#include "tokenizer/decoder.h"

#include "tokenizer/utf8.h"

namespace hr::tok {

namespace {

std::string replace_literal(const std::string& s, const std::string& from, const std::string& to) {
    if (from.empty()) return s;
    std::string out;
    size_t pos = 0;
    while (true) {
        const size_t f = s.find(from, pos);
        if (f == std::string::npos) break;
        out.append(s, pos, f - pos);
        out.append(to);
        pos = f + from.size();
    }
    out.append(s, pos, std::string::npos);
    return out;
}

std::string replace_step(const DecoderStep& st, const std::string& s) {
    if (st.regex == nullptr) return replace_literal(s, st.literal, st.content);
    auto found = st.regex->find_all(s);
    if (!found.ok()) return s;  // a match-limit failure leaves the token as it is
    std::string out;
    size_t prev = 0;
    for (auto [b, e] : found.value()) {
        out.append(s, prev, b - prev);
        out.append(st.content);
        prev = e;
    }
    out.append(s, prev, std::string::npos);
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Strip up to `start` leading and `stop` trailing copies of the character `ch` (by code point).
std::string strip_step(const std::string& token, const std::string& ch, size_t start, size_t stop) {
    std::vector<size_t> starts;  // byte offset of each code point
    for (size_t i = 0; i < token.size();) {
        starts.push_back(i);
        utf8::next_cp(token, i);
    }
    const size_t n = starts.size();
    const auto char_at = [&](size_t k) {
        const size_t e = k + 1 < n ? starts[k + 1] : token.size();
        return std::string_view(token).substr(starts[k], e - starts[k]);
    };
    size_t start_cut = 0;
    for (size_t k = 0; k < start && k < n; ++k) {
        if (char_at(k) == ch) start_cut = k + 1;
        else break;
    }
    size_t stop_cut = n;
    for (size_t k = 0; k < stop && k < n; ++k) {
        const size_t idx = n - k - 1;
        if (char_at(idx) == ch) stop_cut = idx;
        else break;
    }
    if (stop_cut <= start_cut) return std::string();
    const size_t b = start_cut < n ? starts[start_cut] : token.size();
    const size_t e = stop_cut < n ? starts[stop_cut] : token.size();
    return token.substr(b, e - b);
}

// Maps a byte-level token back to bytes; a token with any character outside the alphabet keeps its UTF-8.
std::string byte_level_bytes(const std::string& t) {
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
        const int b = utf8::cp_to_byte(utf8::next_cp(t, i));
        if (b < 0) return t;
        out.push_back(static_cast<char>(b));
    }
    return out;
}

void flush_bytes(std::string& bytes, std::vector<std::string>& out) {
    if (bytes.empty()) return;
    if (!utf8::first_invalid(bytes)) {
        out.push_back(bytes);
    } else {
        for (size_t k = 0; k < bytes.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
    }
    bytes.clear();
}

}  // namespace

int parse_byte_token(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
    // note: Rust's u8::from_str_radix accepts a leading '+', so "<0x+F>" is byte 15 there too.
    if (token[3] == '+') {
        const int d = hex_digit(token[4]);
        return d;
    }
    const int hi = hex_digit(token[3]), lo = hex_digit(token[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

Result<Decoder> Decoder::from_json(const nlohmann::json& j) {
    Decoder d;
    if (!j.is_null()) {
        d.present_ = true;
        HR_TRY(d.add(j));
    }
    return d;
}

Status Decoder::add(const nlohmann::json& j) {
    const std::string type = j.is_object() ? j.value("type", std::string()) : std::string();
    DecoderStep s;
    if (type == "Sequence") {
        if (!j.contains("decoders") || !j["decoders"].is_array()) {
            return make_error("tokenizer.json: Sequence decoder needs a \"decoders\" array");
        }
        for (const auto& sub : j["decoders"]) HR_TRY(add(sub));
        return ok();
    } else if (type == "Replace") {
        s.kind = DecoderStep::Kind::replace;
        const auto& p = j.value("pattern", nlohmann::json());
        if (p.is_object() && p.contains("String") && p["String"].is_string()) {
            s.literal = p["String"].get<std::string>();
        } else if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
            auto r = Regex::compile(p["Regex"].get<std::string>());
            if (!r.ok()) return r.take_error();
            s.regex = std::shared_ptr<Regex>(std::move(r).value().release());
        } else {
            return make_error("tokenizer.json: Replace decoder needs a String or Regex pattern");
        }
        if (!j.contains("content") || !j["content"].is_string()) {
            return make_error("tokenizer.json: Replace decoder needs a \"content\" string");
        }
        s.content = j["content"].get<std::string>();
    } else if (type == "ByteFallback") {
        s.kind = DecoderStep::Kind::byte_fallback;
    } else if (type == "Fuse") {
        s.kind = DecoderStep::Kind::fuse;
    } else if (type == "Strip") {
        s.kind = DecoderStep::Kind::strip;
        s.literal = j.value("content", std::string(" "));
        const auto count = [&](const char* k) -> int64_t {
            return j.contains(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : 0;
        };
        if (count("start") < 0 || count("stop") < 0) return make_error("tokenizer.json: Strip decoder counts must be >= 0");
        s.start = static_cast<size_t>(count("start"));
        s.stop = static_cast<size_t>(count("stop"));
    } else if (type == "ByteLevel") {
        s.kind = DecoderStep::Kind::byte_level;
    } else if (type == "Metaspace") {
        s.kind = DecoderStep::Kind::metaspace;
        s.literal = j.value("replacement", std::string("\xE2\x96\x81"));
        if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
            s.prepend = j["prepend_scheme"].get<std::string>() != "never";
        } else {
            s.prepend = !(j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean() &&
                          !j["add_prefix_space"].get<bool>());
        }
    } else {
        return errorf("tokenizer.json: unsupported decoder {:?} (supported: Sequence, Replace, ByteFallback, Fuse, "
                      "Strip, ByteLevel, Metaspace)",
                      type.empty() ? j.dump() : type);
    }
    steps_.push_back(std::move(s));
    return ok();
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
    if (!present_) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (i > 0) out.push_back(' ');
            out += tokens[i];
        }
        return out;
    }
    for (const DecoderStep& st : steps_) {
        switch (st.kind) {
            case DecoderStep::Kind::replace:
                for (auto& t : tokens) t = replace_step(st, t);
                break;
            case DecoderStep::Kind::byte_fallback: {
                std::vector<std::string> out;
                out.reserve(tokens.size());
                std::string bytes;
                for (auto& t : tokens) {
                    const int b = parse_byte_token(t);
                    if (b >= 0) {
                        bytes.push_back(static_cast<char>(b));
                    } else {
                        flush_bytes(bytes, out);
                        out.push_back(std::move(t));
                    }
                }
                flush_bytes(bytes, out);
                tokens.swap(out);
                break;
            }
            case DecoderStep::Kind::fuse: {
                std::string all;
                for (const auto& t : tokens) all += t;
                tokens.assign(1, std::move(all));
                break;
            }
            case DecoderStep::Kind::strip:
                for (auto& t : tokens) t = strip_step(t, st.literal, st.start, st.stop);
                break;
            case DecoderStep::Kind::byte_level: {
                std::string bytes;
                for (const auto& t : tokens) bytes += byte_level_bytes(t);
                tokens.assign(1, utf8::lossy(bytes));
                break;
            }
            case DecoderStep::Kind::metaspace:
                for (size_t i = 0; i < tokens.size(); ++i) {
                    tokens[i] = replace_literal(tokens[i], st.literal, (i == 0 && st.prepend) ? "" : " ");
                }
                break;
        }
    }
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
}

std::string Decoder::token_bytes(const std::string& token) const {
    if (!present_) return token;
    std::string t = token;
    bool fused = false;
    for (const DecoderStep& st : steps_) {
        switch (st.kind) {
            case DecoderStep::Kind::replace:
                t = replace_step(st, t);
                break;
            case DecoderStep::Kind::byte_fallback:
                if (const int b = parse_byte_token(t); b >= 0) t = std::string(1, static_cast<char>(b));
                break;
            case DecoderStep::Kind::fuse:
                fused = true;
                break;
            case DecoderStep::Kind::strip:
                // After Fuse, Strip acts on the whole text's ends, not on a token in the middle.
                if (!fused) t = strip_step(t, st.literal, st.start, st.stop);
                break;
            case DecoderStep::Kind::byte_level:
                t = byte_level_bytes(t);
                fused = true;
                break;
            case DecoderStep::Kind::metaspace:
                t = replace_literal(t, st.literal, " ");
                break;
        }
    }
    return t;
}

}  // namespace hr::tok

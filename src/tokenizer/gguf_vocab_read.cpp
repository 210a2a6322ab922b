// GGUF metadata (tokenizer.* keys, via io::GgufFile) -> GgufVocab -> Tokenizer, and Tokenizer::from_gguf.
#include <limits>

#include "io/gguf.h"
#include "tokenizer/gguf_vocab.h"

namespace hr {

namespace {

Result<const io::GgufArray*> array_of(const io::GgufFile& f, const char* key) {
    const io::GgufArray* a = f.get_array(key);
    if (a == nullptr && f.metadata().count(key) != 0) return errorf("GGUF tokenizer: {} is not an array", key);
    return a;
}

Result<std::vector<std::string>> string_array(const io::GgufFile& f, const char* key) {
    HR_ASSIGN(const io::GgufArray* a, array_of(f, key));
    if (a == nullptr) return std::vector<std::string>();
    const auto* v = std::get_if<std::vector<std::string>>(&a->values);
    if (v == nullptr) return errorf("GGUF tokenizer: expected {} to be an array of strings, found element type {}", key, a->elem_type);
    return *v;
}

template <typename T>
Result<std::vector<T>> number_array(const io::GgufFile& f, const char* key) {
    HR_ASSIGN(const io::GgufArray* a, array_of(f, key));
    std::vector<T> out;
    if (a == nullptr) return out;
    const auto convert = [&](const auto& vals) -> Status {
        out.reserve(vals.size());
        for (size_t i = 0; i < vals.size(); ++i) {
            const auto x = vals[i];
            if constexpr (std::is_integral_v<T>) {
                if constexpr (std::is_floating_point_v<std::decay_t<decltype(x)>>) {
                    return errorf("GGUF tokenizer: expected {} to hold integers, found floats", key);
                } else if (static_cast<long double>(x) < static_cast<long double>(std::numeric_limits<T>::min()) ||
                           static_cast<long double>(x) > static_cast<long double>(std::numeric_limits<T>::max())) {
                    return errorf("GGUF tokenizer: {}[{}] = {} is out of range", key, i, x);
                }
            }
            out.push_back(static_cast<T>(x));
        }
        return ok();
    };
    if (const auto* v = std::get_if<std::vector<int64_t>>(&a->values)) HR_TRY(convert(*v));
    else if (const auto* u = std::get_if<std::vector<uint64_t>>(&a->values)) HR_TRY(convert(*u));
    else if (const auto* d = std::get_if<std::vector<double>>(&a->values)) HR_TRY(convert(*d));
    else return errorf("GGUF tokenizer: expected {} to be an array of numbers, found element type {}", key, a->elem_type);
    return out;
}

}  // namespace

namespace tok {

Result<GgufVocab> read_gguf_vocab(const io::GgufFile& f) {
    GgufVocab v;
    HR_ASSIGN(auto model, f.get_string("tokenizer.ggml.model"));
    if (!model) return make_error("GGUF tokenizer: the file has no tokenizer.ggml.model (no tokenizer in its metadata)");
    v.model = *model;
    HR_ASSIGN(auto pre, f.get_string("tokenizer.ggml.pre"));
    v.pre = pre.value_or("");
    HR_ASSIGN(v.tokens, string_array(f, "tokenizer.ggml.tokens"));
    HR_ASSIGN(v.scores, number_array<float>(f, "tokenizer.ggml.scores"));
    HR_ASSIGN(v.token_types, number_array<int32_t>(f, "tokenizer.ggml.token_type"));
    HR_ASSIGN(v.merges, string_array(f, "tokenizer.ggml.merges"));
    HR_ASSIGN(v.bos_id, f.get_int("tokenizer.ggml.bos_token_id"));
    HR_ASSIGN(v.eos_id, f.get_int("tokenizer.ggml.eos_token_id"));
    HR_ASSIGN(v.unk_id, f.get_int("tokenizer.ggml.unknown_token_id"));
    HR_ASSIGN(v.pad_id, f.get_int("tokenizer.ggml.padding_token_id"));
    HR_ASSIGN(v.add_bos, f.get_bool("tokenizer.ggml.add_bos_token"));
    HR_ASSIGN(v.add_eos, f.get_bool("tokenizer.ggml.add_eos_token"));
    HR_ASSIGN(v.add_space_prefix, f.get_bool("tokenizer.ggml.add_space_prefix"));
    HR_ASSIGN(auto tmpl, f.get_string("tokenizer.chat_template"));
    v.chat_template = tmpl.value_or("");
    return v;
}

}  // namespace tok

Result<std::unique_ptr<Tokenizer>> tokenizer_from_gguf(const io::GgufFile& file) {
    HR_ASSIGN(auto v, tok::read_gguf_vocab(file));
    return tokenizer_from_gguf_vocab(v);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const std::string& path) {
    HR_ASSIGN(auto file, io::GgufFile::open(path));
    auto t = tokenizer_from_gguf(*file);
    if (!t.ok()) return errorf("{} (file {:?})", t.error().message, path);
    return t;
}

}  // namespace hr

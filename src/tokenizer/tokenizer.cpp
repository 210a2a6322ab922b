// Tokenizer: loading tokenizer.json / tokenizer_config.json, the encode pipeline (added tokens ->
// normalizer -> pre-tokenizer -> BPE -> post-processor), decode, token_bytes and StreamDecoder.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/log.h"
#include "tokenizer/utf8.h"

namespace hr {

using tok::AddedToken;
using tok::Piece;

namespace {

Result<std::string> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("cannot open {:?}", path);
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) return errorf("cannot read {:?}", path);
    return ss.str();
}

Result<nlohmann::json> parse_json(std::string_view text, const std::string& what) {
    try {
        return nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::exception& e) {
        return errorf("{}: expected JSON, parse failed: {}", what, e.what());
    }
}

bool get_bool(const nlohmann::json& j, const char* key, bool dflt) {
    return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : dflt;
}

// tokenizer_config.json writes special tokens as "<s>" or as {"content": "<s>", ...}.
std::string config_token(const nlohmann::json& cfg, const char* key) {
    if (!cfg.contains(key)) return {};
    const auto& v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return {};
}

Status parse_post_processor(const nlohmann::json& j, const tok::BpeModel& model,
                            const std::unordered_map<std::string, int32_t>& added_ids, tok::PostProcessor& post) {
    if (j.is_null()) return ok();
    const std::string type = j.is_object() ? j.value("type", std::string()) : std::string();
    if (type == "ByteLevel") return ok();  // only adjusts offsets
    if (type == "Sequence") {
        if (!j.contains("processors") || !j["processors"].is_array()) {
            return make_error("tokenizer.json: Sequence post-processor needs a \"processors\" array");
        }
        for (const auto& sub : j["processors"]) {
            tok::PostProcessor inner;
            HR_TRY(parse_post_processor(sub, model, added_ids, inner));
            // A later processor wraps what the earlier ones produced.
            post.prefix.insert(post.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
            post.suffix.insert(post.suffix.end(), inner.suffix.begin(), inner.suffix.end());
        }
        return ok();
    }
    if (type == "BertProcessing" || type == "RobertaProcessing") {
        const auto pair_id = [&](const char* key, int32_t& out) -> Status {
            if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer()) {
                return errorf("tokenizer.json: {} needs \"{}\": [token, id]", type, key);
            }
            out = j[key][1].get<int32_t>();
            return ok();
        };
        int32_t cls = 0, sep = 0;
        HR_TRY(pair_id("cls", cls));
        HR_TRY(pair_id("sep", sep));
        post.prefix.push_back(cls);
        post.suffix.push_back(sep);
        return ok();
    }
    if (type != "TemplateProcessing") {
        return errorf("tokenizer.json: unsupported post-processor {:?} (supported: TemplateProcessing, ByteLevel, "
                      "Sequence, BertProcessing, RobertaProcessing)",
                      type.empty() ? j.dump() : type);
    }
    if (!j.contains("single") || !j["single"].is_array()) {
        return make_error("tokenizer.json: TemplateProcessing needs a \"single\" array");
    }
    const auto& specials = j.contains("special_tokens") ? j["special_tokens"] : nlohmann::json::object();
    bool seen_sequence = false;
    for (const auto& item : j["single"]) {
        if (item.contains("Sequence")) {
            if (seen_sequence) return make_error("tokenizer.json: TemplateProcessing single has two Sequence entries");
            seen_sequence = true;
            continue;
        }
        if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id") ||
            !item["SpecialToken"]["id"].is_string()) {
            return make_error("tokenizer.json: TemplateProcessing item must be a SpecialToken or a Sequence");
        }
        const std::string name = item["SpecialToken"]["id"].get<std::string>();
        if (!specials.is_object() || !specials.contains(name) || !specials[name].contains("ids") ||
            !specials[name]["ids"].is_array()) {
            return errorf("tokenizer.json: TemplateProcessing uses special token {:?} missing from special_tokens", name);
        }
        for (const auto& idj : specials[name]["ids"]) {
            if (!idj.is_number_integer()) return errorf("tokenizer.json: special token {:?} has a non-integer id", name);
            const auto id = idj.get<int64_t>();
            const bool known = model.id_to_token(static_cast<int32_t>(id)) != nullptr ||
                               std::any_of(added_ids.begin(), added_ids.end(), [&](const auto& kv) { return kv.second == id; });
            if (!known || id < 0 || id > INT32_MAX) {
                return errorf("tokenizer.json: TemplateProcessing special token {:?} has id {} that is not in the vocabulary",
                              name, id);
            }
            (seen_sequence ? post.suffix : post.prefix).push_back(static_cast<int32_t>(id));
        }
    }
    if (!seen_sequence) return make_error("tokenizer.json: TemplateProcessing single has no Sequence entry");
    return ok();
}

}  // namespace

// ---- AddedMatcher ----

void tok::AddedMatcher::add(const std::string& s, int32_t token_index) {
    if (s.empty()) return;
    int32_t node = 0;
    for (char c : s) {
        const auto b = static_cast<uint8_t>(c);
        auto& next = nodes_[node].next;
        auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(b, INT32_MIN));
        if (it != next.end() && it->first == b) {
            node = it->second;
        } else {
            const auto child = static_cast<int32_t>(nodes_.size());
            next.insert(it, {b, child});
            nodes_.push_back(Node{});
            node = child;
        }
    }
    if (nodes_[node].token < 0) nodes_[node].token = token_index;
    first_[static_cast<uint8_t>(s[0])] = true;
}

std::pair<int32_t, size_t> tok::AddedMatcher::longest_at(std::string_view text, size_t pos) const {
    int32_t node = 0, best = -1;
    size_t best_end = pos;
    for (size_t i = pos; i < text.size(); ++i) {
        const auto b = static_cast<uint8_t>(text[i]);
        const auto& next = nodes_[node].next;
        auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(b, INT32_MIN));
        if (it == next.end() || it->first != b) break;
        node = it->second;
        if (nodes_[node].token >= 0) {
            best = nodes_[node].token;
            best_end = i + 1;
        }
    }
    return {best, best_end};
}

// ---- loading ----

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json(const nlohmann::json& j) {
    if (!j.is_object()) return make_error("tokenizer.json: expected a JSON object at the top level");
    if (!j.contains("model")) return make_error("tokenizer.json: missing \"model\"");
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    HR_ASSIGN(t->model_, tok::BpeModel::from_json(j["model"]));
    const auto field = [&](const char* k) { return j.contains(k) ? j[k] : nlohmann::json(); };
    HR_ASSIGN(t->normalizer_, tok::Normalizer::from_json(field("normalizer")));
    HR_ASSIGN(t->pre_tokenizer_, tok::PreTokenizer::from_json(field("pre_tokenizer")));
    HR_ASSIGN(t->decoder_, tok::Decoder::from_json(field("decoder")));

    int64_t limit = t->model_.id_limit();
    std::unordered_map<std::string, int32_t> added_ids;
    const auto added = field("added_tokens");
    if (!added.is_null() && !added.is_array()) return make_error("tokenizer.json: \"added_tokens\" must be an array");
    // note: Hugging Face ignores the ids written in added_tokens: a token keeps its id if its content is
    // already known (model vocabulary or an earlier added token), else it gets the next id after the model
    // vocabulary, in file order. Consistent files agree; for others we follow Hugging Face and warn.
    int64_t next_id = t->model_.entry_count();
    for (const auto& a : added.is_array() ? added : nlohmann::json::array()) {
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id") ||
            !a["id"].is_number_integer()) {
            return make_error("tokenizer.json: each added token needs a string \"content\" and an integer \"id\"");
        }
        AddedToken at;
        at.content = a["content"].get<std::string>();
        if (at.content.empty()) continue;  // Hugging Face ignores empty added tokens
        if (utf8::first_invalid(at.content)) {
            return errorf("tokenizer.json: added token with id {} has invalid UTF-8 content", a["id"].dump());
        }
        const int64_t json_id = a["id"].get<int64_t>();
        at.special = get_bool(a, "special", false);
        at.single_word = get_bool(a, "single_word", false);
        at.lstrip = get_bool(a, "lstrip", false);
        at.rstrip = get_bool(a, "rstrip", false);
        at.normalized = get_bool(a, "normalized", !at.special);
        at.match_content = at.content;
        if (at.normalized && !t->normalizer_.empty()) {
            HR_ASSIGN(at.match_content, t->normalizer_.apply(at.content));
        }
        if (auto it = added_ids.find(at.content); it != added_ids.end()) {
            // Same content again: Hugging Face keeps the id and takes the newer flags.
            at.id = it->second;
            AddedToken& prev = t->added_[t->added_by_id_[at.id]];
            if (prev.special) t->special_contents_.erase(prev.content);
            prev = at;
            if (at.special) t->special_contents_.insert(at.content);
            continue;
        }
        if (auto mid = t->model_.token_to_id(at.content)) {
            at.id = *mid;
        } else {
            if (next_id >= INT32_MAX) return make_error("tokenizer.json: too many added tokens");
            at.id = static_cast<int32_t>(next_id++);
            if (const std::string* other = t->model_.id_to_token(at.id)) {
                return errorf("tokenizer.json: added token {:?} would get id {}, which the vocabulary gives to {:?} "
                              "(expected dense vocabulary ids)", at.content, at.id, *other);
            }
        }
        if (at.id != json_id) {
            log_warn("tokenizer.json: added token {:?} is written with id {} but gets id {} (as in Hugging Face)",
                     at.content, json_id, at.id);
        }
        if (t->added_by_id_.count(at.id)) {
            return errorf("tokenizer.json: added tokens {:?} and {:?} share id {}", t->added_[t->added_by_id_[at.id]].content,
                          at.content, at.id);
        }
        added_ids.emplace(at.content, at.id);
        t->added_by_id_.emplace(at.id, t->added_.size());
        if (at.special) t->special_contents_.insert(at.content);
        limit = std::max<int64_t>(limit, int64_t{at.id} + 1);
        t->added_.push_back(std::move(at));
    }
    for (size_t i = 0; i < t->added_.size(); ++i) {
        const AddedToken& at = t->added_[i];
        (at.normalized ? t->normalized_matcher_ : t->raw_matcher_).add(at.match_content, static_cast<int32_t>(i));
        if (at.single_word && !t->word_start_re_) {
            // Rust regex's Unicode \w; PCRE2 without binary-property support falls back to its own \w.
            auto s = tok::Regex::compile(R"(^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])");
            auto e = tok::Regex::compile(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]$)");
            if (!s.ok() || !e.ok()) {
                s = tok::Regex::compile(R"(^\w)");
                e = tok::Regex::compile(R"(\w$)");
            }
            if (!s.ok()) return s.take_error();
            if (!e.ok()) return e.take_error();
            t->word_start_re_ = std::move(s).value();
            t->word_end_re_ = std::move(e).value();
        }
    }
    t->vocab_size_ = limit;
    HR_TRY(parse_post_processor(field("post_processor"), t->model_, added_ids, t->post_));
    if (t->post_.prefix.size() == 1) t->bos_id_ = t->post_.prefix[0];
    return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json_text(std::string_view json_text) {
    HR_ASSIGN(auto j, parse_json(json_text, "tokenizer.json"));
    try {
        return from_json(j);
    } catch (const nlohmann::json::exception& e) {
        return errorf("tokenizer.json: unexpected structure: {}", e.what());
    }
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_file(const std::string& path) {
    HR_ASSIGN(auto text, read_file(path));
    auto r = from_json_text(text);
    if (!r.ok()) return errorf("{} (file {:?})", r.error().message, path);
    return r;
}

Status Tokenizer::load_config(const nlohmann::json& cfg, const std::string& dir) {
    if (!cfg.is_object()) return make_error("tokenizer_config.json: expected a JSON object");
    bos_token_ = config_token(cfg, "bos_token");
    eos_token_ = config_token(cfg, "eos_token");
    unk_token_ = config_token(cfg, "unk_token");
    pad_token_ = config_token(cfg, "pad_token");
    const auto lookup = [&](const std::string& s, const char* what) -> Result<std::optional<int32_t>> {
        if (s.empty()) return std::optional<int32_t>();
        auto id = token_to_id(s);
        if (!id) return errorf("tokenizer_config.json: {} {:?} is not in the vocabulary", what, s);
        return std::optional<int32_t>(*id);
    };
    HR_ASSIGN(auto bos, lookup(bos_token_, "bos_token"));
    HR_ASSIGN(auto eos, lookup(eos_token_, "eos_token"));
    if (bos) bos_id_ = bos;
    eos_id_ = eos;
    // transformers' Llama/CodeLlama/Gemma fast tokenizers rebuild the post-processor from add_bos_token
    // (default true) and add_eos_token (default false), so those flags win over tokenizer.json for them.
    const std::string cls = cfg.contains("tokenizer_class") && cfg["tokenizer_class"].is_string()
                                ? cfg["tokenizer_class"].get<std::string>() : std::string();
    if (cls.rfind("LlamaTokenizer", 0) == 0 || cls.rfind("CodeLlamaTokenizer", 0) == 0 ||
        cls.rfind("GemmaTokenizer", 0) == 0) {
        const bool add_bos = get_bool(cfg, "add_bos_token", true);
        const bool add_eos = get_bool(cfg, "add_eos_token", false);
        if (add_bos && !bos) return make_error("tokenizer_config.json: add_bos_token is true but there is no bos_token");
        if (add_eos && !eos) return make_error("tokenizer_config.json: add_eos_token is true but there is no eos_token");
        post_.prefix.clear();
        post_.suffix.clear();
        if (add_bos) post_.prefix.push_back(*bos);
        if (add_eos) post_.suffix.push_back(*eos);
    }
    if (cfg.contains("chat_template")) {
        const auto& ct = cfg["chat_template"];
        if (ct.is_string()) {
            chat_template_ = ct.get<std::string>();
        } else if (ct.is_array()) {
            // Named templates: [{"name": "default", "template": "..."}, ...]; use "default".
            for (const auto& e : ct) {
                if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template") &&
                    e["template"].is_string()) {
                    chat_template_ = e["template"].get<std::string>();
                }
            }
            if (chat_template_.empty()) return make_error("tokenizer_config.json: chat_template list has no \"default\" entry");
        } else if (!ct.is_null()) {
            return make_error("tokenizer_config.json: chat_template must be a string or a list of named templates");
        }
    }
    if (chat_template_.empty() && !dir.empty()) {
        std::ifstream f(dir + "/chat_template.jinja", std::ios::binary);
        if (f) {
            std::ostringstream ss;
            ss << f.rdbuf();
            chat_template_ = ss.str();
        }
    }
    return ok();
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json_and_config(const nlohmann::json& tokenizer_json,
                                                                  const nlohmann::json& config) {
    try {
        HR_ASSIGN(auto t, from_json(tokenizer_json));
        if (!config.is_null()) HR_TRY(t->load_config(config, std::string()));
        return t;
    } catch (const nlohmann::json::exception& e) {
        return errorf("tokenizer: unexpected structure: {}", e.what());
    }
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_model_dir(const std::string& dir) {
    if (dir.size() > 5 && dir.compare(dir.size() - 5, 5, ".gguf") == 0) return from_gguf(dir);
    HR_ASSIGN(auto t, from_file(dir + "/tokenizer.json"));
    const std::string cfg_path = dir + "/tokenizer_config.json";
    std::ifstream probe(cfg_path);
    if (probe) {
        HR_ASSIGN(auto text, read_file(cfg_path));
        HR_ASSIGN(auto cfg, parse_json(text, "tokenizer_config.json"));
        try {
            HR_TRY(t->load_config(cfg, dir));
        } catch (const nlohmann::json::exception& e) {
            return errorf("tokenizer_config.json: unexpected structure: {}", e.what());
        }
    }
    return t;
}

// ---- encode ----

void Tokenizer::split_added(std::string_view text, const tok::AddedMatcher& m, bool at_origin,
                            std::vector<std::pair<int32_t, Piece>>& out) const {
    const auto push_text = [&](size_t b, size_t e) {
        if (e > b) out.push_back({-1, Piece{std::string(text.substr(b, e - b)), at_origin && b == 0}});
    };
    if (m.empty()) {
        push_text(0, text.size());
        return;
    }
    size_t start_offset = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        if (!m.may_start(static_cast<uint8_t>(text[pos]))) {
            ++pos;
            continue;
        }
        auto [index, end] = m.longest_at(text, pos);
        if (index < 0) {
            ++pos;
            continue;
        }
        const size_t match_begin = pos;
        pos = end;  // the automaton resumes after the raw match, whatever lstrip/rstrip do
        const AddedToken& at = added_[index];
        size_t start = match_begin, stop = end;
        if (at.single_word) {
            const bool start_space = start == 0 || !word_end_re_->search(text.substr(0, start));
            const bool stop_space = stop == text.size() || !word_start_re_->search(text.substr(stop));
            if (!start_space || !stop_space) continue;
        }
        if (at.lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t k = ns - 1;
                while (k > 0 && (static_cast<uint8_t>(text[k]) & 0xC0) == 0x80) --k;
                size_t kk = k;
                if (!utf8::is_white_space(utf8::next_cp(text, kk))) break;
                ns = k;
            }
            start = std::max(ns, start_offset);
        }
        if (at.rstrip) {
            while (stop < text.size()) {
                size_t k = stop;
                if (!utf8::is_white_space(utf8::next_cp(text, k))) break;
                stop = k;
            }
        }
        if (start_offset < start) push_text(start_offset, start);
        out.push_back({at.id, Piece{}});
        start_offset = stop;
    }
    if (start_offset < text.size()) push_text(start_offset, text.size());
}

Status Tokenizer::encode_piece(Piece piece, std::vector<int32_t>& out) const {
    if (pre_tokenizer_.empty()) {
        model_.tokenize(piece.text, out);
        return ok();
    }
    thread_local std::vector<Piece> pieces;
    pieces.clear();
    pieces.push_back(std::move(piece));
    HR_TRY(pre_tokenizer_.apply(pieces));
    for (const Piece& p : pieces) model_.tokenize(p.text, out);
    return ok();
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special) const {
    if (auto bad = utf8::first_invalid(text)) {
        return errorf("tokenize: expected valid UTF-8 text, found an invalid byte at offset {}", *bad);
    }
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + post_.prefix.size() + post_.suffix.size() + 4);
    if (add_special) ids.insert(ids.end(), post_.prefix.begin(), post_.prefix.end());
    std::vector<std::pair<int32_t, Piece>> raw;
    split_added(text, raw_matcher_, true, raw);
    std::vector<std::pair<int32_t, Piece>> sub;
    for (auto& [id, piece] : raw) {
        if (id >= 0) {
            ids.push_back(id);
            continue;
        }
        HR_ASSIGN(std::string norm, normalizer_.apply(std::move(piece.text)));
        sub.clear();
        split_added(norm, normalized_matcher_, piece.at_origin, sub);
        for (auto& [sid, sp] : sub) {
            if (sid >= 0) ids.push_back(sid);
            else HR_TRY(encode_piece(std::move(sp), ids));
        }
    }
    if (add_special) ids.insert(ids.end(), post_.suffix.begin(), post_.suffix.end());
    return ids;
}

// ---- ids -> text ----

bool Tokenizer::is_valid_id(int32_t id) const {
    return added_by_id_.count(id) != 0 || model_.id_to_token(id) != nullptr;
}

bool Tokenizer::is_special(int32_t id) const {
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && special_contents_.count(added_[it->second].content) != 0;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    for (const AddedToken& at : added_) {
        if (at.content == token) return at.id;
    }
    return model_.token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].content;
    const std::string* s = model_.id_to_token(id);
    return s ? *s : std::string();
}

bool Tokenizer::skipped_when_skipping_special(int32_t id) const {
    // note: Hugging Face tests the decoded string (for a normalized added token, its normalized form)
    // against the set of special contents.
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && special_contents_.count(added_[it->second].match_content) != 0;
}

bool Tokenizer::is_byte_fallback_token(int32_t id) const {
    if (!model_.byte_fallback() || added_by_id_.count(id)) return false;
    const std::string* s = model_.id_to_token(id);
    return s != nullptr && tok::parse_byte_token(*s) >= 0;
}

std::string Tokenizer::decode_valid(std::span<const int32_t> ids) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
            // note: Hugging Face decodes a normalized added token as its normalized form.
            tokens.push_back(added_[it->second].match_content);
        } else {
            tokens.push_back(*model_.id_to_token(id));
        }
    }
    return decoder_.decode(std::move(tokens));
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
    std::vector<int32_t> kept;
    kept.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        const int32_t id = ids[i];
        if (!is_valid_id(id)) {
            return errorf("detokenize: id {} at position {} is not in the vocabulary (expected 0 <= id < {})", id, i,
                          vocab_size_);
        }
        if (skip_special && skipped_when_skipping_special(id)) continue;
        kept.push_back(id);
    }
    return decode_valid(kept);
}

std::string Tokenizer::token_bytes(int32_t id) const {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].content;
    const std::string* s = model_.id_to_token(id);
    if (s == nullptr) return {};
    return decoder_.token_bytes(*s);
}

// ---- StreamDecoder ----

Result<std::string> StreamDecoder::try_push(int32_t id) {
    if (!tok_->is_valid_id(id)) {
        return errorf("stream decode: id {} is not in the vocabulary (expected 0 <= id < {})", id, tok_->vocab_size());
    }
    return push(id);
}

std::string StreamDecoder::push(int32_t id) {
    HR_CHECK_MSG(tok_->is_valid_id(id), fmt::format("token id {} outside the vocabulary reached the detokenizer", id));
    if (skip_special_ && tok_->skipped_when_skipping_special(id)) return {};
    window_.push_back(id);
    if (tok_->is_byte_fallback_token(id)) return {};  // a later byte token may still change these bytes
    std::string text = tok_->decode_valid(window_);
    constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
    if (text.size() <= prefix_text_.size() || text.compare(0, prefix_text_.size(), prefix_text_) != 0 ||
        (text.size() >= 3 && std::string_view(text).substr(text.size() - 3) == kReplacement)) {
        return {};
    }
    std::string out = text.substr(prefix_text_.size());
    // The tokens just emitted become the context for the next step, unless they decode to nothing
    // (then a decoder's leading-space strip would wrongly hit the next token).
    std::vector<int32_t> next(window_.begin() + static_cast<std::ptrdiff_t>(prefix_len_), window_.end());
    std::string next_text = tok_->decode_valid(next);
    if (!next_text.empty()) {
        window_ = std::move(next);
        prefix_text_ = std::move(next_text);
    } else {
        prefix_text_ = std::move(text);
    }
    prefix_len_ = window_.size();
    return out;
}

std::string StreamDecoder::finish() {
    std::string out;
    if (window_.size() > prefix_len_) {
        const std::string text = tok_->decode_valid(window_);
        if (text.size() >= prefix_text_.size()) out = text.substr(prefix_text_.size());
    }
    window_.clear();
    prefix_len_ = 0;
    prefix_text_.clear();
    return out;
}

}  // namespace hr

// BPE model: load vocab + merges from tokenizer.json, and merge one word with a priority queue
// (lowest rank first, then leftmost), with stale-entry checks, as Hugging Face's Word::merge_all does.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "tokenizer/utf8.h"

namespace hr::tok {

namespace {
constexpr size_t kKeptScratchSymbols = 4096;  // 64 KiB per thread at most, between calls
}  // namespace

namespace {
std::string byte_token_name(uint8_t b) { return fmt::format("<0x{:02X}>", b); }
}  // namespace

Result<BpeModel> BpeModel::from_json(const nlohmann::json& m) {
    if (!m.is_object()) return make_error("tokenizer.json: expected \"model\" to be an object");
    const std::string type = m.value("type", std::string());
    if (type != "BPE") {
        return errorf("tokenizer.json: unsupported model type {:?} (headroom supports only \"BPE\")",
                      type.empty() ? std::string("<missing>") : type);
    }
    if (m.contains("dropout") && !m["dropout"].is_null()) {
        const double d = m["dropout"].is_number() ? m["dropout"].get<double>() : -1.0;
        if (d != 0.0) return make_error("tokenizer.json: BPE dropout is not supported (encodings would be random)");
    }
    BpeModel bpe;
    const auto& vocab = m.contains("vocab") ? m["vocab"] : nlohmann::json();
    if (!vocab.is_object() || vocab.empty()) {
        return make_error("tokenizer.json: expected model.vocab to be a non-empty object of token -> id");
    }
    int64_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        if (!it.value().is_number_integer()) return errorf("tokenizer.json: vocab entry {:?} has a non-integer id", it.key());
        const int64_t id = it.value().get<int64_t>();
        if (id < 0 || id >= (int64_t{1} << 31) - 1) {
            return errorf("tokenizer.json: vocab entry {:?} has id {} outside [0, 2^31-1)", it.key(), id);
        }
        max_id = std::max(max_id, id);
    }
    if (max_id >= static_cast<int64_t>(vocab.size()) * 4 + 1024) {
        return errorf("tokenizer.json: vocab has {} entries but ids up to {} (expected dense ids)", vocab.size(), max_id);
    }
    bpe.id_to_token_.resize(static_cast<size_t>(max_id + 1));
    bpe.has_id_.assign(static_cast<size_t>(max_id + 1), 0);
    bpe.vocab_.reserve(vocab.size());
    bpe.bmp_char_ids_.assign(0x10000, -1);
    bpe.byte_ids_.fill(-1);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const auto id = static_cast<int32_t>(it.value().get<int64_t>());
        if (bpe.has_id_[id]) {
            return errorf("tokenizer.json: vocab id {} is used by both {:?} and {:?}", id, bpe.id_to_token_[id], it.key());
        }
        if (utf8::first_invalid(it.key())) return errorf("tokenizer.json: vocab token with id {} is not valid UTF-8", id);
        bpe.has_id_[id] = 1;
        bpe.id_to_token_[id] = it.key();
        bpe.vocab_.emplace(it.key(), id);
        const std::string& k = it.key();
        size_t i = 0;
        if (!k.empty()) {
            const uint32_t cp = utf8::next_cp(k, i);
            if (i == k.size()) {
                if (cp < 0x10000) bpe.bmp_char_ids_[cp] = id;
                else bpe.astral_char_ids_[cp] = id;
            }
        }
    }
    for (int b = 0; b < 256; ++b) {
        if (auto it = bpe.vocab_.find(byte_token_name(static_cast<uint8_t>(b))); it != bpe.vocab_.end()) {
            bpe.byte_ids_[b] = it->second;
        }
    }
    const auto get_bool = [&](const char* key) { return m.contains(key) && m[key].is_boolean() && m[key].get<bool>(); };
    bpe.byte_fallback_ = get_bool("byte_fallback");
    bpe.fuse_unk_ = get_bool("fuse_unk");
    bpe.ignore_merges_ = get_bool("ignore_merges");
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
        const std::string unk = m["unk_token"].get<std::string>();
        auto it = bpe.vocab_.find(unk);
        if (it == bpe.vocab_.end()) return errorf("tokenizer.json: unk_token {:?} is not in the vocabulary", unk);
        bpe.unk_id_ = it->second;
    }
    if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string()) {
        bpe.continuing_subword_prefix_ = m["continuing_subword_prefix"].get<std::string>();
    }
    if (m.contains("end_of_word_suffix") && m["end_of_word_suffix"].is_string()) {
        bpe.end_of_word_suffix_ = m["end_of_word_suffix"].get<std::string>();
    }

    const auto& merges = m.contains("merges") ? m["merges"] : nlohmann::json();
    if (!merges.is_array()) return make_error("tokenizer.json: expected model.merges to be an array");
    bpe.merges_.reserve(merges.size());
    int32_t rank = 0;
    for (size_t i = 0; i < merges.size(); ++i) {
        const auto& e = merges[i];
        std::string a, b;
        if (e.is_string()) {
            const std::string s = e.get<std::string>();
            if (s.rfind("#version", 0) == 0) continue;
            const size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
                return errorf("tokenizer.json: merge #{} {:?}: expected exactly one space between two tokens", i, s);
            }
            a = s.substr(0, sp);
            b = s.substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            a = e[0].get<std::string>();
            b = e[1].get<std::string>();
        } else {
            return errorf("tokenizer.json: merge #{} is neither an \"a b\" string nor an [a, b] pair", i);
        }
        auto ia = bpe.vocab_.find(a), ib = bpe.vocab_.find(b), ic = bpe.vocab_.find(a + b);
        if (ia == bpe.vocab_.end() || ib == bpe.vocab_.end() || ic == bpe.vocab_.end()) {
            return errorf("tokenizer.json: merge #{} ({:?}, {:?}) uses a token that is not in the vocabulary", i, a, b);
        }
        // note: a later duplicate of a pair overrides the earlier one, as in Hugging Face's hash map.
        bpe.merges_[pair_key(ia->second, ib->second)] = MergeInfo{rank, ic->second};
        ++rank;
    }
    if (bpe.merges_.empty()) {
        return make_error("tokenizer.json: BPE model has an empty merge table (expected ranked merges; refusing to "
                          "tokenize one symbol per character)");
    }
    return bpe;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
    return &id_to_token_[id];
}

int32_t BpeModel::char_id(std::string_view ch, uint32_t cp, bool is_first, bool is_last) const {
    const bool decorate = (!is_first && !continuing_subword_prefix_.empty()) || (is_last && !end_of_word_suffix_.empty());
    if (!decorate) {
        if (cp < 0x10000) return bmp_char_ids_[cp];
        auto it = astral_char_ids_.find(cp);
        return it == astral_char_ids_.end() ? -1 : it->second;
    }
    std::string s;
    if (!is_first) s += continuing_subword_prefix_;
    s += ch;
    if (is_last) s += end_of_word_suffix_;
    auto it = vocab_.find(s);
    return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::tokenize(std::string_view w, std::vector<int32_t>& out) const {
    if (w.empty()) return;
    if (ignore_merges_) {
        if (auto it = vocab_.find(w); it != vocab_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    thread_local std::vector<Symbol> symbols;
    symbols.clear();
    // note: the scratch is reused, but keeps no more than kKeptScratchSymbols: one huge word (a 2 MB
    // prompt without spaces) must not pin its high-water mark on every HTTP thread (issue 17 row 4).
    struct Shrink {
        std::vector<Symbol>& v;
        ~Shrink() {
            if (v.capacity() > kKeptScratchSymbols) std::vector<Symbol>().swap(v);
        }
    } shrink{symbols};
    const auto add = [&](int32_t id, uint32_t len) {
        const auto n = static_cast<int32_t>(symbols.size());
        symbols.push_back(Symbol{id, n - 1, n + 1, len});
    };
    // (unk id, bytes) of a pending unknown run, fused or not, as Hugging Face's merge_word keeps it.
    int32_t unk_pending = -1;
    uint32_t unk_len = 0;
    size_t i = 0;
    while (i < w.size()) {
        const size_t start = i;
        const uint32_t cp = utf8::next_cp(w, i);
        const std::string_view ch = w.substr(start, i - start);
        const int32_t id = char_id(ch, cp, start == 0, i == w.size());
        if (id >= 0) {
            if (unk_pending >= 0) {
                add(unk_pending, unk_len);
                unk_pending = -1;
            }
            add(id, static_cast<uint32_t>(ch.size()));
            continue;
        }
        if (byte_fallback_) {
            bool all = true;
            for (char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
            if (all) {
                for (char c : ch) add(byte_ids_[static_cast<uint8_t>(c)], 1);
                continue;
            }
        }
        if (unk_id_) {
            if (unk_pending >= 0 && fuse_unk_) {
                unk_len += static_cast<uint32_t>(ch.size());
            } else {
                if (unk_pending >= 0) add(unk_pending, unk_len);
                unk_pending = *unk_id_;
                unk_len = static_cast<uint32_t>(ch.size());
            }
        }
    }
    if (unk_pending >= 0) add(unk_pending, unk_len);
    if (symbols.empty()) return;
    symbols.back().next = -1;
    merge_all(symbols);
    for (const Symbol& s : symbols) {
        if (s.len != 0) out.push_back(s.id);
    }
}

void BpeModel::merge_all(std::vector<Symbol>& symbols) const {
    struct Merge {
        int32_t rank;
        int32_t pos;
        int32_t new_id;
        // priority_queue pops the largest: "larger" = lower rank, then lower position.
        bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Merge> heap_storage;
    heap_storage.reserve(symbols.size());
    const auto lookup = [&](int32_t a, int32_t b) -> const MergeInfo* {
        auto it = merges_.find(pair_key(a, b));
        return it == merges_.end() ? nullptr : &it->second;
    };
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
        if (const MergeInfo* mi = lookup(symbols[k].id, symbols[k + 1].id)) {
            heap_storage.push_back(Merge{mi->rank, static_cast<int32_t>(k), mi->new_id});
        }
    }
    std::priority_queue<Merge, std::vector<Merge>> queue(std::less<Merge>(), std::move(heap_storage));
    const auto n = static_cast<int32_t>(symbols.size());
    while (!queue.empty()) {
        const Merge top = queue.top();
        queue.pop();
        Symbol& cur = symbols[top.pos];
        if (cur.len == 0 || cur.next == -1) continue;
        const int32_t next_pos = cur.next;
        const Symbol right = symbols[next_pos];
        const MergeInfo* mi = lookup(cur.id, right.id);
        if (mi == nullptr || mi->new_id != top.new_id) continue;  // stale entry
        cur.id = top.new_id;
        cur.len += right.len;
        cur.next = right.next;
        symbols[next_pos].len = 0;
        if (right.next >= 0 && right.next < n) symbols[right.next].prev = top.pos;
        if (cur.prev >= 0) {
            if (const MergeInfo* pm = lookup(symbols[cur.prev].id, cur.id)) {
                queue.push(Merge{pm->rank, cur.prev, pm->new_id});
            }
        }
        if (cur.next >= 0 && cur.next < n) {
            if (const MergeInfo* nm = lookup(cur.id, symbols[cur.next].id)) {
                queue.push(Merge{nm->rank, top.pos, nm->new_id});
            }
        }
    }
}

}  // namespace hr::tok

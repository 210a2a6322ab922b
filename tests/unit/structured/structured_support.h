// Test/bench/tool support for constrained decoding: a TokenVocab from a Hugging Face tokenizer.json
// (SentencePiece "▁" -> space, <0xNN> -> byte) and a seeded random walk over the constraint's masks.
#pragma once

#include <cstdint>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "structured/constraint.h"

namespace hr::structured_test {

// note: stands in for Tokenizer::token_bytes until the tokenizer library provides it.
inline Result<TokenVocab> vocab_from_tokenizer_json(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("cannot open {}", path);
    std::stringstream ss;
    ss << f.rdbuf();
    nlohmann::json t;
    try {
        t = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
        return errorf("{}: not JSON ({})", path, e.what());
    }
    const auto& vocab = t["model"]["vocab"];
    size_t n = 0;
    for (auto& [k, v] : vocab.items()) n = std::max(n, v.get<size_t>() + 1);
    std::vector<std::string> bytes(n);
    std::vector<bool> special(n, false);
    int32_t eos = -1;
    for (auto& [k, v] : vocab.items()) {
        std::string s = k;
        size_t id = v.get<size_t>();
        if (s.size() == 6 && s.rfind("<0x", 0) == 0 && s[5] == '>') {
            bytes[id] = std::string(1, static_cast<char>(std::stoi(s.substr(3, 2), nullptr, 16)));
            continue;
        }
        std::string out;
        for (size_t i = 0; i < s.size();) {
            if (s.compare(i, 3, "\xE2\x96\x81") == 0) {
                out += ' ';
                i += 3;
            } else {
                out += s[i++];
            }
        }
        bytes[id] = out;
    }
    for (auto& a : t["added_tokens"]) {
        size_t id = a["id"].get<size_t>();
        if (id >= n) continue;
        if (a.value("special", false)) special[id] = true;
        if (a["content"] == "</s>") eos = static_cast<int32_t>(id);
    }
    return TokenVocab::create(std::move(bytes), std::move(special), eos);
}

inline std::string mistral_tokenizer_path() {
    return std::string(HR_FIXTURES_DIR) + "/tokenizers/mistral/tokenizer.json";
}

// CPU time of the calling thread: unaffected by time the thread spends descheduled on a busy machine.
inline double thread_cpu_us() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
}

struct Sample {
    std::string text;
    bool finished = false;  // EOS accepted
    size_t tokens = 0;
    std::string error;      // a dead end or a rejected allowed token (must never happen)
};

// A random walk over the masks: EOS is taken with probability 0.9 when allowed; otherwise, with
// probability 0.35, a token containing one of "]}, is preferred (so strings and arrays end), else any
// allowed token uniformly. mask_us (optional) receives the thread CPU time of each allowed_tokens call.
inline Sample sample_one(const std::shared_ptr<const CompiledConstraint>& c, const TokenVocab& vocab,
                         std::mt19937_64& rng, size_t max_tokens, std::vector<double>* mask_us = nullptr) {
    ConstraintState st(c);
    Sample out;
    std::vector<uint32_t> mask;
    std::vector<int32_t> allowed, structural;
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    for (size_t step = 0; step < max_tokens; ++step) {
        double t0 = mask_us ? thread_cpu_us() : 0.0;
        st.allowed_tokens(vocab, mask);
        if (mask_us) mask_us->push_back(thread_cpu_us() - t0);
        allowed.clear();
        structural.clear();
        bool eos = false;
        for (size_t w = 0; w < mask.size(); ++w) {
            uint32_t bits = mask[w];
            while (bits) {
                int b = __builtin_ctz(bits);
                bits &= bits - 1;
                int32_t id = static_cast<int32_t>(w * 32 + static_cast<size_t>(b));
                if (id == vocab.eos_id()) {
                    eos = true;
                    continue;
                }
                allowed.push_back(id);
                if (vocab.token_bytes(id).find_first_of("\"]},") != std::string::npos) structural.push_back(id);
            }
        }
        if (eos != st.is_complete()) {
            out.error = "EOS mask bit disagrees with is_complete()";
            break;
        }
        if (eos && (allowed.empty() || coin(rng) < 0.9)) {
            auto s = st.advance(vocab.eos_id(), vocab);
            if (!s.ok()) out.error = s.error().message;
            out.finished = s.ok();
            break;
        }
        if (allowed.empty()) {
            out.error = "dead end: no token allowed and the output is not complete";
            break;
        }
        const auto& pool = (!structural.empty() && coin(rng) < 0.35) ? structural : allowed;
        int32_t tok = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
        auto s = st.advance(tok, vocab);
        if (!s.ok()) {
            out.error = "allowed token rejected: " + s.error().message;
            break;
        }
        ++out.tokens;
    }
    out.text = st.text();
    return out;
}

}  // namespace hr::structured_test

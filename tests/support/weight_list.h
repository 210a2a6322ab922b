// Every weight of a ModelWeights with a name, in one order: for tests that compare two models' weights
// member by member (tensor-parallel loading against the cut model).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "model/weights.h"

namespace hr::test {

inline std::vector<std::pair<std::string, Weight>> weight_list(const ModelWeights& w) {
    std::vector<std::pair<std::string, Weight>> out{{"embedding", w.embedding}, {"final_norm", w.final_norm},
                                                    {"lm_head", w.lm_head}};
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerWeights& x = w.layers[l];
        for (const auto& [n, v] : {std::pair<const char*, const Weight*>{"attn_norm", &x.attn_norm}, {"ffn_norm", &x.ffn_norm},
                                   {"q_norm", &x.q_norm}, {"k_norm", &x.k_norm}, {"wq", &x.wq}, {"wk", &x.wk},
                                   {"wv", &x.wv}, {"wo", &x.wo}, {"bq", &x.bq}, {"bk", &x.bk}, {"bv", &x.bv},
                                   {"w1", &x.w1}, {"w2", &x.w2}, {"w3", &x.w3}, {"router", &x.router}})
            out.emplace_back(fmt::format("layer {} {}", l, n), *v);
        for (size_t e = 0; e < x.ew1.size(); ++e) {
            out.emplace_back(fmt::format("layer {} expert {} w1", l, e), x.ew1[e]);
            out.emplace_back(fmt::format("layer {} expert {} w2", l, e), x.ew2[e]);
            out.emplace_back(fmt::format("layer {} expert {} w3", l, e), x.ew3[e]);
        }
    }
    return out;
}

}  // namespace hr::test

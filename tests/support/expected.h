// The reference outputs of a fixture model (expected.safetensors): per prompt, its token ids, the
// transformers logits at every position and the greedy continuation.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "support/fixtures.h"

namespace hr::test {

struct Expected {
    std::vector<int32_t> tokens;  // [T] prompt ids with BOS
    std::vector<float> logits;    // [T, vocab]
    std::vector<int32_t> greedy;  // [24]
};

template <class T>
std::vector<T> read_tensor_vec(const io::SafetensorsFile& f, const std::string& name) {
    const io::TensorInfo* t = f.find(name);
    EXPECT_NE(t, nullptr) << name;
    if (!t) return {};
    std::vector<T> v(t->nbytes / sizeof(T));
    std::memcpy(v.data(), t->data, t->nbytes);  // note: tensor data may be unaligned in the file
    return v;
}

inline std::vector<Expected> read_expected(const std::string& model) {
    auto f = io::SafetensorsFile::open(model_fixture(model) + "/expected.safetensors");
    EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
    std::vector<Expected> out;
    if (!f.ok()) return out;
    for (int i = 0; (*f)->find("tokens_" + std::to_string(i)); ++i) {
        Expected e;
        e.tokens = read_tensor_vec<int32_t>(**f, "tokens_" + std::to_string(i));
        e.logits = read_tensor_vec<float>(**f, "logits_" + std::to_string(i));
        e.greedy = read_tensor_vec<int32_t>(**f, "greedy_" + std::to_string(i));
        out.push_back(std::move(e));
    }
    return out;
}

}  // namespace hr::test

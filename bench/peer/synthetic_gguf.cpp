// A synthetic Mixtral-8x7B GGUF for llama.cpp's own benchmark (bench/peer/run_llama.sh, issue #15's side by
// side): the real shapes, names and metadata that llama.cpp expects, weights of a repeated random block.
//   synthetic_gguf OUT.gguf --type q8_0|q4_k [--layers 1..32]
// Matrices (attention, experts, embedding, output head) in the chosen type, norms and the router in f32 (as
// llama-quantize leaves them), a generated 32000-token SentencePiece vocabulary. Scale fields of every block
// are small finite f16 values, so the arithmetic is that of real weights; only speed is measured with it.
// Written by streaming (header, then each tensor at its offset): the file is larger than memory would like.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/builtin_models.h"
#include "model/config.h"
#include "model/gguf_config.h"
#include "model/gguf_metadata.h"
#include "model/tensor_names.h"

namespace {

using namespace hr;
using Clock = std::chrono::steady_clock;

int fail(const std::string& msg) {
    std::fprintf(stderr, "synthetic_gguf: %s\n", msg.c_str());
    return 1;
}

// One block type's repeated pattern: `n_blocks` blocks of random quants with finite f16 scales.
std::vector<uint8_t> random_blocks(io::GgmlType t, size_t n_blocks, std::mt19937_64& rng) {
    const auto sz = io::ggml_type_size(static_cast<uint32_t>(t));
    std::vector<uint8_t> b(n_blocks * static_cast<size_t>(sz->block_bytes));
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    const uint16_t d = 0x0C00, dmin = 0x0800;  // f16 2^-12 and 2^-13
    for (size_t i = 0; i < n_blocks; ++i) {
        uint8_t* blk = b.data() + i * static_cast<size_t>(sz->block_bytes);
        std::memcpy(blk, &d, 2);                                   // Q8_0 and Q4_K: d first
        if (t == io::GgmlType::Q4_K) std::memcpy(blk + 2, &dmin, 2);  // Q4_K: then dmin
    }
    return b;
}

// A llama-style (SentencePiece) vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then plain pieces.
void add_vocab(std::vector<io::GgufKV>& kv, int64_t n) {
    std::vector<std::string> tokens;
    std::vector<double> scores;
    std::vector<int64_t> types;
    tokens.reserve(static_cast<size_t>(n));
    for (const char* s : {"<unk>", "<s>", "</s>"}) tokens.emplace_back(s);
    types = {2, 3, 3};  // unknown, control, control
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(fmt::format("<0x{:02X}>", b));
        types.push_back(6);  // byte
    }
    for (int64_t i = static_cast<int64_t>(tokens.size()); i < n; ++i) {
        tokens.push_back(fmt::format("\xE2\x96\x81t{}", i));  // "▁t<i>"
        types.push_back(1);
    }
    for (int64_t i = 0; i < n; ++i) scores.push_back(-static_cast<double>(i));
    kv.push_back(io::gguf_kv_str("tokenizer.ggml.model", "llama"));
    kv.push_back(io::gguf_kv_str_array("tokenizer.ggml.tokens", std::move(tokens)));
    kv.push_back(io::gguf_kv_f32_array("tokenizer.ggml.scores", std::move(scores)));
    kv.push_back(io::gguf_kv_i32_array("tokenizer.ggml.token_type", std::move(types)));
    // bos (1) and eos (2) come from the config through gguf_metadata_for: Mixtral's ids, these tokens' places.
    kv.push_back(io::gguf_kv_u32("tokenizer.ggml.unknown_token_id", 0));
}

}  // namespace

int main(int argc, char** argv) {
    std::string out, type = "q8_0";
    int layers = 32;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--type" && i + 1 < argc) type = argv[++i];
        else if (a == "--layers" && i + 1 < argc) layers = std::atoi(argv[++i]);
        else if (out.empty() && !a.empty() && a[0] != '-') out = a;
        else return fail(fmt::format("unexpected argument '{}'", a));
    }
    if (out.empty() || layers < 1 || layers > 32 || (type != "q8_0" && type != "q4_k"))
        return fail("usage: synthetic_gguf OUT.gguf --type q8_0|q4_k [--layers 1..32]");
    const io::GgmlType qt = type == "q8_0" ? io::GgmlType::Q8_0 : io::GgmlType::Q4_K;
    // Mixtral-8x7B's published config (the same one `headroom bench --synthetic mixtral-8x7b` uses), cut to `layers`.
    ModelConfig c = find_builtin_model("mixtral-8x7b")->config;
    c.n_layers = layers;

    std::vector<io::GgufKV> kv = gguf_metadata_for(c);
    kv.push_back(io::gguf_kv_str("general.name", fmt::format("synthetic Mixtral-8x7B {} ({} layers)", type, layers)));
    kv.push_back(io::gguf_kv_u32("general.file_type", qt == io::GgmlType::Q8_0 ? 7 : 15));  // MOSTLY_Q8_0, MOSTLY_Q4_K_M
    add_vocab(kv, c.vocab_size);

    // GGUF tensors from the Hugging Face specs: experts stacked [E, rows, cols] under one name.
    struct Planned { io::GgufTensorToWrite t; bool f32; };
    std::vector<Planned> ts;
    for (const TensorSpec& s : expected_tensors(c)) {
        const auto src = gguf_source_for(s.hf_name);
        if (!src) return fail(fmt::format("no GGUF name for '{}'", s.hf_name));
        if (src->expert > 0) continue;  // the stacked tensor is planned once, at expert 0
        std::vector<int64_t> shape = s.shape;
        if (src->expert == 0) shape.insert(shape.begin(), c.n_experts);
        const bool f32 = shape.size() == 1 || src->name.find("ffn_gate_inp") != std::string::npos;
        const auto t = f32 ? io::GgmlType::F32 : qt;
        const auto sz = io::ggml_type_size(static_cast<uint32_t>(t));
        int64_t numel = 1;
        for (int64_t d : shape) numel *= d;
        ts.push_back({{src->name, shape, static_cast<uint32_t>(t), nullptr,
                       static_cast<uint64_t>(numel / sz->block_elems * sz->block_bytes)},
                      f32});
    }
    std::vector<io::GgufTensorToWrite> list;
    for (auto& p : ts) list.push_back(p.t);
    io::GgufWriteOptions o;
    o.header_only = true;
    io::GgufLayout lay;
    auto header = io::serialize_gguf(kv, list, o, &lay);
    if (!header.ok()) return fail(header.error().message);

    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail(fmt::format("cannot create {}: {}", out, std::strerror(errno)));
    auto put = [&](const uint8_t* p, uint64_t n, uint64_t at) {
        while (n > 0) {
            const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
            if (w <= 0) return false;
            p += w, n -= static_cast<uint64_t>(w), at += static_cast<uint64_t>(w);
        }
        return true;
    };
    if (!put(header->data(), header->size(), 0)) return fail(fmt::format("{}: write failed: {}", out, std::strerror(errno)));
    std::mt19937_64 rng(15);
    const auto qsz = io::ggml_type_size(static_cast<uint32_t>(qt));
    // 64 MiB of blocks (a whole number of them), repeated; f32 values in [0.5, 1.5) for norms and the router.
    const std::vector<uint8_t> qblock = random_blocks(qt, (64u << 20) / static_cast<size_t>(qsz->block_bytes), rng);
    std::vector<uint8_t> fblock(1u << 20);
    for (size_t i = 0; i < fblock.size(); i += 4) {
        const float v = 0.5f + static_cast<float>(rng() % 1000) / 1000.0f;
        std::memcpy(fblock.data() + i, &v, 4);
    }
    const auto t0 = Clock::now();
    uint64_t written = 0, total = lay.tensor_data_at.back() + list.back().nbytes;
    for (size_t i = 0; i < ts.size(); ++i) {
        const std::vector<uint8_t>& b = ts[i].f32 ? fblock : qblock;
        const uint64_t n = list[i].nbytes, at = lay.tensor_data_at[i];
        for (uint64_t off = 0; off < n; off += b.size()) {
            if (!put(b.data(), std::min<uint64_t>(b.size(), n - off), at + off)) {
                ::close(fd);
                ::unlink(out.c_str());
                return fail(fmt::format("{}: write failed (disk full?): {}; the partial file was removed", out,
                                        std::strerror(errno)));
            }
        }
        written += n;
    }
    if (::ftruncate(fd, static_cast<off_t>(total)) != 0 || ::close(fd) != 0) return fail(fmt::format("{}: cannot finish the file", out));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("wrote %s: Mixtral-8x7B shapes, %d layers, %s, %.2f GB in %.1f s (%.2f GB/s)\n", out.c_str(), layers,
                type.c_str(), static_cast<double>(total) * 1e-9, s, static_cast<double>(written) * 1e-9 / s);
    return 0;
}

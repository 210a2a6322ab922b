// headroom's CPU forward pass on a real GGUF model's tensors, timed: one prefill of N prompt tokens
// (logits of the last row only, as classification and generation need) and D decode steps.
//   cpu_forward_bench MODEL.gguf [--prompt N] [--decode D] [--reps R]
// Prints one JSON line: prefill_s, prefill_tok_s, decode_tok_s (best of R), threads, isa.
// note: this drives forward() directly on the file's tensors as stored (gg_* blocks, f32 norms, tied
// head = the embedding); it does not undo llama.cpp's Q/K row permutation and feeds arbitrary token ids,
// so the logits are meaningless, but every byte and FLOP of a real run is there (the speed is the same).
// It exists so that the kernels can be timed end to end before/without the GGUF model loader.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul_ggml.h"
#include "io/gguf.h"
#include "model/activations.h"
#include "model/forward.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using namespace hr;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "cpu_forward_bench: %s\n", msg.c_str());
    std::exit(1);
}

Weight tensor(const io::GgufFile& f, const std::string& name) {
    const io::GgufTensor* t = f.find(name);
    if (!t) die("tensor " + name + " not in the file");
    if (!t->supported) die("tensor " + name + " has a type headroom cannot compute");
    Weight w;
    w.dtype = t->dtype;
    w.rows = t->shape.size() == 2 ? t->shape[0] : 1;
    w.cols = t->shape.back();
    w.data = t->data;
    return w;
}

int64_t meta_int(const io::GgufFile& f, const std::string& key) {
    auto v = f.get_int(key);
    if (!v.ok() || !v->has_value()) die("metadata " + key + " missing");
    return **v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) die("usage: cpu_forward_bench MODEL.gguf [--prompt N] [--decode D] [--reps R]");
    int64_t n_prompt = 250, n_decode = 32;
    int reps = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--prompt") n_prompt = std::atoll(argv[i + 1]);
        else if (a == "--decode") n_decode = std::atoll(argv[i + 1]);
        else if (a == "--reps") reps = std::atoi(argv[i + 1]);
        else die("unknown option " + a);
    }
    auto opened = io::GgufFile::open(argv[1]);
    if (!opened.ok()) die(opened.error().message);
    const io::GgufFile& f = **opened;
    auto arch = f.get_string("general.architecture");
    if (!arch.ok() || !arch->has_value() || **arch != "llama") die("expected a llama-architecture GGUF");

    ModelConfig cfg;
    cfg.n_layers = meta_int(f, "llama.block_count");
    cfg.dim = meta_int(f, "llama.embedding_length");
    cfg.ffn_dim = meta_int(f, "llama.feed_forward_length");
    cfg.n_heads = meta_int(f, "llama.attention.head_count");
    cfg.n_kv_heads = meta_int(f, "llama.attention.head_count_kv");
    cfg.head_dim = cfg.dim / cfg.n_heads;
    if (auto th = f.get_float("llama.rope.freq_base"); th.ok() && th->has_value()) cfg.rope_theta = **th;
    if (auto e = f.get_float("llama.attention.layer_norm_rms_epsilon"); e.ok() && e->has_value()) cfg.norm_eps = **e;

    ModelWeights w;
    w.embedding = tensor(f, "token_embd.weight");
    cfg.vocab_size = w.embedding.rows;
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        LayerWeights lw;
        lw.attn_norm = tensor(f, p + "attn_norm.weight");
        lw.wq = tensor(f, p + "attn_q.weight");
        lw.wk = tensor(f, p + "attn_k.weight");
        lw.wv = tensor(f, p + "attn_v.weight");
        lw.wo = tensor(f, p + "attn_output.weight");
        lw.ffn_norm = tensor(f, p + "ffn_norm.weight");
        lw.w1 = tensor(f, p + "ffn_gate.weight");
        lw.w3 = tensor(f, p + "ffn_up.weight");
        lw.w2 = tensor(f, p + "ffn_down.weight");
        w.layers.push_back(lw);
    }
    w.final_norm = tensor(f, "output_norm.weight");
    w.lm_head = f.find("output.weight") ? tensor(f, "output.weight") : w.embedding;

    const int block = 16;
    const int64_t ctx = n_prompt + n_decode + 1;
    StepLimits lim;
    lim.max_tokens = n_prompt;
    lim.max_seqs = 1;
    lim.max_blocks_per_seq = (ctx + block - 1) / block;
    std::vector<uint8_t> arena(activation_bytes(cfg, lim) + 256);
    void* abase = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arena.data()) + 255) & ~uintptr_t{255});
    Activations act = carve_activations(cfg, lim, abase);
    std::vector<uint8_t> kvmem(kv_cache_bytes(cfg, lim.max_blocks_per_seq, block, DType::f32) + 256);
    void* kbase = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(kvmem.data()) + 255) & ~uintptr_t{255});
    KvCache kv = carve_kv_cache(cfg, lim.max_blocks_per_seq, block, DType::f32, kbase);

    cpu::CpuBackend be;
    std::vector<int32_t> tables(static_cast<size_t>(lim.max_blocks_per_seq));
    for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
    auto step = [&](int64_t first_pos, int64_t n) {
        StepBatch b;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t p = first_pos + i;
            b.token_ids.push_back(static_cast<int32_t>((p * 7919 + 13) % cfg.vocab_size));
            b.positions.push_back(static_cast<int32_t>(p));
            b.token_seq.push_back(0);
            b.slot_mapping.push_back(static_cast<int32_t>(p));
        }
        b.block_tables = tables;
        b.logit_rows = {static_cast<int32_t>(n - 1)};
        const Status st = forward(be, cfg, w, lim, act, kv, b);
        if (!st.ok()) die(st.error().message);
    };
    double best_prefill = 1e30, best_decode = 1e30;
    for (int r = 0; r < reps; ++r) {
        double t0 = now_s();
        step(0, n_prompt);
        best_prefill = std::min(best_prefill, now_s() - t0);
        t0 = now_s();
        for (int64_t d = 0; d < n_decode; ++d) step(n_prompt + d, 1);
        if (n_decode > 0) best_decode = std::min(best_decode, (now_s() - t0) / static_cast<double>(n_decode));
    }
    int threads = 1;
#if defined(_OPENMP)
    threads = omp_get_max_threads();
#endif
    std::printf("{\"engine\": \"headroom\", \"prompt_tokens\": %lld, \"prefill_s\": %.4f, \"prefill_tok_s\": %.1f, "
                "\"decode_tokens\": %lld, \"decode_tok_s\": %.1f, \"threads\": %d, \"isa\": \"%s\"}\n",
                static_cast<long long>(n_prompt), best_prefill, static_cast<double>(n_prompt) / best_prefill,
                static_cast<long long>(n_decode), n_decode > 0 ? 1.0 / best_decode : 0.0, threads,
                cpu::cpu_isa_name(cpu::best_cpu_isa()));
    return 0;
}

// CPU matmul kernel benchmark on SmolLM2-135M's shapes (dim 576, ffn 1536, 3 kv heads of 64, vocab 49152):
// times the tiled matmul for one layer's seven products and the tied Q8_0 head, per weight dtype and
// input count, and prints per-layer ms, the whole model's matmul time (30 layers) and GFLOP/s.
//   cpu_kernel_bench [--isa scalar|avx2|avx512] [--dtype Q4_1,...] [--tokens 1,250,2000] [--reps N]
// Weights are random blocks of the right layout (speed does not depend on the values).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "backend/cpu/matmul_ggml.h"
#include "backend/cpu/matmul_quant.h"
#include "core/half.h"
#include "quant/formats.h"
#include "quant/ggml_blocks.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using namespace hr;

struct Mat {
    std::vector<uint8_t> data, scales;
    Weight w;
};

Mat make(DType dt, int64_t rows, int64_t cols, std::mt19937& rng) {
    Mat m;
    m.data.resize(static_cast<size_t>(quant::weight_data_bytes(dt, rows, cols)));
    m.scales.resize(static_cast<size_t>(quant::weight_scale_bytes(dt, rows, cols)));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : m.data) b = static_cast<uint8_t>(byte(rng));
    // Finite scales everywhere: f16 0.01 in every f16 slot a block may have, or small floats.
    const uint16_t h = f32_to_f16(0.01f);
    if (is_ggml_block_dtype(dt)) {
        const int64_t bb = quant::ggml_block_bytes(dt);
        for (size_t o = 0; o < m.data.size(); o += static_cast<size_t>(bb)) {
            std::memcpy(&m.data[o], &h, 2);
            std::memcpy(&m.data[o + 2], &h, 2);
            if (dt == DType::gg_q6_k) std::memcpy(&m.data[o + 208], &h, 2);
        }
    } else if (dt == DType::f32) {
        for (size_t i = 0; i < m.data.size(); i += 4) std::memcpy(&m.data[i], &(const float&)0.01f, 4);
    } else if (dt == DType::f16 || dt == DType::bf16) {
        for (size_t i = 0; i < m.data.size(); i += 2) std::memcpy(&m.data[i], &h, 2);
    }
    if (dt == DType::q8)
        for (size_t i = 0; i < m.scales.size(); i += 4) std::memcpy(&m.scales[i], &(const float&)0.001f, 4);
    if (dt == DType::q4)
        for (size_t i = 0; i < m.scales.size(); i += 2) std::memcpy(&m.scales[i], &h, 2);
    m.w = Weight{.dtype = dt, .rows = rows, .cols = cols, .data = m.data.data(),
                 .scales = m.scales.empty() ? nullptr : m.scales.data()};
    return m;
}

// --clock cpu: this process's CPU time (useful with OMP_NUM_THREADS=1 on a machine shared with other
// work, where wall time measures the neighbours); default wall time.
bool g_cpu_clock = false;

double now_s() {
    if (g_cpu_clock) {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

DType parse_dtype(std::string_view s) {
    for (int i = 0; i <= static_cast<int>(DType::gg_q6_k); ++i)
        if (dtype_name(static_cast<DType>(i)) == s) return static_cast<DType>(i);
    std::fprintf(stderr, "unknown dtype %.*s\n", static_cast<int>(s.size()), s.data());
    std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t a = 0;
    while (a <= s.size()) {
        const size_t b = s.find(',', a);
        out.push_back(s.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
        a = b + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    cpu::CpuIsa isa = cpu::best_cpu_isa();
    std::string dtypes = "Q4_1,Q8_0,Q4_0,Q4_K,Q6_K,f32,int8", tokens = "1,250,2000";
    int reps = 3;
    bool legacy_int = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--isa") {
            const std::string v = next();
            isa = v == "scalar" ? cpu::CpuIsa::scalar : v == "avx2" ? cpu::CpuIsa::avx2 : cpu::CpuIsa::avx512;
        } else if (a == "--dtype") dtypes = next();
        else if (a == "--tokens") tokens = next();
        else if (a == "--reps") reps = std::stoi(next());
        else if (a == "--clock") g_cpu_clock = next() == "cpu";
        else if (a == "--legacy-int") legacy_int = true;  // int8/int4 decode through matmul_quant's kernels
        else {
            std::fprintf(stderr, "usage: cpu_kernel_bench [--isa scalar|avx2|avx512] [--dtype A,B] [--tokens 1,250] [--reps N]\n");
            return 2;
        }
    }
    if (!cpu::cpu_isa_supported(isa)) {
        std::fprintf(stderr, "the CPU lacks %s\n", cpu::cpu_isa_name(isa));
        return 2;
    }
    int threads = 1;
#if defined(_OPENMP)
    threads = omp_get_max_threads();
#endif
    std::printf("isa %s, %d threads\n", cpu::cpu_isa_name(isa), threads);
    std::printf("%-6s %6s %10s %10s %10s %10s %8s\n", "dtype", "tokens", "layer_ms", "head_ms", "model_ms", "tok/s",
                "GFLOP/s");
    std::mt19937 rng(1);
    constexpr int64_t kDim = 576, kFfn = 1536, kKv = 192, kVocab = 49152, kLayers = 30;
    const Mat head = make(DType::gg_q8_0, kVocab, kDim, rng);
    for (const std::string& ds : split(dtypes)) {
        const DType dt = parse_dtype(ds);
        // q, k, v, o, gate, up, down of one layer
        const int64_t shapes[7][2] = {{kDim, kDim}, {kKv, kDim}, {kKv, kDim}, {kDim, kDim},
                                      {kFfn, kDim}, {kFfn, kDim}, {kDim, kFfn}};
        std::vector<Mat> mats;
        for (const auto& s : shapes) mats.push_back(make(dt, s[0], s[1], rng));
        for (const std::string& ts : split(tokens)) {
            const int64_t n = std::stoll(ts);
            std::vector<float> in(static_cast<size_t>(n * kFfn), 0.1f), out(static_cast<size_t>(std::max(n * kFfn, kVocab)));
            auto run = [&](const Weight& w, int64_t nn) {
                if (legacy_int && nn <= cpu::kGemvMaxTokens && (w.dtype == DType::q8 || w.dtype == DType::q4)) {
                    if (w.dtype == DType::q8) cpu::matmul_q8(out.data(), in.data(), nn, w);
                    else cpu::matmul_q4(out.data(), in.data(), nn, w);
                } else {
                    cpu::matmul_tiled_isa(isa, out.data(), in.data(), nn, w);
                }
            };
            for (const Mat& m : mats) run(m.w, n);  // warm-up
            double best_layer = 1e30, best_head = 1e30;
            for (int r = 0; r < reps; ++r) {
                double t0 = now_s();
                for (const Mat& m : mats) run(m.w, n);
                best_layer = std::min(best_layer, now_s() - t0);
                t0 = now_s();
                run(head.w, 1);  // the head: one logit row (decode or the label position)
                best_head = std::min(best_head, now_s() - t0);
            }
            double flops = 0;
            for (const auto& s : shapes) flops += 2.0 * static_cast<double>(s[0] * s[1] * n);
            const double model = best_layer * kLayers + best_head;
            std::printf("%-6s %6lld %10.3f %10.3f %10.2f %10.1f %8.1f\n", ds.c_str(), static_cast<long long>(n),
                        best_layer * 1e3, best_head * 1e3, model * 1e3, static_cast<double>(n) / model,
                        flops / best_layer * 1e-9);
            std::fflush(stdout);
        }
    }
    return 0;
}

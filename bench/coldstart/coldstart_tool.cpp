// The cold-start benchmark's helpers (bench/coldstart/run.sh), one binary so that the GPU bundle carries it:
//   write DIR --format int8|bf16 --layers N --tokenizer-dir D   a synthetic Mixtral-8x7B checkpoint
//   read-rate --threads N FILE...                               page-cache (or disk) read rate
//   h2d-rate [--gib N]                                          pinned host-to-device copy rate (CUDA)
// Weights are a repeated random block: writing, not generating, is the bottleneck, and the loader's
// speed does not depend on the values (quantize-on-load does the same arithmetic for any finite input).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "io/safetensors_writer.h"
#include "memory/weight_format.h"
#include "model/config.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"
#include "quant/formats.h"

#ifdef HEADROOM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int fail(const std::string& msg) {
    std::fprintf(stderr, "coldstart_tool: %s\n", msg.c_str());
    return 1;
}

constexpr size_t kBlock = 64ull << 20;  // the repeated random block

// Mixtral-8x7B's config.json with n_layers layers.
std::string mixtral_config(int layers) {
    return fmt::format(R"({{"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "bos_token_id": 1,
 "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
 "max_position_embeddings": 32768, "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": {},
 "num_key_value_heads": 8, "num_local_experts": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
 "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000}}
)", layers);
}

// Blocks of valid values per stored dtype: int8 in [-127, 127]; bf16 and f32 finite, |w| in 2^-10..2^-7
// (f32 scales positive, like absmax / 127 of such weights).
std::vector<uint8_t> random_block(const std::string& dtype, std::mt19937_64& rng) {
    std::vector<uint8_t> b(kBlock);
    if (dtype == "I8") {
        for (auto& x : b) x = static_cast<uint8_t>(static_cast<int8_t>(static_cast<int>(rng() % 255) - 127));
    } else if (dtype == "BF16") {
        auto* p = reinterpret_cast<uint16_t*>(b.data());
        for (size_t i = 0; i < kBlock / 2; ++i) {
            const uint64_t r = rng();
            p[i] = static_cast<uint16_t>((r & 0x807F) | ((117 + ((r >> 16) & 3)) << 7));
        }
    } else {  // F32 scales
        auto* p = reinterpret_cast<float*>(b.data());
        for (size_t i = 0; i < kBlock / 4; ++i) p[i] = 1e-4f * (1.0f + static_cast<float>(rng() % 1000) / 1000.0f);
    }
    return b;
}

int cmd_write(int argc, char** argv) {
    std::string dir, format = "int8", tok_dir;
    int layers = 32;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--format" && i + 1 < argc) format = argv[++i];
        else if (a == "--layers" && i + 1 < argc) layers = std::atoi(argv[++i]);
        else if (a == "--tokenizer-dir" && i + 1 < argc) tok_dir = argv[++i];
        else if (dir.empty() && a[0] != '-') dir = a;
        else return fail(fmt::format("write: unexpected argument '{}'", a));
    }
    if (dir.empty() || tok_dir.empty() || layers < 1 || layers > 32 || (format != "int8" && format != "bf16"))
        return fail("usage: write DIR --format int8|bf16 --layers 1..32 --tokenizer-dir DIR");
    std::filesystem::create_directories(dir);
    { std::ofstream(dir + "/config.json") << mixtral_config(layers); }
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
        std::error_code ec;
        if (std::filesystem::exists(tok_dir + "/" + f))
            std::filesystem::copy_file(tok_dir + "/" + f, dir + "/" + f, std::filesystem::copy_options::overwrite_existing, ec);
    }
    auto cfg = hr::load_model_config(dir + "/config.json");
    if (!cfg.ok()) return fail(cfg.error().message);
    const hr::DType wf = format == "int8" ? hr::DType::q8 : hr::DType::bf16;
    // Tensors as `headroom quantize` stores them (its dtype strings and scale names), f32 first, then bf16,
    // then int8, so that each is aligned to its element size in the mapping.
    // note: the header encoder only checks that data is non-null; the bytes are written below, by pieces.
    static const uint8_t kNotRead = 0;
    std::vector<hr::io::TensorToWrite> ts;
    for (const hr::TensorSpec& s : hr::expected_tensors(*cfg)) {
        const hr::DType st = hr::storage_dtype_for(s, wf, hr::DType::bf16);
        const int64_t rows = s.rows(), cols = s.cols();
        std::vector<int64_t> shape = s.shape;
        ts.push_back({s.hf_name, std::string(hr::stored_dtype_string(st)), shape, &kNotRead,
                      static_cast<uint64_t>(hr::quant::weight_data_bytes(st, rows, cols))});
        if (st == hr::DType::q8)
            ts.push_back({s.hf_name + ".scales", "F32", {rows}, &kNotRead,
                          static_cast<uint64_t>(hr::quant::weight_scale_bytes(st, rows, cols))});
    }
    auto rank = [](const std::string& d) { return d == "F32" ? 0 : d == "BF16" ? 1 : 2; };
    std::stable_sort(ts.begin(), ts.end(), [&](auto& a, auto& b) { return rank(a.dtype) < rank(b.dtype); });
    std::map<std::string, std::string> meta;
    if (format == "int8") meta = {{hr::kFormatKey, "int8"}, {hr::kFormatVersionKey, hr::kFormatVersion}};
    auto header = hr::io::encode_safetensors_header(ts, meta);
    if (!header.ok()) return fail(header.error().message);
    uint64_t total = header->size();
    for (auto& t : ts) total += t.nbytes;

    const std::string path = dir + "/model.safetensors";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
    if (::pwrite(fd, header->data(), header->size(), 0) != static_cast<ssize_t>(header->size()))
        return fail(fmt::format("{}: short write of the header", path));
    std::mt19937_64 rng(19);
    const std::vector<uint8_t> i8 = random_block("I8", rng), bf = random_block("BF16", rng), f32 = random_block("F32", rng);
    // Pieces of at most one block, written by 4 threads at their offsets.
    struct Piece { uint64_t off, n; const uint8_t* src; };
    std::vector<Piece> pieces;
    uint64_t off = header->size();
    for (auto& t : ts) {
        const std::vector<uint8_t>& b = t.dtype == "I8" ? i8 : t.dtype == "BF16" ? bf : f32;
        // note: the norms are 1-D bf16 of random magnitude too: finite is all the loader asks for.
        for (uint64_t o = 0; o < t.nbytes; o += kBlock) pieces.push_back({off + o, std::min<uint64_t>(kBlock, t.nbytes - o), b.data()});
        off += t.nbytes;
    }
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> written{0};
    std::atomic<bool> bad{false};
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int w = 0; w < 4; ++w)
        pool.emplace_back([&] {
            for (size_t k; !bad && (k = next.fetch_add(1)) < pieces.size();) {
                const Piece& p = pieces[k];
                if (::pwrite(fd, p.src, p.n, static_cast<off_t>(p.off)) != static_cast<ssize_t>(p.n)) bad = true;
                written += p.n;
            }
        });
    while (next.load() < pieces.size() && !bad) {
        std::this_thread::sleep_for(std::chrono::seconds(5));
        std::fprintf(stderr, "write: %.1f/%.1f GB, %.2f GB/s\n", written * 1e-9, total * 1e-9, written * 1e-9 / since(t0));
    }
    for (auto& th : pool) th.join();
    if (bad) {
        ::close(fd);
        ::unlink(path.c_str());
        return fail(fmt::format("write of {} failed (disk full?): {}; the partial file was removed", path, std::strerror(errno)));
    }
    ::fsync(fd);  // the disk measurement must read from the disk, not from dirty pages
    ::close(fd);
    std::printf("wrote %s: %d layers, %s, %.2f GB in %.1f s (%.2f GB/s)\n", path.c_str(), layers, format.c_str(),
                total * 1e-9, since(t0), total * 1e-9 / since(t0));
    return 0;
}

int cmd_read_rate(int argc, char** argv) {
    int threads = 8;
    std::vector<std::string> files;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
        else files.push_back(a);
    }
    if (files.empty() || threads < 1) return fail("usage: read-rate --threads N FILE...");
    struct Piece { int fd; uint64_t off, n; };
    std::vector<Piece> pieces;
    uint64_t total = 0;
    for (const auto& f : files) {
        const int fd = ::open(f.c_str(), O_RDONLY);
        if (fd < 0) return fail(fmt::format("cannot open {}: {}", f, std::strerror(errno)));
        struct stat st{};
        ::fstat(fd, &st);
        for (uint64_t o = 0; o < static_cast<uint64_t>(st.st_size); o += kBlock / 2)
            pieces.push_back({fd, o, std::min<uint64_t>(kBlock / 2, st.st_size - o)});
        total += st.st_size;
    }
    std::atomic<size_t> next{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int w = 0; w < threads; ++w)
        pool.emplace_back([&] {
            std::vector<uint8_t> buf(kBlock / 2);
            for (size_t k; (k = next.fetch_add(1)) < pieces.size();)
                if (::pread(pieces[k].fd, buf.data(), pieces[k].n, static_cast<off_t>(pieces[k].off)) < 0) return;
        });
    for (auto& th : pool) th.join();
    const double s = since(t0);
    std::printf("read-rate: %.2f GB in %.2f s = %.2f GB/s (%d threads, pread of 32 MiB)\n", total * 1e-9, s,
                total * 1e-9 / s, threads);
    return 0;
}

int cmd_h2d_rate(int argc, char** argv) {
#ifdef HEADROOM_HAVE_CUDA
    double gib = 4;
    for (int i = 2; i < argc; ++i)
        if (std::string(argv[i]) == "--gib" && i + 1 < argc) gib = std::atof(argv[++i]);
    const size_t n = static_cast<size_t>(gib * (1ull << 30));
    constexpr size_t kChunk = 32ull << 20;  // the loader's staging buffer size
    void *h = nullptr, *d = nullptr;
    if (cudaHostAlloc(&h, 4 * kChunk, cudaHostAllocDefault) != cudaSuccess || cudaMalloc(&d, n) != cudaSuccess)
        return fail("h2d-rate: cannot allocate pinned host or device memory");
    std::memset(h, 0x5a, 4 * kChunk);
    cudaStream_t s[2];
    for (auto& x : s) cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking);
    auto run = [&] {
        size_t k = 0;
        for (size_t o = 0; o < n; o += kChunk, ++k)
            cudaMemcpyAsync(static_cast<uint8_t*>(d) + o, static_cast<uint8_t*>(h) + (k % 4) * kChunk,
                            std::min(kChunk, n - o), cudaMemcpyHostToDevice, s[k % 2]);
        for (auto& x : s) cudaStreamSynchronize(x);
    };
    run();  // warm-up
    const auto t0 = Clock::now();
    run();
    const double sec = since(t0);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return fail(fmt::format("h2d-rate: {}", cudaGetErrorString(e)));
    std::printf("h2d-rate: %.2f GB in %.3f s = %.2f GB/s (pinned, 32 MiB copies on 2 streams)\n", n * 1e-9, sec,
                n * 1e-9 / sec);
    cudaFree(d);
    cudaFreeHost(h);
    return 0;
#else
    (void)argc;
    (void)argv;
    return fail("h2d-rate: this build has no CUDA");
#endif
}

}  // namespace

int main(int argc, char** argv) {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "write") return cmd_write(argc, argv);
    if (cmd == "read-rate") return cmd_read_rate(argc, argv);
    if (cmd == "h2d-rate") return cmd_h2d_rate(argc, argv);
    return fail("usage: coldstart_tool write|read-rate|h2d-rate ... (see bench/coldstart/run.sh)");
}

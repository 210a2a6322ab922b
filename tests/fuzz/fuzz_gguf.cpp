// libFuzzer target over GgufFile::parse: any input must give a Result, never a crash, abort, leak or
// hang; accepted files must hold every tensor inside the input, dequantize without fault, and re-serialize
// (io/gguf_writer) and parse back to the same metadata and tensors.
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "quant/ggml_blocks.h"

namespace {

// A broken invariant of headroom itself (not bad input): stop the fuzzer with a crash report.
void require(bool cond) {
    if (!cond) __builtin_trap();
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using hr::io::GgufFile;
using hr::io::GgufKV;
using hr::io::GgufTensorToWrite;

constexpr uint64_t kInteresting[] = {0, 1, 2, 3, 4, 5, 7, 8, 13, 31, 32, 33, 64, 255, 256, 4096, 65535,
                                     4294967295ull, 4294967296ull, 1ull << 60, 9223372036854775807ull,
                                     9223372036854775808ull, 18446744073709551615ull};

// Byte-level mutation, plus (half of the time) a little-endian integer of interest written at a random
// position: counts, lengths, dims, types and offsets are all such integers.
size_t mutate_bytes(uint8_t* data, size_t size, size_t max_size, std::minstd_rand& rng) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (size >= 8 && (rng() & 1)) {
        const int width = (rng() & 1) ? 8 : 4;
        const size_t at = rng() % (size - width + 1);
        const uint64_t v = kInteresting[rng() % std::size(kInteresting)];
        for (int i = 0; i < width; ++i) data[at + i] = static_cast<uint8_t>(v >> (8 * i));
    }
    return size;
}

// Structure-aware mutation: byte mutations rarely keep a GGUF consistent, so this edits a parsed file
// (a value, a type, a shape, a tensor, the alignment, the version) and re-encodes it without validation.
// Returns 0 when the input does not parse.
size_t mutate_structure(uint8_t* data, size_t size, size_t max_size, std::minstd_rand& rng) {
    auto r = GgufFile::parse(std::span<const uint8_t>(data, size), "m");
    if (!r.ok()) return 0;
    const GgufFile& f = **r;
    std::vector<GgufKV> kvs;
    for (const auto& k : f.keys()) kvs.push_back({k, *f.value_type(k), f.metadata().find(k)->second});
    std::vector<std::vector<uint8_t>> blobs;
    std::vector<GgufTensorToWrite> ts;
    for (const auto& t : f.tensors()) {
        blobs.emplace_back(t.data, t.data + t.nbytes);
    }
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const auto& t = f.tensors()[i];
        ts.push_back({t.name, t.shape, t.ggml_type, blobs[i].data(), blobs[i].size()});
    }
    hr::io::GgufWriteOptions opts;
    opts.validate = false;
    static const uint32_t kTypes[] = {0, 1, 2, 3, 6, 7, 8, 10, 12, 13, 14, 16, 30, 31, 42, 1000};
    switch (rng() % 8) {
        case 0:
            if (!kvs.empty()) kvs[rng() % kvs.size()].type = static_cast<uint32_t>(rng() % 14);
            break;
        case 1:
            kvs.push_back(hr::io::gguf_kv_u32("general.alignment", static_cast<uint32_t>(1u << (rng() % 13))));
            break;
        case 2:
            kvs.push_back(hr::io::gguf_kv_str_array("tokenizer.ggml.tokens", {"a", "", "<s>"}));
            break;
        case 3:
            if (!ts.empty()) ts[rng() % ts.size()].ggml_type = kTypes[rng() % std::size(kTypes)];
            break;
        case 4:
            if (!ts.empty()) {
                auto& s = ts[rng() % ts.size()].shape;
                if ((rng() & 1) && s.size() > 1) {
                    s.pop_back();
                } else if (!s.empty()) {
                    s[rng() % s.size()] = static_cast<int64_t>(kInteresting[rng() % 12]);
                }
            }
            break;
        case 5:
            if (!ts.empty()) ts.push_back(ts[rng() % ts.size()]);  // a duplicate name
            break;
        case 6:
            if (!ts.empty()) ts.erase(ts.begin() + static_cast<std::ptrdiff_t>(rng() % ts.size()));
            break;
        default:
            opts.version = 1 + static_cast<uint32_t>(rng() % 4);
            break;
    }
    auto out = hr::io::serialize_gguf(kvs, ts, opts);
    if (!out.ok() || out->size() > max_size) return 0;
    std::memcpy(data, out->data(), out->size());
    return out->size();
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
    std::minstd_rand rng(seed);
    if (rng() % 2 == 0) {
        if (size_t out = mutate_structure(data, size, max_size, rng); out > 0) return out;
    }
    return mutate_bytes(data, size, max_size, rng);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto r = GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    if (!r.ok()) {
        require(!r.error().message.empty());
        return 0;
    }
    const GgufFile& file = **r;
    require(file.version() == 2 || file.version() == 3);
    require(file.alignment() > 0 && (file.alignment() & (file.alignment() - 1)) == 0);
    require(file.keys().size() == file.metadata().size());

    volatile uint8_t sink = 0;
    std::vector<GgufTensorToWrite> out;
    std::vector<float> deq;
    for (const auto& t : file.tensors()) {
        require(t.data >= data && t.nbytes > 0 && t.nbytes <= size &&
                t.data - data <= static_cast<ptrdiff_t>(size - t.nbytes));
        require(t.offset % file.alignment() == 0 && t.offset >= file.data_offset());
        sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
        require(file.find(t.name) == &t);
        require(!t.shape.empty() && t.shape.size() <= 4);
        const auto sz = hr::io::ggml_type_size(t.ggml_type);
        require(sz.has_value());
        unsigned __int128 numel = 1;
        for (int64_t d : t.shape) {
            require(d > 0);
            numel *= static_cast<uint64_t>(d);
        }
        require(t.shape.back() % sz->block_elems == 0);
        require(numel / sz->block_elems * sz->block_bytes == t.nbytes);
        require(t.supported == hr::io::dtype_for_ggml(t.ggml_type, t.name).ok());
        // Dequantize the first row (at most 4096 elements) of every supported tensor.
        if (t.supported) {
            const int64_t cols = std::min<int64_t>(t.shape.back(), 4096 / sz->block_elems * sz->block_elems);
            if (cols > 0) {
                deq.resize(static_cast<size_t>(cols));
                hr::quant::ggml_dequantize(t.dtype, t.data, deq.data(), cols);
            }
        }
        out.push_back({t.name, t.shape, t.ggml_type, t.data, t.nbytes});
    }
    (void)sink;

    // Round trip: what the reader accepts, the writer must encode and the reader accept again.
    std::vector<GgufKV> kvs;
    for (const auto& k : file.keys()) kvs.push_back({k, *file.value_type(k), file.metadata().find(k)->second});
    hr::io::GgufWriteOptions opts;
    opts.version = file.version();
    auto again = hr::io::serialize_gguf(kvs, out, opts);
    require(again.ok());
    auto r2 = GgufFile::parse(*again, "fuzz-roundtrip.gguf");
    require(r2.ok());
    const GgufFile& file2 = **r2;
    require(file2.keys() == file.keys());
    // Values compare through their encoding (an f32 NaN is not equal to itself; a signalling one comes
    // back quiet from the f32 -> double -> f32 trip, after which the encoding is stable).
    std::vector<GgufKV> kvs2;
    for (const auto& k : file2.keys()) kvs2.push_back({k, *file2.value_type(k), file2.metadata().find(k)->second});
    auto third = hr::io::serialize_gguf(kvs2, out, opts);
    require(third.ok() && *third == *again);
    require(file2.tensors().size() == file.tensors().size());
    for (size_t i = 0; i < file.tensors().size(); ++i) {
        const auto& a = file.tensors()[i];
        const auto& b = file2.tensors()[i];
        require(a.name == b.name && a.ggml_type == b.ggml_type && a.shape == b.shape && a.nbytes == b.nbytes);
        require(std::memcmp(a.data, b.data, a.nbytes) == 0);
    }
    return 0;
}

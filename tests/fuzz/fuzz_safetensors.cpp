// libFuzzer target over SafetensorsFile::parse: any input must give a Result, never a crash,
// abort, leak or hang; accepted files must re-serialize and parse back to the same tensors.
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace {

// A broken invariant of headroom itself (not bad input): stop the fuzzer with a crash report.
void require(bool cond) {
    if (!cond) __builtin_trap();
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

uint64_t read_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

void write_le64(uint8_t* p, uint64_t v) {
    for (int k = 0; k < 8; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

// Byte-level mutation. Most of them change the JSON length without the 8-byte prefix, so half
// of the time the prefix is re-pointed at the last '}' to keep reaching the JSON and layout checks.
size_t mutate_bytes(uint8_t* data, size_t size, size_t max_size, std::minstd_rand& rng) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (size > 8 && (rng() & 1)) {
        for (size_t i = size; i-- > 8;) {
            if (data[i] == '}') {
                write_le64(data, i - 8 + 1);
                break;
            }
        }
    }
    return size;
}

// Structure-aware mutation: byte mutations rarely keep the header valid JSON, so this edits the
// parsed header (a number, a dtype, a dim, an entry) and the data length, then re-encodes it.
// Returns 0 when the input has no parseable header.
size_t mutate_header(uint8_t* data, size_t size, size_t max_size, std::minstd_rand& rng) {
    if (size < 8) return 0;
    const uint64_t n = read_le64(data);
    if (n > size - 8) return 0;
    nlohmann::json h = nlohmann::json::parse(data + 8, data + 8 + n, nullptr, /*allow_exceptions=*/false);
    if (!h.is_object() || h.empty()) return 0;
    std::vector<std::string> names;
    for (const auto& [k, v] : h.items()) {
        if (v.is_object() && k != "__metadata__") names.push_back(k);
    }
    std::vector<uint8_t> body(data + 8 + n, data + size);
    static const uint64_t kValues[] = {0, 1, 2, 3, 4, 7, 8, 255, 256, 4294967295ull, 4294967296ull,
                                       9223372036854775807ull, 9223372036854775808ull, 18446744073709551615ull};
    static const char* kDTypes[] = {"BOOL", "U8", "I8", "F16", "BF16", "F32", "F64", "I64", "F4", "F6_E3M2",
                                    "F8_E4M3", "C64", "X9", ""};
    auto pick_number = [&](uint64_t old) -> nlohmann::json {
        switch (rng() % 4) {
            case 0: return kValues[rng() % std::size(kValues)];
            case 1: return old + 1;
            case 2: return old - 1;  // wraps at 0: a huge value, or -1 as a signed JSON number below
            default: return -static_cast<int64_t>(rng() % 3);
        }
    };
    if (!names.empty()) {
        nlohmann::json& e = h[names[rng() % names.size()]];
        switch (rng() % 7) {
            case 0:
            case 1: {
                nlohmann::json& arr = (rng() & 1) ? e["shape"] : e["data_offsets"];
                if (arr.is_array() && !arr.empty()) {
                    nlohmann::json& x = arr[rng() % arr.size()];
                    x = pick_number(x.is_number_unsigned() ? x.get<uint64_t>() : 0);
                }
                break;
            }
            case 2:
                e["dtype"] = kDTypes[rng() % std::size(kDTypes)];
                break;
            case 3:
                if (e["shape"].is_array()) {
                    if ((rng() & 1) && !e["shape"].empty()) {
                        e["shape"].erase(e["shape"].size() - 1);
                    } else {
                        e["shape"].push_back(kValues[rng() % 6]);
                    }
                }
                break;
            case 4:
                h[names[rng() % names.size()] + "_"] = e;  // an aliasing twin
                break;
            case 5:
                h.erase(names[rng() % names.size()]);
                break;
            default:
                if (!body.empty() && (rng() & 1)) {
                    body.resize(body.size() - 1 - rng() % body.size());
                } else {
                    body.resize(body.size() + 1 + rng() % 16, 0);
                }
                break;
        }
    } else {
        h["t"] = {{"dtype", "U8"}, {"shape", {body.size()}}, {"data_offsets", {0, body.size()}}};
    }
    std::string text;
    try {
        text = h.dump();
    } catch (const nlohmann::json::exception&) {
        return 0;
    }
    text.append(rng() % 8, ' ');
    const size_t out_size = 8 + text.size() + body.size();
    if (out_size > max_size) return 0;
    write_le64(data, text.size());
    std::memcpy(data + 8, text.data(), text.size());
    if (!body.empty()) std::memcpy(data + 8 + text.size(), body.data(), body.size());
    return out_size;
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
    std::minstd_rand rng(seed);
    if (rng() % 2 == 0) {
        if (size_t out = mutate_header(data, size, max_size, rng); out > 0) return out;
    }
    return mutate_bytes(data, size, max_size, rng);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> bytes(data, size);
    auto r = hr::io::SafetensorsFile::parse(bytes, "fuzz.safetensors");
    if (!r.ok()) {
        require(!r.error().message.empty());
        return 0;
    }
    const auto& file = **r;

    // Every tensor lies inside the input; reading its first and last byte lets ASan check that.
    volatile uint8_t sink = 0;
    std::vector<hr::io::TensorToWrite> out;
    for (const auto& t : file.tensors()) {
        require(t.data >= data && t.nbytes <= size && t.data - data <= static_cast<ptrdiff_t>(size - t.nbytes));
        if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
        require(file.find(t.name) == &t);
        // numel() is defined for every accepted shape and agrees with nbytes (128-bit: no overflow).
        const int64_t numel = t.numel();
        require(numel >= 0);
        const unsigned __int128 bits = hr::io::safetensors_dtype_bits(t.dtype);
        require(bits > 0 && static_cast<unsigned __int128>(numel) * bits == static_cast<unsigned __int128>(t.nbytes) * 8);
        out.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
    }
    (void)sink;

    // Round trip: what the reader accepts, the writer must encode and the reader accept again.
    auto again = hr::io::serialize_safetensors(out, file.metadata());
    require(again.ok());
    auto r2 = hr::io::SafetensorsFile::parse(*again, "fuzz-roundtrip.safetensors");
    require(r2.ok());
    const auto& file2 = **r2;
    require(file2.metadata() == file.metadata());
    require(file2.tensors().size() == file.tensors().size());
    for (size_t i = 0; i < file.tensors().size(); ++i) {
        const auto& a = file.tensors()[i];
        const auto& b = file2.tensors()[i];
        require(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.nbytes == b.nbytes);
        require(a.nbytes == 0 || std::memcmp(a.data, b.data, a.nbytes) == 0);
    }
    return 0;
}

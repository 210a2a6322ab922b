// libFuzzer target over SafetensorsFile::parse: any input must give a Result, never a crash,
// abort, leak or hang; accepted files must re-serialize and parse back to the same tensors.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace {

// A broken invariant of headroom itself (not bad input): stop the fuzzer with a crash report.
void require(bool cond) {
    if (!cond) __builtin_trap();
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

// Most byte-level mutations change the JSON length without the 8-byte length prefix, so every
// other mutation re-points the prefix at the last '}' to keep reaching the JSON and layout checks.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (size > 8 && (seed & 1)) {
        for (size_t i = size; i-- > 8;) {
            if (data[i] == '}') {
                uint64_t n = i - 8 + 1;
                for (int k = 0; k < 8; ++k) data[k] = static_cast<uint8_t>(n >> (8 * k));
                break;
            }
        }
    }
    return size;
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

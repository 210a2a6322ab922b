// Test helpers for tests/unit/io: build safetensors bytes by hand (header text + data) and
// scratch directories, so each corrupt-file case is spelled out in its test.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace hr::io::testing {

// 8-byte little-endian length `header_len` (defaults to the header's size), the header text,
// then `data_bytes` bytes of data with values 0, 1, 2, ...
inline std::vector<uint8_t> st_bytes(const std::string& header, uint64_t data_bytes,
                                     uint64_t header_len = UINT64_MAX) {
    if (header_len == UINT64_MAX) header_len = header.size();
    std::vector<uint8_t> out(8);
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>((header_len >> (8 * i)) & 0xff);
    out.insert(out.end(), header.begin(), header.end());
    for (uint64_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i & 0xff));
    return out;
}

inline void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
}

// A fresh, empty directory removed when the object dies.
class ScratchDir {
public:
    explicit ScratchDir(const std::string& tag) {
        path_ = std::filesystem::temp_directory_path() /
                ("hr_io_" + tag + "_" + std::to_string(static_cast<long>(::getpid())));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

}  // namespace hr::io::testing

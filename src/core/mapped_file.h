// RAII read-only memory mapping of a whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "status.h"

namespace hr {

class MappedFile {
public:
    static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    std::span<const uint8_t> bytes() const { return {data_, size_}; }
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    std::string path_;
};

// Asks the kernel to read [p, p + n) of a file mapping ahead, in large requests and asynchronously
// (madvise MADV_WILLNEED on the enclosing pages). A reader about to copy a range calls it first: a copy
// that faults page by page reads the disk in small synchronous pieces. A hint: failures are ignored.
void advise_willneed(const void* p, size_t n);

}  // namespace hr

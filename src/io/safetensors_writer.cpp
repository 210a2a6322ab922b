// Safetensors writer: header encoding with the same validation rules as the reader, and an
// atomic file write.
#include "io/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace hr::io {

namespace {

// Writes all of buf to fd, retrying short writes and EINTR.
Status write_all(int fd, const void* buf, uint64_t n, const std::string& path) {
    const auto* p = static_cast<const uint8_t*>(buf);
    while (n > 0) {
        size_t chunk = n > (uint64_t{1} << 30) ? (size_t{1} << 30) : static_cast<size_t>(n);
        ssize_t w = ::write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errorf("cannot write '{}': {}", path, std::strerror(errno));
        }
        p += w;
        n -= static_cast<uint64_t>(w);
    }
    return ok();
}

std::string parent_dir(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

Result<std::string> encode_safetensors_header(std::span<const TensorToWrite> tensors,
                                              const std::map<std::string, std::string>& metadata) {
    // ordered_json keeps the tensors in the order given, so the header reads like the data layout.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) meta[k] = v;
        header["__metadata__"] = std::move(meta);
    }
    std::set<std::string_view> seen;
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        const std::string ctx = fmt::format("write safetensors: tensor '{}'", t.name);
        if (t.name.empty()) return errorf("write safetensors: expected a non-empty tensor name, found \"\"");
        if (t.name == "__metadata__") return errorf("{}: the name is reserved for the metadata block", ctx);
        if (!seen.insert(t.name).second) return errorf("{}: duplicate tensor name (expected each name once)", ctx);
        HR_ASSIGN(uint64_t expect, safetensors_nbytes(t.dtype, t.shape, ctx));
        if (t.nbytes != expect) {
            return errorf("{}: expected {} bytes for shape [{}] x {}, found nbytes = {}", ctx, expect,
                          fmt::join(t.shape, ", "), t.dtype, t.nbytes);
        }
        if (t.nbytes > 0 && t.data == nullptr) return errorf("{}: expected data for {} bytes, found null", ctx, t.nbytes);
        uint64_t end = 0;
        if (__builtin_add_overflow(offset, t.nbytes, &end)) return errorf("{}: total data size overflows 64 bits", ctx);
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
        offset = end;
    }
    std::string text;
    try {
        text = header.dump();  // throws on invalid UTF-8 in names or metadata
    } catch (const nlohmann::json::exception& e) {
        return errorf("write safetensors: expected UTF-8 names and metadata, found: {}", e.what());
    }
    // Pad so that the data section (at 8 + N) starts 8-byte aligned.
    text.append((8 - text.size() % 8) % 8, ' ');
    if (text.size() > kMaxHeaderBytes) {
        return errorf("write safetensors: header is {} bytes, above the reader's limit of {} bytes", text.size(),
                      kMaxHeaderBytes);
    }
    std::string out(8, '\0');
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out += text;
    return out;
}

Result<std::vector<uint8_t>> serialize_safetensors(std::span<const TensorToWrite> tensors,
                                                   const std::map<std::string, std::string>& metadata) {
    HR_ASSIGN(std::string header, encode_safetensors_header(tensors, metadata));
    std::vector<uint8_t> out(header.begin(), header.end());
    for (const auto& t : tensors) {
        const auto* p = static_cast<const uint8_t*>(t.data);
        if (t.nbytes > 0) out.insert(out.end(), p, p + t.nbytes);
    }
    return out;
}

Status write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                         const std::map<std::string, std::string>& metadata) {
    HR_ASSIGN(std::string header, encode_safetensors_header(tensors, metadata));
    const std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errorf("cannot create '{}': {}", tmp, std::strerror(errno));
    auto fail = [&](Error e) -> Status {
        ::close(fd);
        ::unlink(tmp.c_str());
        return e;
    };
    if (Status s = write_all(fd, header.data(), header.size(), tmp); !s.ok()) return fail(s.take_error());
    for (const auto& t : tensors) {
        if (t.nbytes == 0) continue;
        if (Status s = write_all(fd, t.data, t.nbytes, tmp); !s.ok()) return fail(s.take_error());
    }
    if (::fsync(fd) != 0) return fail(errorf("cannot fsync '{}': {}", tmp, std::strerror(errno)));
    if (::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return errorf("cannot close '{}': {}", tmp, std::strerror(e));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return errorf("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(e));
    }
    // Persist the rename itself; a failure here leaves a complete file, so it is not an error.
    int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
    return ok();
}

}  // namespace hr::io

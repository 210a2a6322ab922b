// Safetensors writer: round trip through the reader, header alignment, validation errors and
// the atomic write (no partial file, no temporary left behind).
#include "io/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/safetensors.h"
#include "unit/io/st_bytes.h"

namespace hr::io {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

std::vector<std::string> dir_entries(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(SafetensorsWriter, RoundTripsThroughReader) {
    std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1.0f};  // [2, 3]
    std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x4000};              // [3]
    int64_t scalar = -42;                                               // []
    std::vector<uint8_t> u8 = {9};                                      // [1]
    std::vector<TensorToWrite> ts = {
        {"layer.weight", "F32", {2, 3}, f32.data(), f32.size() * 4},
        {"layer.bias", "BF16", {3}, bf16.data(), bf16.size() * 2},
        {"step", "I64", {}, &scalar, 8},
        {"empty", "F16", {0, 5}, nullptr, 0},
        {"flag", "U8", {1}, u8.data(), 1},
    };
    std::map<std::string, std::string> meta = {{"format", "pt"}, {"source", "héadroom \"test\""}};
    ScratchDir dir("writer_roundtrip");
    const std::string path = (dir / "out.safetensors").string();
    Status s = write_safetensors(path, ts, meta);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(dir_entries(dir.path()), (std::vector<std::string>{"out.safetensors"}));  // no temporary left

    auto r = SafetensorsFile::open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const auto& f = **r;
    EXPECT_EQ(f.metadata(), meta);
    EXPECT_EQ(f.header_bytes() % 8, 0u);  // data section 8-byte aligned
    ASSERT_EQ(f.tensors().size(), ts.size());
    for (const auto& t : ts) {
        const TensorInfo* got = f.find(t.name);
        ASSERT_NE(got, nullptr) << t.name;
        EXPECT_EQ(got->dtype, t.dtype);
        EXPECT_EQ(got->shape, t.shape);
        ASSERT_EQ(got->nbytes, t.nbytes);
        if (t.nbytes > 0) {
            EXPECT_EQ(std::memcmp(got->data, t.data, t.nbytes), 0) << t.name;
        }
    }
    float back[6];
    std::memcpy(back, f.find("layer.weight")->data, sizeof back);
    EXPECT_EQ(back[2], 3.25f);

    // serialize_safetensors produces the same bytes as the file.
    auto mem = serialize_safetensors(ts, meta);
    ASSERT_TRUE(mem.ok()) << mem.error().message;
    EXPECT_EQ(mem->size(), fs::file_size(path));
    auto r2 = SafetensorsFile::parse(*mem, "mem");
    ASSERT_TRUE(r2.ok()) << r2.error().message;
}

TEST(SafetensorsWriter, HeaderPaddedWithSpacesToMultipleOf8) {
    for (size_t len = 1; len <= 9; ++len) {
        std::vector<uint8_t> data(len, 1);
        TensorToWrite t{std::string(len, 'x'), "U8", {static_cast<int64_t>(len)}, data.data(), len};
        auto h = encode_safetensors_header(std::span(&t, 1), {});
        ASSERT_TRUE(h.ok()) << h.error().message;
        EXPECT_EQ(h->size() % 8, 0u);
        EXPECT_EQ(h->back(), h->find_last_not_of(' ') == h->size() - 1 ? '}' : ' ');
    }
}

TEST(SafetensorsWriter, NoMetadataBlockWhenEmpty) {
    uint8_t b = 0;
    TensorToWrite t{"a", "U8", {1}, &b, 1};
    auto h = encode_safetensors_header(std::span(&t, 1), {});
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->find("__metadata__"), std::string::npos);
}

TEST(SafetensorsWriter, RejectsNbytesNotMatchingShape) {
    std::vector<float> v(4);
    TensorToWrite t{"w", "F32", {2, 3}, v.data(), 16};
    Status s = write_safetensors("/tmp/unused.safetensors", std::span(&t, 1), {});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("tensor 'w'"), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("expected 24 bytes for shape [2, 3] x F32, found nbytes = 16"), std::string::npos)
        << s.error().message;
}

TEST(SafetensorsWriter, RejectsBadTensorLists) {
    uint8_t b[2] = {0, 0};
    auto err = [](std::vector<TensorToWrite> ts) {
        auto r = encode_safetensors_header(ts, {});
        return r.ok() ? std::string() : r.error().message;
    };
    EXPECT_NE(err({{"a", "U8", {1}, b, 1}, {"a", "U8", {1}, b + 1, 1}}).find("duplicate tensor name"),
              std::string::npos);
    EXPECT_NE(err({{"a", "Q8", {1}, b, 1}}).find("unknown dtype 'Q8'"), std::string::npos);
    EXPECT_NE(err({{"a", "U8", {-1}, b, 1}}).find("non-negative"), std::string::npos);
    EXPECT_NE(err({{"", "U8", {1}, b, 1}}).find("non-empty tensor name"), std::string::npos);
    EXPECT_NE(err({{"__metadata__", "U8", {1}, b, 1}}).find("reserved"), std::string::npos);
    EXPECT_NE(err({{"a", "U8", {2}, nullptr, 2}}).find("found null"), std::string::npos);
    EXPECT_NE(err({{"a\xff", "U8", {1}, b, 1}}).find("UTF-8"), std::string::npos);
}

TEST(SafetensorsWriter, FailedWriteLeavesNoFile) {
    uint8_t b = 1;
    TensorToWrite t{"a", "U8", {1}, &b, 1};
    ScratchDir dir("writer_fail");
    const fs::path path = dir / "missing_subdir" / "out.safetensors";
    Status s = write_safetensors(path.string(), std::span(&t, 1), {});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("cannot create"), std::string::npos) << s.error().message;
    EXPECT_TRUE(dir_entries(dir.path()).empty());
}

TEST(SafetensorsWriter, OverwritesExistingFileAtomically) {
    ScratchDir dir("writer_overwrite");
    const std::string path = (dir / "m.safetensors").string();
    testing::write_text(path, "old contents");
    uint16_t v = 0x3f80;
    TensorToWrite t{"a", "BF16", {1}, &v, 2};
    ASSERT_TRUE(write_safetensors(path, std::span(&t, 1), {{"k", "v"}}).ok());
    auto r = SafetensorsFile::open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->find("a")->nbytes, 2u);
    EXPECT_EQ(dir_entries(dir.path()), (std::vector<std::string>{"m.safetensors"}));
}

}  // namespace
}  // namespace hr::io

// Safetensors reader: one hand-made corrupt file per validation rule (RELIABILITY.md §3.1 cases
// 1-14), each checked for its specific message, plus valid edge cases and the real fixture.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "unit/io/st_bytes.h"

namespace hr::io {
namespace {

using testing::st_bytes;

constexpr const char* kName = "mem.safetensors";

// Parses and expects failure; returns the message (empty when parse unexpectedly succeeded).
std::string parse_error(const std::vector<uint8_t>& bytes) {
    auto r = SafetensorsFile::parse(bytes, kName);
    if (r.ok()) return "";
    return r.error().message;
}

#define EXPECT_PARSE_ERROR(bytes, ...)                                         \
    do {                                                                       \
        std::string msg_ = parse_error(bytes);                                 \
        ASSERT_FALSE(msg_.empty()) << "expected a parse error";                \
        EXPECT_NE(msg_.find(kName), std::string::npos) << msg_;                \
        for (const char* part_ : {__VA_ARGS__}) {                              \
            EXPECT_NE(msg_.find(part_), std::string::npos) << "missing '" << part_ << "' in: " << msg_; \
        }                                                                      \
    } while (0)

// Header for one tensor "t" with the given entry body.
std::string one(const std::string& body) { return "{\"t\":{" + body + "}}"; }

// ---- valid files ----------------------------------------------------------------------------

TEST(Safetensors, ParsesTwoTensorsOutOfHeaderOrder) {
    // "b" comes first in the data section although "a" comes first in the header.
    std::string h = R"({"__metadata__":{"format":"pt","note":"x"},)"
                    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                    R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]}})";
    auto bytes = st_bytes(h, 12);
    auto r = SafetensorsFile::parse(bytes, kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const auto& f = **r;
    ASSERT_EQ(f.tensors().size(), 2u);
    EXPECT_EQ(f.tensors()[0].name, "a");
    EXPECT_EQ(f.tensors()[1].name, "b");
    const TensorInfo* a = f.find("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->dtype, "F32");
    EXPECT_EQ(a->shape, (std::vector<int64_t>{2}));
    EXPECT_EQ(a->nbytes, 8u);
    EXPECT_EQ(a->numel(), 2);
    EXPECT_EQ(a->file, kName);
    const uint8_t* data_start = bytes.data() + 8 + h.size();
    EXPECT_EQ(a->data, data_start + 4);
    EXPECT_EQ(a->data[0], 4);  // st_bytes fills data with 0, 1, 2, ...
    const TensorInfo* b = f.find("b");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->data, data_start);
    EXPECT_EQ(f.find("c"), nullptr);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(f.metadata().at("note"), "x");
    EXPECT_EQ(f.header_bytes(), h.size());
}

TEST(Safetensors, AcceptsEmptyTensorAndScalar) {  // case 14
    std::string h = R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                    R"("s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                    R"("z":{"dtype":"BF16","shape":[3,0],"data_offsets":[8,8]}})";
    auto r = SafetensorsFile::parse(st_bytes(h, 8), kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->find("e")->numel(), 0);
    EXPECT_EQ((*r)->find("e")->nbytes, 0u);
    EXPECT_EQ((*r)->find("s")->numel(), 1);
    EXPECT_TRUE((*r)->find("s")->shape.empty());
    EXPECT_EQ((*r)->find("s")->nbytes, 8u);
    EXPECT_EQ((*r)->find("z")->nbytes, 0u);
}

TEST(Safetensors, EmptyTensorWithHugeOtherDimsHasZeroElements) {
    // The product of the first two dims exceeds int64 but fits u64; the 0 makes the tensor empty.
    auto r = SafetensorsFile::parse(
        st_bytes(one(R"("dtype":"U8","shape":[4294967296,4294967295,0],"data_offsets":[0,0])"), 0), kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->find("t")->numel(), 0);
    EXPECT_EQ((*r)->find("t")->nbytes, 0u);
}

TEST(Safetensors, AcceptsEmptyHeaderObjectAndSpacePadding) {
    auto r = SafetensorsFile::parse(st_bytes("{}      ", 0), kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE((*r)->tensors().empty());
    auto r2 = SafetensorsFile::parse(st_bytes(one(R"("dtype":"U8","shape":[3],"data_offsets":[0,3])") + "   ", 3),
                                     kName);
    ASSERT_TRUE(r2.ok()) << r2.error().message;
}

TEST(Safetensors, AcceptsSubByteDtypeFillingWholeBytes) {
    auto r = SafetensorsFile::parse(st_bytes(one(R"("dtype":"F4","shape":[2,3],"data_offsets":[0,3])"), 3), kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->find("t")->nbytes, 3u);
}

TEST(Safetensors, AcceptsMultiByteUtf8Names) {
    auto r = SafetensorsFile::parse(st_bytes(R"({"poids_é_中":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
                                    kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_NE((*r)->find("poids_é_中"), nullptr);
}

// ---- case 1-3: sizes --------------------------------------------------------------------------

TEST(SafetensorsCorrupt, FileShorterThan8Bytes) {
    EXPECT_PARSE_ERROR(std::vector<uint8_t>(7, 0), "at least 8 bytes", "found 7 bytes");
    EXPECT_PARSE_ERROR(std::vector<uint8_t>{}, "at least 8 bytes", "found 0 bytes");
}

TEST(SafetensorsCorrupt, HeaderLengthAboveLimit) {
    EXPECT_PARSE_ERROR(st_bytes("{}", 0, 100'000'001), "header length 100000001", "limit of 100000000");
    EXPECT_PARSE_ERROR(st_bytes("{}", 0, UINT64_MAX - 1), "exceeds the limit");
}

TEST(SafetensorsCorrupt, HeaderLengthPastEndOfFile) {
    EXPECT_PARSE_ERROR(st_bytes("{}", 0, 100), "incomplete", "100 bytes of header", "the file has 10 bytes");
}

// ---- case 4: encoding, JSON, first byte, padding ------------------------------------------------

TEST(SafetensorsCorrupt, HeaderNotUtf8) {
    EXPECT_PARSE_ERROR(st_bytes("{\"a\xff\":1}", 0), "UTF-8", "0xff", "offset 3");
    // Overlong encoding of '/' and an encoded surrogate are not UTF-8 either.
    EXPECT_PARSE_ERROR(st_bytes("{\"\xc0\xaf\":1}", 0), "UTF-8", "0xc0");
    EXPECT_PARSE_ERROR(st_bytes("{\"\xed\xa0\x80\":1}", 0), "UTF-8", "0xed");
    EXPECT_PARSE_ERROR(st_bytes("{\"\xe4\xb8\":1}", 0), "UTF-8");  // truncated sequence
}

TEST(SafetensorsCorrupt, HeaderNotJson) {
    EXPECT_PARSE_ERROR(st_bytes(R"({"t": })", 0), "expected valid JSON", "syntax error");
    EXPECT_PARSE_ERROR(st_bytes(R"({"t":1,})", 0), "expected valid JSON");
}

TEST(SafetensorsCorrupt, HeaderFirstByteNotBrace) {
    EXPECT_PARSE_ERROR(st_bytes("[1, 2]", 0), "starting with '{'", "0x5b");
    EXPECT_PARSE_ERROR(st_bytes(" {}", 0), "starting with '{'", "0x20");
    EXPECT_PARSE_ERROR(st_bytes("", 0), "an empty header");
}

TEST(SafetensorsCorrupt, HeaderPaddingOtherThanSpaces) {
    EXPECT_PARSE_ERROR(st_bytes("{}\n", 0), "followed only by spaces", "0x0a");
    EXPECT_PARSE_ERROR(st_bytes(std::string("{}\0\0", 4), 0), "followed only by spaces", "0x00");
}

TEST(SafetensorsCorrupt, HeaderNestedTooDeep) {
    EXPECT_PARSE_ERROR(st_bytes(R"({"t":{"shape":[[1]]}})", 0), "nested deeper than 3");
}

// ---- case 5: duplicates -----------------------------------------------------------------------

TEST(SafetensorsCorrupt, DuplicateTensorName) {
    std::string h = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                    R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
    EXPECT_PARSE_ERROR(st_bytes(h, 2), "duplicate JSON key 'a'");
}

TEST(SafetensorsCorrupt, DuplicateKeyInsideTensorEntry) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1])"), 1),
                       "duplicate JSON key 'dtype'");
}

TEST(SafetensorsCorrupt, DuplicateMetadataKey) {
    EXPECT_PARSE_ERROR(st_bytes(R"({"__metadata__":{"k":"1","k":"2"}})", 0), "duplicate JSON key 'k'");
}

// ---- case 6: metadata -------------------------------------------------------------------------

TEST(SafetensorsCorrupt, MetadataValueNotString) {
    EXPECT_PARSE_ERROR(st_bytes(R"({"__metadata__":{"format":"pt","n":3}})", 0), "__metadata__ key 'n'",
                       "expected a string value", "found a JSON number");
}

TEST(SafetensorsCorrupt, MetadataNotObject) {
    EXPECT_PARSE_ERROR(st_bytes(R"({"__metadata__":"pt"})", 0), "__metadata__", "expected an object of strings",
                       "found a JSON string");
}

// ---- case 7-8: dtypes -------------------------------------------------------------------------

TEST(SafetensorsCorrupt, UnknownDtypeNamesTensor) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"Q4_K","shape":[1],"data_offsets":[0,1])"), 1), "tensor 't'",
                       "unknown dtype 'Q4_K'", "expected one of BOOL");
    // Case matters: the spec spells dtypes in upper case.
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"bf16","shape":[1],"data_offsets":[0,2])"), 2), "unknown dtype 'bf16'");
}

TEST(SafetensorsCorrupt, DtypeNotString) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":7,"shape":[1],"data_offsets":[0,1])"), 1), "tensor 't'", "dtype",
                       "expected a string", "found a JSON number");
}

TEST(ComputableDtype, MapsComputableDtypes) {
    const std::pair<const char*, DType> cases[] = {{"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16},
                                                   {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8},
                                                   {"I8", DType::i8}};
    for (const auto& [name, dt] : cases) {
        TensorInfo t{.name = "w", .dtype = name, .file = "f"};
        auto r = computable_dtype(t);
        ASSERT_TRUE(r.ok()) << name << ": " << r.error().message;
        EXPECT_EQ(*r, dt) << name;
    }
}

TEST(ComputableDtype, RejectsKnownButUncomputableDtypes) {  // case 8: never a silent cast
    for (const char* name : {"F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "BOOL", "U16", "I16", "U32", "U64", "C64",
                             "F4", "F6_E2M3"}) {
        TensorInfo t{.name = "model.norm.weight", .dtype = name, .file = "dir/model.safetensors"};
        auto r = computable_dtype(t);
        ASSERT_FALSE(r.ok()) << name;
        const std::string& m = r.error().message;
        EXPECT_NE(m.find("dir/model.safetensors"), std::string::npos) << m;
        EXPECT_NE(m.find("tensor 'model.norm.weight'"), std::string::npos) << m;
        EXPECT_NE(m.find(std::string("dtype ") + name), std::string::npos) << m;
        EXPECT_NE(m.find("expected one of F32, F16, BF16, I32, I64, U8, I8"), std::string::npos) << m;
    }
}

// ---- case 9: shapes ---------------------------------------------------------------------------

TEST(SafetensorsCorrupt, ShapeElementCountOverflows) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0])"), 0),
                       "tensor 't'", "more elements than fit in 64 bits");
}

TEST(SafetensorsCorrupt, ShapeTimesDtypeSizeOverflows) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"F32","shape":[2305843009213693952,2],"data_offsets":[0,0])"), 0),
                       "tensor 't'", "overflows a 64-bit byte count");
}

TEST(SafetensorsCorrupt, ShapeNegativeOrNotInteger) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[2,-1],"data_offsets":[0,0])"), 0), "tensor 't'",
                       "shape[1]", "expected a non-negative integer, found -1");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[2.5],"data_offsets":[0,2])"), 2), "shape[0]",
                       "found 2.5");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":["2"],"data_offsets":[0,2])"), 2), "shape[0]",
                       "found a JSON string");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0])"), 0),
                       "shape[0]", "below 2^63");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":2,"data_offsets":[0,2])"), 2), "shape",
                       "expected an array", "found a JSON number");
}

// ---- entry structure --------------------------------------------------------------------------

TEST(SafetensorsCorrupt, TensorEntryStructure) {
    EXPECT_PARSE_ERROR(st_bytes(R"({"t":[1]})", 0), "tensor 't'", "expected an object with dtype",
                       "found a JSON array");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[1])"), 1), "tensor 't'", "missing key 'data_offsets'");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[1],"data_offsets":[0,1],"x":0)"), 1), "tensor 't'",
                       "unexpected key 'x'");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[1],"data_offsets":[0])"), 1), "tensor 't'",
                       "data_offsets", "an array of 1 elements");
    EXPECT_PARSE_ERROR(st_bytes(R"({"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
                       "expected a non-empty tensor name");
}

// ---- case 10-11: offsets ----------------------------------------------------------------------

TEST(SafetensorsCorrupt, EndBeforeBegin) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[0],"data_offsets":[4,2])"), 4), "tensor 't'",
                       "expected end >= begin", "[4, 2]");
}

TEST(SafetensorsCorrupt, FirstTensorNotAtZero) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[2],"data_offsets":[2,4])"), 4), "tensor 't'",
                       "begin at byte 0", "start of the data section", "found 2", "gap of 2 bytes");
}

TEST(SafetensorsCorrupt, GapBetweenTensors) {
    std::string h = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})";
    EXPECT_PARSE_ERROR(st_bytes(h, 5), "tensor 'b'", "begin at byte 2", "where tensor 'a' ends", "found 3",
                       "gap of 1 bytes");
}

TEST(SafetensorsCorrupt, OverlappingTensors) {
    std::string h = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
    EXPECT_PARSE_ERROR(st_bytes(h, 6), "tensor 'b'", "begin at byte 4", "tensor 'a'", "found 2", "overlap");
    // Two tensors aliasing the same bytes overlap too.
    std::string h2 = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
    EXPECT_PARSE_ERROR(st_bytes(h2, 4), "tensor 'b'", "overlap");
}

TEST(SafetensorsCorrupt, SpanDoesNotMatchShapeTimesDtype) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"F32","shape":[2],"data_offsets":[0,6])"), 6), "tensor 't'",
                       "span 6 bytes", "expected 8 bytes for F32 x [2]");
}

TEST(SafetensorsCorrupt, SubByteRemainder) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"F4","shape":[3],"data_offsets":[0,2])"), 2), "tensor 't'",
                       "12 bits", "whole number of bytes");
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"F6_E2M3","shape":[3],"data_offsets":[0,3])"), 3),
                       "18 bits", "whole number of bytes");
}

TEST(SafetensorsCorrupt, OffsetNotInteger) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[1],"data_offsets":[0,-1])"), 1), "tensor 't'",
                       "data_offsets[1]", "found -1");
}

// ---- case 12-13: trailing bytes, truncation ------------------------------------------------------

TEST(SafetensorsCorrupt, BytesAfterLastTensor) {
    EXPECT_PARSE_ERROR(st_bytes(one(R"("dtype":"U8","shape":[2],"data_offsets":[0,2])"), 5), "trailing bytes",
                       "end at byte 2", "last tensor 't'", "found 3 more bytes");
    EXPECT_PARSE_ERROR(st_bytes("{}", 1), "trailing bytes", "(no tensors)", "found 1 more bytes");
}

TEST(SafetensorsCorrupt, TruncatedFileSaysIncomplete) {
    std::string h = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
    EXPECT_PARSE_ERROR(st_bytes(h, 6), "tensor 'b'", "incomplete", "end at byte 8", "only 6 data bytes");
}

// ---- the real fixture, through open() (mmap) ---------------------------------------------------

TEST(Safetensors, ReadsTinyMixtralFixture) {
    const std::string path = std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral/model.safetensors";
    auto r = SafetensorsFile::open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const auto& f = **r;
    EXPECT_EQ(f.path(), path);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    const TensorInfo* emb = f.find("model.embed_tokens.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->dtype, "BF16");
    EXPECT_EQ(emb->shape, (std::vector<int64_t>{32000, 64}));
    EXPECT_EQ(emb->nbytes, 32000u * 64u * 2u);
    EXPECT_EQ(emb->file, path);
    auto dt = computable_dtype(*emb);
    ASSERT_TRUE(dt.ok());
    EXPECT_EQ(*dt, DType::bf16);
    const TensorInfo* w1 = f.find("model.layers.0.block_sparse_moe.experts.0.w1.weight");
    ASSERT_NE(w1, nullptr);
    EXPECT_EQ(w1->shape, (std::vector<int64_t>{96, 64}));
    const TensorInfo* gate = f.find("model.layers.1.block_sparse_moe.gate.weight");
    ASSERT_NE(gate, nullptr);
    EXPECT_EQ(gate->shape, (std::vector<int64_t>{4, 64}));
    // Sorted by name, every tensor BF16 in this fixture, and the bytes sum to the data section.
    uint64_t total = 0;
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        if (i > 0) {
            EXPECT_LT(f.tensors()[i - 1].name, f.tensors()[i].name);
        }
        EXPECT_EQ(f.tensors()[i].dtype, "BF16");
        total += f.tensors()[i].nbytes;
    }
    EXPECT_EQ(f.tensors().size(), 41u);
    EXPECT_EQ(total + 8 + f.header_bytes(), 8542416u);
}

TEST(Safetensors, OpenNamesMissingFile) {
    auto r = SafetensorsFile::open("/nonexistent/dir/model.safetensors");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("/nonexistent/dir/model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace hr::io

namespace hr::io {
namespace {

TEST(SafetensorsCorrupt, ControlCharactersInNamesAreEscapedInMessages) {
    auto bytes = st_bytes(R"({"a\u001b[2J":{"dtype":"Q","shape":[1],"data_offsets":[0,1]}})", 1);
    std::string msg = parse_error(bytes);
    EXPECT_NE(msg.find("tensor 'a\\x1b[2J'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\x1b'), std::string::npos) << msg;
}

}  // namespace
}  // namespace hr::io

// GGUF reader and writer: round trips of every metadata value type and tensor layout, and one malformed
// file per validation rule (truncation at every byte, huge lengths, bad alignment, overlapping and
// past-end data, duplicates, unknown types), each an error naming the key or tensor; none aborts.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "io/gguf_writer.h"

namespace hr::io {
namespace {

constexpr const char* kName = "mem.gguf";

void put_le(std::vector<uint8_t>& b, uint64_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
    auto r = GgufFile::parse(bytes, kName);
    if (r.ok()) return "";
    return r.error().message;
}

#define EXPECT_PARSE_ERROR(bytes, ...)                                                                   \
    do {                                                                                                 \
        std::string msg_ = parse_error(bytes);                                                           \
        ASSERT_FALSE(msg_.empty()) << "expected a parse error";                                          \
        EXPECT_NE(msg_.find(kName), std::string::npos) << msg_;                                          \
        for (const char* part_ : {__VA_ARGS__}) {                                                        \
            EXPECT_NE(msg_.find(part_), std::string::npos) << "missing '" << part_ << "' in: " << msg_; \
        }                                                                                                \
    } while (0)

GgufKV arr(std::string key, uint32_t et, decltype(GgufArray::values) v) {
    GgufArray a;
    a.elem_type = et;
    a.values = std::move(v);
    return {std::move(key), uint32_t(GgufType::ARRAY), std::move(a)};
}

// Every value type, scalar and array, at the edges of its range.
std::vector<GgufKV> all_value_kvs() {
    using T = GgufType;
    return {
        gguf_kv_str("general.architecture", "llama"),
        {"u8", uint32_t(T::U8), uint64_t{255}},
        {"i8", uint32_t(T::I8), int64_t{-128}},
        {"u16", uint32_t(T::U16), uint64_t{65535}},
        {"i16", uint32_t(T::I16), int64_t{-32768}},
        {"u32", uint32_t(T::U32), uint64_t{4294967295u}},
        {"i32", uint32_t(T::I32), int64_t{-2147483648ll}},
        {"u64", uint32_t(T::U64), uint64_t{18446744073709551615ull}},
        {"i64", uint32_t(T::I64), int64_t{std::numeric_limits<int64_t>::min()}},
        {"f32", uint32_t(T::F32), double{1.0e-5f}},
        {"f64", uint32_t(T::F64), 0.1},
        {"bool_t", uint32_t(T::BOOL), true},
        {"bool_f", uint32_t(T::BOOL), false},
        gguf_kv_str("empty_str", ""),
        gguf_kv_str("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"),
        arr("a_u8", uint32_t(T::U8), std::vector<uint64_t>{0, 1, 255}),
        arr("a_i8", uint32_t(T::I8), std::vector<int64_t>{-128, 0, 127}),
        arr("a_u16", uint32_t(T::U16), std::vector<uint64_t>{65535}),
        arr("a_i16", uint32_t(T::I16), std::vector<int64_t>{-1, 2}),
        arr("a_u32", uint32_t(T::U32), std::vector<uint64_t>{7, 4294967295u}),
        arr("a_i32", uint32_t(T::I32), std::vector<int64_t>{1, 3, -3}),
        arr("a_u64", uint32_t(T::U64), std::vector<uint64_t>{1ull << 63}),
        arr("a_i64", uint32_t(T::I64), std::vector<int64_t>{-(1ll << 62)}),
        arr("a_f32", uint32_t(T::F32), std::vector<double>{0.5, -2.25}),
        arr("a_f64", uint32_t(T::F64), std::vector<double>{1e300, -0.0}),
        arr("a_bool", uint32_t(T::BOOL), std::vector<bool>{true, false, true}),
        arr("a_str", uint32_t(T::STRING), std::vector<std::string>{"a", "", "\xc4\xa0the", std::string("x\0y", 3)}),
        arr("a_empty", uint32_t(T::I32), std::vector<int64_t>{}),
    };
}

struct TwoTensors {
    std::vector<uint8_t> w;  // Q8_0 [2, 64]: 4 blocks
    std::vector<uint8_t> n;  // F32 [5]
    std::vector<GgufTensorToWrite> list() const {
        return {{"blk.0.attn_q.weight", {2, 64}, uint32_t(GgmlType::Q8_0), w.data(), w.size()},
                {"blk.0.attn_norm.weight", {5}, uint32_t(GgmlType::F32), n.data(), n.size()}};
    }
};

TwoTensors two_tensors() {
    TwoTensors t;
    t.w.resize(4 * 34);
    for (size_t i = 0; i < t.w.size(); ++i) t.w[i] = static_cast<uint8_t>(i * 7 + 1);
    t.n.resize(20);
    for (size_t i = 0; i < t.n.size(); ++i) t.n[i] = static_cast<uint8_t>(200 - i);
    return t;
}

std::vector<uint8_t> valid_file(GgufLayout* layout = nullptr, std::vector<GgufKV> kvs = {}) {
    static const TwoTensors t = two_tensors();
    if (kvs.empty()) kvs = {gguf_kv_str("general.architecture", "llama"), gguf_kv_u32("llama.block_count", 1)};
    auto r = serialize_gguf(kvs, t.list(), {}, layout);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : std::vector<uint8_t>{};
}

// ---- round trips ----------------------------------------------------------------------------

TEST(Gguf, RoundTripsEveryValueType) {
    const auto kvs = all_value_kvs();
    auto bytes = serialize_gguf(kvs, {});
    ASSERT_TRUE(bytes.ok()) << bytes.error().message;
    auto r = GgufFile::parse(*bytes, kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const GgufFile& f = **r;
    EXPECT_EQ(f.version(), 3u);
    ASSERT_EQ(f.keys().size(), kvs.size());
    for (size_t i = 0; i < kvs.size(); ++i) {
        SCOPED_TRACE(kvs[i].key);
        EXPECT_EQ(f.keys()[i], kvs[i].key);  // file order kept
        ASSERT_EQ(f.value_type(kvs[i].key), kvs[i].type);
        const GgufValue& got = f.metadata().find(kvs[i].key)->second;
        if (kvs[i].type == uint32_t(GgufType::ARRAY)) {
            const auto& a = std::get<GgufArray>(got);
            const auto& b = std::get<GgufArray>(kvs[i].value);
            EXPECT_EQ(a.elem_type, b.elem_type);
            EXPECT_TRUE(a.values == b.values);
        } else {
            EXPECT_TRUE(got == kvs[i].value);
        }
    }
    EXPECT_EQ(f.tensors().size(), 0u);
    // Re-encoding what was read gives the same bytes.
    std::vector<GgufKV> again;
    for (const auto& k : f.keys()) again.push_back({k, *f.value_type(k), f.metadata().find(k)->second});
    auto bytes2 = serialize_gguf(again, {});
    ASSERT_TRUE(bytes2.ok());
    EXPECT_EQ(*bytes2, *bytes);
}

TEST(Gguf, TypedGetters) {
    auto bytes = serialize_gguf(all_value_kvs(), {});
    ASSERT_TRUE(bytes.ok());
    auto r = GgufFile::parse(*bytes, kName);
    ASSERT_TRUE(r.ok());
    const GgufFile& f = **r;
    EXPECT_EQ(f.get_int("u8")->value(), 255);
    EXPECT_EQ(f.get_int("i32")->value(), -2147483648ll);
    EXPECT_FALSE(f.get_int("u64").ok());  // 2^64-1 does not fit int64
    EXPECT_FALSE(f.get_int("missing")->has_value());
    EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("f32")->value()), 1.0e-5f);
    EXPECT_EQ(f.get_float("u32")->value(), 4294967295.0);
    EXPECT_EQ(f.get_bool("bool_t")->value(), true);
    EXPECT_EQ(f.get_string("general.architecture")->value(), "llama");
    auto wrong = f.get_string("u8");
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.error().message.find("'u8'"), std::string::npos);
    EXPECT_NE(wrong.error().message.find("expected a string"), std::string::npos);
    EXPECT_FALSE(f.get_bool("u8").ok());
    EXPECT_FALSE(f.get_float("general.architecture").ok());
    ASSERT_NE(f.get_array("a_str"), nullptr);
    EXPECT_EQ(f.get_array("a_str")->size(), 4u);
    EXPECT_EQ(f.get_array("u8"), nullptr);
}

TEST(Gguf, TensorsRoundTripWithShapesOutermostFirst) {
    const TwoTensors t = two_tensors();
    for (uint32_t align : {32u, 64u, 1u, 4096u}) {
        SCOPED_TRACE(align);
        std::vector<GgufKV> kvs = {gguf_kv_u32("general.alignment", align)};
        GgufLayout lay;
        auto bytes = serialize_gguf(kvs, t.list(), {}, &lay);
        ASSERT_TRUE(bytes.ok()) << bytes.error().message;
        auto r = GgufFile::parse(*bytes, kName);
        ASSERT_TRUE(r.ok()) << r.error().message;
        const GgufFile& f = **r;
        EXPECT_EQ(f.alignment(), align);
        EXPECT_EQ(f.data_offset(), lay.data_offset);
        ASSERT_EQ(f.tensors().size(), 2u);
        const GgufTensor* q = f.find("blk.0.attn_q.weight");
        ASSERT_NE(q, nullptr);
        EXPECT_EQ(q, &f.tensors()[0]);
        EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 64}));
        EXPECT_EQ(q->ggml_type, uint32_t(GgmlType::Q8_0));
        EXPECT_EQ(q->dtype, DType::gg_q8_0);
        EXPECT_TRUE(q->supported);
        EXPECT_EQ(q->nbytes, t.w.size());
        EXPECT_EQ(q->offset % align, 0u);
        EXPECT_EQ(q->data, bytes->data() + q->offset);
        EXPECT_EQ(std::memcmp(q->data, t.w.data(), t.w.size()), 0);
        const GgufTensor* n = f.find("blk.0.attn_norm.weight");
        ASSERT_NE(n, nullptr);
        EXPECT_EQ(n->shape, (std::vector<int64_t>{5}));
        EXPECT_EQ(n->dtype, DType::f32);
        EXPECT_EQ(n->offset % align, 0u);
        EXPECT_EQ(std::memcmp(n->data, t.n.data(), t.n.size()), 0);
        EXPECT_EQ(f.find("nope"), nullptr);
    }
}

// A streaming writer (bench/peer/synthetic_gguf) writes the header, then each tensor at tensor_data_at:
// the result must be the full serialization, byte for byte.
TEST(Gguf, HeaderOnlyPlusDataAtOffsetsEqualsTheFullFile) {
    const TwoTensors t = two_tensors();
    const std::vector<GgufKV> kvs = {gguf_kv_str("general.architecture", "llama")};
    GgufLayout full_lay, head_lay;
    auto full = serialize_gguf(kvs, t.list(), {}, &full_lay);
    GgufWriteOptions o;
    o.header_only = true;
    auto head = serialize_gguf(kvs, t.list(), o, &head_lay);
    ASSERT_TRUE(full.ok() && head.ok());
    EXPECT_EQ(head->size(), head_lay.data_offset);
    ASSERT_EQ(head_lay.tensor_data_at, full_lay.tensor_data_at);
    std::vector<uint8_t> built = *head;
    built.resize(full->size(), 0);
    const auto list = t.list();
    for (size_t i = 0; i < list.size(); ++i) {
        EXPECT_EQ(head_lay.tensor_data_at[i] % head_lay.alignment, 0u);
        std::copy(list[i].data, list[i].data + list[i].nbytes, built.begin() + static_cast<long>(head_lay.tensor_data_at[i]));
    }
    EXPECT_EQ(built, *full);
}

TEST(Gguf, FourDimsAndEveryBlockType) {
    struct T {
        GgmlType type;
        DType dtype;
    };
    for (T c : {T{GgmlType::F32, DType::f32}, T{GgmlType::F16, DType::f16}, T{GgmlType::BF16, DType::bf16},
                T{GgmlType::Q8_0, DType::gg_q8_0}, T{GgmlType::Q4_0, DType::gg_q4_0},
                T{GgmlType::Q4_1, DType::gg_q4_1}, T{GgmlType::Q5_0, DType::gg_q5_0},
                T{GgmlType::Q5_1, DType::gg_q5_1}, T{GgmlType::Q4_K, DType::gg_q4_k},
                T{GgmlType::Q5_K, DType::gg_q5_k}, T{GgmlType::Q6_K, DType::gg_q6_k}}) {
        auto sz = ggml_type_size(uint32_t(c.type));
        ASSERT_TRUE(sz);
        const int64_t cols = 256;
        std::vector<uint8_t> data(static_cast<size_t>(2 * 3 * 1 * cols / sz->block_elems * sz->block_bytes), 0x11);
        GgufTensorToWrite w{"t", {2, 3, 1, cols}, uint32_t(c.type), data.data(), data.size()};
        auto bytes = serialize_gguf({}, {w});
        ASSERT_TRUE(bytes.ok()) << bytes.error().message;
        auto r = GgufFile::parse(*bytes, kName);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ((*r)->tensors()[0].shape, (std::vector<int64_t>{2, 3, 1, cols}));
        EXPECT_EQ((*r)->tensors()[0].dtype, c.dtype);
        EXPECT_EQ((*r)->tensors()[0].nbytes, data.size());
    }
}

TEST(Gguf, VersionTwoIsAccepted) {
    const TwoTensors t = two_tensors();
    GgufWriteOptions o;
    o.version = 2;
    auto bytes = serialize_gguf({gguf_kv_str("k", "v")}, t.list(), o);
    ASSERT_TRUE(bytes.ok());
    auto r = GgufFile::parse(*bytes, kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->version(), 2u);
}

TEST(Gguf, UnsupportedKnownTypeParsesButIsRefusedByName) {
    std::vector<uint8_t> data(84, 0);  // one Q2_K block
    auto bytes = serialize_gguf({}, {{"blk.3.ffn_down.weight", {1, 256}, uint32_t(GgmlType::Q2_K), data.data(), 84}});
    ASSERT_TRUE(bytes.ok());
    auto r = GgufFile::parse(*bytes, kName);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const GgufTensor& t = (*r)->tensors()[0];
    EXPECT_FALSE(t.supported);
    EXPECT_EQ(t.dtype, DType::u8);
    auto dt = dtype_for_ggml(t.ggml_type, t.name);
    ASSERT_FALSE(dt.ok());
    EXPECT_NE(dt.error().message.find("blk.3.ffn_down.weight"), std::string::npos);
    EXPECT_NE(dt.error().message.find("Q2_K"), std::string::npos);
    for (uint32_t id : {9u, 11u, 16u, 20u, 23u, 29u, 34u, 39u}) {  // Q8_1, Q3_K, IQ2_XXS, IQ4_NL, ...
        auto e = dtype_for_ggml(id, "w");
        ASSERT_FALSE(e.ok());
        EXPECT_NE(e.error().message.find(std::string(ggml_type_name(id))), std::string::npos) << id;
    }
    auto unknown = dtype_for_ggml(77, "w");
    ASSERT_FALSE(unknown.ok());
    EXPECT_NE(unknown.error().message.find("77"), std::string::npos);
}

// ---- malformed files ------------------------------------------------------------------------

TEST(GgufMalformed, TruncatedAtEveryByte) {
    GgufLayout lay;
    auto bytes = valid_file(&lay, all_value_kvs());
    ASSERT_FALSE(bytes.empty());
    ASSERT_TRUE(GgufFile::parse(bytes, kName).ok());
    // The last tensor (F32 [5], 20 bytes) ends 20 bytes after its offset; only padding follows.
    auto full = GgufFile::parse(bytes, kName);
    const uint64_t data_end = (*full)->tensors().back().offset + (*full)->tensors().back().nbytes;
    for (size_t n = 0; n < data_end; ++n) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        auto r = GgufFile::parse(cut, kName);
        ASSERT_FALSE(r.ok()) << "truncated to " << n << " bytes";
        EXPECT_NE(r.error().message.find(kName), std::string::npos) << r.error().message;
    }
    for (size_t n = data_end; n <= bytes.size(); ++n) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_TRUE(GgufFile::parse(cut, kName).ok()) << n;  // only trailing padding was cut
    }
}

TEST(GgufMalformed, MagicAndVersion) {
    auto b = valid_file();
    auto bad = b;
    bad[0] = 'X';
    EXPECT_PARSE_ERROR(bad, "not a GGUF file", "magic");
    bad = b;
    put_le(bad, 4, 1, 4);
    EXPECT_PARSE_ERROR(bad, "version 1 is not supported", "2 or 3");
    put_le(bad, 4, 4, 4);
    EXPECT_PARSE_ERROR(bad, "unsupported GGUF version 4");
    put_le(bad, 4, 0x03000000u, 4);
    EXPECT_PARSE_ERROR(bad, "big-endian");
    const std::vector<uint8_t> two{'G', 'G'};
    EXPECT_PARSE_ERROR(two, "not a GGUF file");
}

TEST(GgufMalformed, HugeCountsAndLengths) {
    GgufLayout lay;
    auto b = valid_file(&lay);
    for (uint64_t huge : {uint64_t{1} << 60, ~uint64_t{0}, uint64_t{1} << 32}) {
        auto bad = b;
        put_le(bad, 8, huge, 8);
        EXPECT_PARSE_ERROR(bad, "tensor count");
        bad = b;
        put_le(bad, 16, huge, 8);
        EXPECT_PARSE_ERROR(bad, "key/value count");
        bad = b;
        put_le(bad, lay.key_at[0], huge, 8);
        EXPECT_PARSE_ERROR(bad, "string length", "exceeds");
        bad = b;
        put_le(bad, lay.tensor_info_at[1], huge, 8);
        EXPECT_PARSE_ERROR(bad, "tensor info 1 of 2: name", "exceeds");
    }
    // A string value and an array count.
    auto s = serialize_gguf({gguf_kv_str("general.name", "abc"), gguf_kv_i32_array("ids", {1, 2, 3})}, {});
    ASSERT_TRUE(s.ok());
    GgufLayout l2;
    (void)serialize_gguf({gguf_kv_str("general.name", "abc"), gguf_kv_i32_array("ids", {1, 2, 3})}, {}, {}, &l2);
    auto bad = *s;
    const uint64_t str_len_at = l2.key_at[0] + 8 + 12 + 4;  // key length, "general.name", value type
    put_le(bad, str_len_at, uint64_t{1} << 60, 8);
    EXPECT_PARSE_ERROR(bad, "key 'general.name'", "string length 1152921504606846976");
    bad = *s;
    const uint64_t count_at = l2.key_at[1] + 8 + 3 + 4 + 4;  // key, "ids", type ARRAY, element type
    put_le(bad, count_at, uint64_t{1} << 60, 8);
    EXPECT_PARSE_ERROR(bad, "key 'ids'", "array of 1152921504606846976");
    put_le(bad, count_at, 100, 8);  // more elements than the bytes left hold
    EXPECT_PARSE_ERROR(bad, "key 'ids'", "array of 100");
}

TEST(GgufMalformed, BadValueTypes) {
    GgufLayout lay;
    auto s = serialize_gguf({gguf_kv_u32("a", 1), gguf_kv_i32_array("b", {1})}, {}, {}, &lay);
    ASSERT_TRUE(s.ok());
    auto bad = *s;
    put_le(bad, lay.key_at[0] + 8 + 1, 13, 4);
    EXPECT_PARSE_ERROR(bad, "key 'a'", "unknown value type 13");
    bad = *s;
    put_le(bad, lay.key_at[1] + 8 + 1 + 4, uint32_t(GgufType::ARRAY), 4);
    EXPECT_PARSE_ERROR(bad, "key 'b'", "arrays of arrays");
    bad = *s;
    put_le(bad, lay.key_at[1] + 8 + 1 + 4, 99, 4);
    EXPECT_PARSE_ERROR(bad, "key 'b'", "unknown array element type 99");
    GgufLayout bl;
    auto bs = serialize_gguf({gguf_kv_bool("flag", true)}, {}, {}, &bl);
    ASSERT_TRUE(bs.ok());
    bad = *bs;
    bad[bl.key_at[0] + 8 + 4 + 4] = 2;
    EXPECT_PARSE_ERROR(bad, "key 'flag'", "expected a bool");
}

TEST(GgufMalformed, DuplicateKeysAndNames) {
    GgufWriteOptions loose;
    loose.validate = false;
    auto k = serialize_gguf({gguf_kv_u32("x.y", 1), gguf_kv_u32("x.y", 2)}, {}, loose);
    ASSERT_TRUE(k.ok());
    EXPECT_PARSE_ERROR(*k, "key 'x.y'", "duplicate");
    auto e = serialize_gguf({gguf_kv_u32("", 1)}, {}, loose);
    EXPECT_PARSE_ERROR(*e, "non-empty key");
    const TwoTensors t = two_tensors();
    auto list = t.list();
    list[1].name = list[0].name;
    list[1].shape = {2, 64};
    list[1].ggml_type = uint32_t(GgmlType::Q8_0);
    list[1].data = t.w.data();
    list[1].nbytes = t.w.size();
    auto n = serialize_gguf({}, list, loose);
    ASSERT_TRUE(n.ok());
    EXPECT_PARSE_ERROR(*n, "duplicate tensor name 'blk.0.attn_q.weight'");
    EXPECT_FALSE(serialize_gguf({}, list).ok());  // the validating writer refuses it too
}

TEST(GgufMalformed, Alignment) {
    for (uint32_t a : {0u, 3u, 48u}) {
        GgufWriteOptions loose;
        loose.validate = false;
        auto b = serialize_gguf({gguf_kv_u32("general.alignment", a)}, {}, loose);
        ASSERT_TRUE(b.ok());
        EXPECT_PARSE_ERROR(*b, "general.alignment", "power of two");
    }
    auto b = serialize_gguf({gguf_kv_u64("general.alignment", 32)}, {});
    ASSERT_TRUE(b.ok());
    EXPECT_PARSE_ERROR(*b, "general.alignment", "expected a u32");
    GgufLayout lay;
    auto v = valid_file(&lay);
    put_le(v, lay.tensor_offset_at[1], 160 + 4, 8);
    EXPECT_PARSE_ERROR(v, "tensor 'blk.0.attn_norm.weight'", "not a multiple of the alignment 32");
}

TEST(GgufMalformed, OverlappingAndPastEndData) {
    GgufLayout lay;
    auto b = valid_file(&lay);
    auto bad = b;
    put_le(bad, lay.tensor_offset_at[1], 0, 8);  // on top of the first tensor
    EXPECT_PARSE_ERROR(bad, "overlaps", "blk.0.attn_norm.weight", "blk.0.attn_q.weight");
    bad = b;
    put_le(bad, lay.tensor_offset_at[1], 128, 8);  // inside the first tensor's 136 bytes
    EXPECT_PARSE_ERROR(bad, "overlaps");
    bad = b;
    put_le(bad, lay.tensor_offset_at[1], 1024, 8);
    EXPECT_PARSE_ERROR(bad, "tensor 'blk.0.attn_norm.weight'", "past the end");
    bad = b;
    put_le(bad, lay.tensor_offset_at[1], ~uint64_t{0} - 31, 8);  // aligned, offset + size overflows
    EXPECT_PARSE_ERROR(bad, "past the end");
}

TEST(GgufMalformed, TensorInfoFields) {
    GgufLayout lay;
    auto b = valid_file(&lay);
    const uint64_t ndims_at = lay.tensor_info_at[0] + 8 + std::string("blk.0.attn_q.weight").size();
    auto bad = b;
    put_le(bad, lay.tensor_type_at[0], 99, 4);
    const std::string info_at = "info at byte " + std::to_string(lay.tensor_info_at[0]);
    EXPECT_PARSE_ERROR(bad, "tensor 'blk.0.attn_q.weight'", "unknown ggml type id 99", info_at.c_str());
    bad = b;
    put_le(bad, ndims_at, 0, 4);
    EXPECT_PARSE_ERROR(bad, "tensor 'blk.0.attn_q.weight'", "n_dims = 0");
    bad = b;
    put_le(bad, ndims_at, 5, 4);
    EXPECT_PARSE_ERROR(bad, "n_dims = 5");
    bad = b;
    put_le(bad, ndims_at + 4, 0, 8);  // innermost dim 0
    EXPECT_PARSE_ERROR(bad, "positive dimensions", "[0, 2]");
    bad = b;
    put_le(bad, ndims_at + 4, 48, 8);  // 48 is not a multiple of Q8_0's 32
    EXPECT_PARSE_ERROR(bad, "row length 48", "Q8_0 block size 32");
    bad = b;
    put_le(bad, ndims_at + 4, uint64_t{1} << 40, 8);
    put_le(bad, ndims_at + 12, uint64_t{1} << 40, 8);
    EXPECT_PARSE_ERROR(bad, "63 bits");
    bad = b;
    put_le(bad, ndims_at + 12, uint64_t{1} << 63, 8);
    EXPECT_PARSE_ERROR(bad, "below 2^63");
    bad = b;
    put_le(bad, ndims_at + 4, uint64_t{1} << 62, 8);  // 2^62 / 32 * 34 bytes overflows... as numel*2 does
    EXPECT_FALSE(GgufFile::parse(bad, kName).ok());
}

TEST(GgufMalformed, EveryCorruptByteGivesAResult) {
    // A cheap deterministic sweep: each byte of the header area set to 0xff and 0x00 in turn; the
    // parser must return (ok or error), never crash. The fuzzer does the thorough version.
    GgufLayout lay;
    auto b = valid_file(&lay, all_value_kvs());
    for (size_t i = 0; i < lay.data_offset; ++i) {
        for (uint8_t v : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0x80}}) {
            auto bad = b;
            bad[i] = v;
            auto r = GgufFile::parse(bad, kName);
            if (!r.ok()) {
                EXPECT_FALSE(r.error().message.empty());
            }
        }
    }
}

TEST(Gguf, OpenMissingFileIsAnError) {
    auto r = GgufFile::open("/nonexistent/dir/model.gguf");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("model.gguf"), std::string::npos);
}

TEST(Gguf, WriteAndOpenFromDisk) {
    const std::string path = testing::TempDir() + "/gguf_test_write.gguf";
    const TwoTensors t = two_tensors();
    ASSERT_TRUE(write_gguf(path, all_value_kvs(), t.list()).ok());
    auto r = GgufFile::open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->path(), path);
    EXPECT_EQ((*r)->tensors().size(), 2u);
    EXPECT_EQ(std::memcmp((*r)->find("blk.0.attn_q.weight")->data, t.w.data(), t.w.size()), 0);
    std::remove(path.c_str());
}

TEST(GgufWriter, RefusesValuesThatDoNotFit) {
    EXPECT_FALSE(serialize_gguf({{"x", uint32_t(GgufType::U8), uint64_t{256}}}, {}).ok());
    EXPECT_FALSE(serialize_gguf({{"x", uint32_t(GgufType::I16), int64_t{40000}}}, {}).ok());
    EXPECT_FALSE(serialize_gguf({{"x", uint32_t(GgufType::U32), std::string("s")}}, {}).ok());
    EXPECT_FALSE(serialize_gguf({arr("x", uint32_t(GgufType::I8), std::vector<int64_t>{-129})}, {}).ok());
    std::vector<uint8_t> d(10);
    EXPECT_FALSE(serialize_gguf({}, {{"t", {2, 32}, uint32_t(GgmlType::Q8_0), d.data(), d.size()}}).ok());
}

}  // namespace
}  // namespace hr::io

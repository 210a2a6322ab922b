// Storage dtype per tensor under each weight format, and stored byte sizes (data + scales, aligned).
#include <gtest/gtest.h>

#include "memory/weight_format.h"

namespace hr {
namespace {

TensorSpec mat(TensorRole role, int64_t out, int64_t in, bool quantizable) {
    return TensorSpec{"t", {out, in}, role, 0, quantizable};
}

TEST(WeightFormat, QuantizableMatricesTakeTheFormat) {
    const TensorSpec wq = mat(TensorRole::attention, 4096, 4096, true);
    const TensorSpec w1 = mat(TensorRole::expert, 14336, 4096, true);
    for (DType f : {DType::bf16, DType::f16, DType::q8, DType::q4}) {
        EXPECT_EQ(storage_dtype_for(wq, f, DType::bf16), f);
        EXPECT_EQ(storage_dtype_for(w1, f, DType::bf16), f);
    }
}

TEST(WeightFormat, OutputHeadIsInt8UnderInt4) {
    const TensorSpec head = mat(TensorRole::output_head, 32000, 4096, true);
    EXPECT_EQ(storage_dtype_for(head, DType::q4, DType::bf16), DType::q8);
    EXPECT_EQ(storage_dtype_for(head, DType::q8, DType::bf16), DType::q8);
    EXPECT_EQ(storage_dtype_for(head, DType::bf16, DType::bf16), DType::bf16);
    EXPECT_EQ(storage_dtype_for(head, DType::f16, DType::bf16), DType::f16);
}

TEST(WeightFormat, OthersStayInCheckpointDtype) {
    const TensorSpec emb = mat(TensorRole::embedding, 32000, 4096, false);
    const TensorSpec router = mat(TensorRole::router, 8, 4096, false);
    const TensorSpec norm{"n", {4096}, TensorRole::norm, 0, false};
    for (DType f : {DType::bf16, DType::q8, DType::q4}) {
        EXPECT_EQ(storage_dtype_for(emb, f, DType::bf16), DType::bf16);
        EXPECT_EQ(storage_dtype_for(router, f, DType::f16), DType::f16);
        EXPECT_EQ(storage_dtype_for(norm, f, DType::f32), DType::f32);
    }
}

TEST(WeightFormat, StoredBytesMatchTheFormatSpec) {
    const TensorSpec w1 = mat(TensorRole::expert, 14336, 4096, true);
    EXPECT_EQ(stored_tensor_bytes(w1, DType::bf16).data, 14336ull * 4096 * 2);
    EXPECT_EQ(stored_tensor_bytes(w1, DType::bf16).scales, 0u);
    EXPECT_EQ(stored_tensor_bytes(w1, DType::q8).data, 14336ull * 4096);
    EXPECT_EQ(stored_tensor_bytes(w1, DType::q8).scales, 14336ull * 4);        // f32 per row
    EXPECT_EQ(stored_tensor_bytes(w1, DType::q4).data, 14336ull * 4096 / 2);
    EXPECT_EQ(stored_tensor_bytes(w1, DType::q4).scales, 14336ull * 32 * 2);   // f16 per 128 inputs
}

TEST(WeightFormat, PartsAreRoundedUpTo256Bytes) {
    const TensorSpec odd = mat(TensorRole::attention, 3, 5, true);
    EXPECT_EQ(stored_tensor_bytes(odd, DType::bf16).data, 256u);  // 30 bytes
    EXPECT_EQ(stored_tensor_bytes(odd, DType::q4).data, 256u);    // 3 x 3 bytes
    EXPECT_EQ(stored_tensor_bytes(odd, DType::q4).scales, 256u);  // 3 x 1 group x 2
    const TensorSpec norm{"n", {48}, TensorRole::norm, 0, false};
    EXPECT_EQ(stored_tensor_bytes(norm, DType::bf16).total(), 256u);  // 96 bytes
}

TEST(WeightFormat, ParsesNames) {
    EXPECT_FALSE(parse_weight_format("auto")->has_value());
    EXPECT_EQ(**parse_weight_format("int8"), DType::q8);
    EXPECT_EQ(**parse_weight_format("int4"), DType::q4);
    EXPECT_EQ(**parse_weight_format("bf16"), DType::bf16);
    EXPECT_EQ(**parse_weight_format("f16"), DType::f16);
    EXPECT_FALSE(parse_weight_format("q4_k").ok());
    EXPECT_FALSE(parse_weight_format("").ok());
    EXPECT_EQ(*parse_kv_dtype("f32"), DType::f32);
    EXPECT_EQ(*parse_kv_dtype("bf16"), DType::bf16);
    EXPECT_EQ(*parse_kv_dtype("int8"), DType::i8);
    EXPECT_EQ(*parse_kv_dtype("fp8"), DType::f8_e4m3);
    EXPECT_EQ(kv_dtype_name(DType::i8), "int8");
    EXPECT_EQ(kv_dtype_name(DType::f8_e4m3), "fp8");
    EXPECT_FALSE(parse_kv_dtype("q8").ok());
    EXPECT_FALSE(parse_kv_dtype("int4").ok());
}

}  // namespace
}  // namespace hr

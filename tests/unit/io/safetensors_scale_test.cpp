// Issue 17 row 7: header parsing must be about linear in the tensor count (it was worse than
// quadratic: 20k tensors 3.5 s, 40k 21 s, through nlohmann's parse callback).
#include <chrono>
#include <string>

#include <gtest/gtest.h>
#include <fmt/format.h>

#include "io/safetensors.h"
#include "unit/io/st_bytes.h"

namespace hr::io {
namespace {

std::vector<uint8_t> many_tensors(int n) {
    std::string h = "{";
    for (int i = 0; i < n; ++i) {
        h += fmt::format("{}\"t{}\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{},{}]}}", i ? "," : "", i, i, i + 1);
    }
    h += "}";
    return testing::st_bytes(h, static_cast<uint64_t>(n));
}

double parse_seconds(const std::vector<uint8_t>& bytes, size_t expect_tensors) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = SafetensorsFile::parse(bytes, "many.safetensors");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (r.ok()) EXPECT_EQ((*r)->tensors().size(), expect_tensors);
    return s;
}

TEST(SafetensorsScale, FiftyThousandTinyTensorsParseQuickly) {
    const double s = parse_seconds(many_tensors(50000), 50000);
    // generous for a loaded 2-core CI machine; the quadratic parser took ~40 s here
    EXPECT_LT(s, 5.0) << "50k tensors took " << s << " s";
}

TEST(SafetensorsScale, GrowthIsAboutLinear) {
    // 4x the tensors may cost at most ~10x the time (O(n log n) plus noise), not 16x or more
    const double small = parse_seconds(many_tensors(5000), 5000);
    const double big = parse_seconds(many_tensors(20000), 20000);
    EXPECT_LT(big, 10 * small + 0.05) << "5k: " << small << " s, 20k: " << big << " s";
}

TEST(SafetensorsScale, DuplicateKeysAreStillRefused) {
    auto r = SafetensorsFile::parse(testing::st_bytes(
        R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
                                    "dup.safetensors");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("duplicate JSON key 'a'"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace hr::io

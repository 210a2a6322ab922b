// Issue 17 row 7: header parsing must be about linear in the tensor count (it was worse than
// quadratic: 20k tensors 3.5 s, 40k 21 s, through nlohmann's parse callback).
#include <time.h>

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

// CPU seconds of this thread: immune to a loaded CI machine (wall time varied 20x here under load).
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double parse_seconds(const std::vector<uint8_t>& bytes, size_t expect_tensors) {
    const double t0 = thread_cpu_seconds();
    auto r = SafetensorsFile::parse(bytes, "many.safetensors");
    const double s = thread_cpu_seconds() - t0;
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (r.ok()) {
        EXPECT_EQ((*r)->tensors().size(), expect_tensors);
    }
    return s;
}

TEST(SafetensorsScale, FiftyThousandTinyTensorsParseQuickly) {
    const double s = parse_seconds(many_tensors(50000), 50000);
    // CPU time; about 0.3 s here; the quadratic parser needed ~21 s for 40k
    EXPECT_LT(s, 5.0) << "50k tensors took " << s << " CPU s";
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

// Byte sizes as people write them: accepted spellings, exact values, and refusals.
#include <gtest/gtest.h>

#include "memory/units.h"

namespace hr {
namespace {

uint64_t parse_ok(const char* s) {
    Result<uint64_t> r = parse_byte_size(s, "--gpu-memory");
    EXPECT_TRUE(r.ok()) << s << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : 0;
}

TEST(Units, BinaryAndDecimalUnits) {
    EXPECT_EQ(parse_ok("24GiB"), 24ull << 30);
    EXPECT_EQ(parse_ok("23.5GB"), 23500000000ull);
    EXPECT_EQ(parse_ok("24G"), 24ull << 30);  // G = GiB, documented
    EXPECT_EQ(parse_ok("24gib"), 24ull << 30);
    EXPECT_EQ(parse_ok("512MiB"), 512ull << 20);
    EXPECT_EQ(parse_ok("512 MB"), 512000000ull);
    EXPECT_EQ(parse_ok("1.5GiB"), 3ull << 29);
    EXPECT_EQ(parse_ok("4096"), 4096ull);
    EXPECT_EQ(parse_ok("4096B"), 4096ull);
    EXPECT_EQ(parse_ok("1T"), 1ull << 40);
    EXPECT_EQ(parse_ok("2KB"), 2000ull);
}

TEST(Units, RefusesZeroNegativeGarbage) {
    for (const char* bad : {"0", "0GiB", "0.0", "-1GiB", "-24G", "", "GiB", "abc", "24XB", "24 G B", "1.2.3G",
                            "0.0000001B", "2000TiB", "99999999999999999999999"}) {
        Result<uint64_t> r = parse_byte_size(bad, "--gpu-memory");
        EXPECT_FALSE(r.ok()) << "accepted '" << bad << "'";
        if (!r.ok()) {
            EXPECT_NE(r.error().message.find("--gpu-memory"), std::string::npos) << r.error().message;
            EXPECT_NE(r.error().message.find(std::string("'") + bad + "'"), std::string::npos) << r.error().message;
        }
    }
}

TEST(Units, FormatsBinaryUnits) {
    EXPECT_EQ(format_bytes(100), "100 B");
    EXPECT_EQ(format_bytes(8192), "8.00 KiB");
    EXPECT_EQ(format_bytes(512ull << 20), "512.0 MiB");
    EXPECT_EQ(format_bytes(24564ull << 20), "23.99 GiB");
}

}  // namespace
}  // namespace hr

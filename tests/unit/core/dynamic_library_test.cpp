// DynamicLibrary (core/dynamic_library.h), the run-time loading NCCL goes through: a library that is not
// there and a symbol that is not exported are typed errors naming them and the loader's message; a
// present one resolves and calls.
#include <gtest/gtest.h>

#include "core/dynamic_library.h"

namespace hr {
namespace {

TEST(DynamicLibrary, MissingLibraryIsAnErrorNamingItAndDlerror) {
    auto lib = DynamicLibrary::open("libheadroom-not-installed.so.7");
    ASSERT_FALSE(lib.ok());
    const std::string& m = lib.error().message;
    EXPECT_NE(m.find("cannot load libheadroom-not-installed.so.7"), std::string::npos) << m;
    // dlerror()'s own words follow the name.
    EXPECT_NE(m.find("No such file"), std::string::npos) << m;
    EXPECT_FALSE(DynamicLibrary::open("").ok());
}

TEST(DynamicLibrary, ResolvesAndCallsAnExportedFunction) {
    auto lib = DynamicLibrary::open("libm.so.6");
    ASSERT_TRUE(lib.ok()) << lib.error().message;
    double (*cos_fn)(double) = nullptr;
    ASSERT_TRUE(resolve(*lib, "cos", cos_fn).ok());
    EXPECT_DOUBLE_EQ(cos_fn(0.0), 1.0);
    DynamicLibrary moved = std::move(lib).value();
    auto missing = moved.symbol("headroom_no_such_symbol");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("libm.so.6 does not export headroom_no_such_symbol"), std::string::npos)
        << missing.error().message;
}

}  // namespace
}  // namespace hr

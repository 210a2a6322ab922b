// Paths of the reference fixtures copied into tests/fixtures (see its README.md).
#pragma once

#include <cstdlib>
#include <string>

namespace hr::test {

// The environment's HR_FIXTURES_DIR wins over the build's: a prebuilt test binary (scripts/gpu-bundle.sh)
// runs from another checkout on the GPU machine.
inline std::string fixtures_dir() {
    const char* env = std::getenv("HR_FIXTURES_DIR");
    return env && *env ? env : HR_FIXTURES_DIR;
}
inline std::string model_fixture(const std::string& name) { return fixtures_dir() + "/models/" + name; }

}  // namespace hr::test

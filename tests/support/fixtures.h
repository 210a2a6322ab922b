// Paths of the reference fixtures copied into tests/fixtures (see its README.md).
#pragma once

#include <string>

namespace hr::test {

inline std::string fixtures_dir() { return HR_FIXTURES_DIR; }
inline std::string model_fixture(const std::string& name) { return fixtures_dir() + "/models/" + name; }

}  // namespace hr::test

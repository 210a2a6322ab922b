// Structural checks of untrusted JSON text before it becomes a DOM: nesting depth and duplicate object
// keys (nlohmann keeps the last of two equal keys silently). One linear pass with a SAX handler that
// builds nothing. note: nlohmann's parse callback is not used for this because its parser scans the
// parent object after each nested object ends, which makes a header with n tensors O(n^2).
#pragma once

#include <string>
#include <string_view>

namespace hr {

struct JsonCheck {
    enum class Kind { ok, syntax, too_deep, duplicate_key };
    Kind kind = Kind::ok;
    std::string key;  // duplicate_key: the key (raw bytes of the JSON string, unescaped)
    bool ok() const { return kind == Kind::ok; }
};

// Arrays and objects nested deeper than max_depth give too_deep (the root container is depth 1);
// invalid JSON gives syntax (the caller's real parse then says where).
JsonCheck check_json_structure(std::string_view text, int max_depth);

}  // namespace hr

// The prompts of `headroom quantize --calibrate FILE|DIR|builtin`: the texts whose routing decides which
// experts are hot (docs/memory.md, "Hot experts").
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace hr::app {

// "builtin": a small built-in set of business-document and chat prompts. A directory: its *.txt, *.md
// and *.jsonl files (not recursive), by name. A *.jsonl file: one prompt per non-empty line, a JSON
// string or an object with a string "text" or "prompt". Any other file: its whole text, one prompt.
// Errors name the path (and line): missing, unreadable, a bad JSONL line, no prompts at all.
Result<std::vector<std::string>> read_calibration_prompts(const std::string& spec);

}  // namespace hr::app

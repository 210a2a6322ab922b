// Compiled constraints by their canonical text, shared by the server and the CLI. Compiling a schema can
// take milliseconds and clients usually repeat the same few schemas, so each is compiled once.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "structured/constraint.h"

namespace hr {

// What an answer must be, as the caller stated it (docs/structured-output.md).
enum class ConstraintKind : uint8_t { json_object, json_schema, choice };

struct ConstraintSpec {
    ConstraintKind kind = ConstraintKind::json_object;
    // json_schema: the schema with the caller's key order, so that properties come out in that order.
    nlohmann::ordered_json schema;
    std::vector<std::string> choices;  // choice: non-empty, distinct
};

// Compiles a spec (no caching): what a one-off caller such as `headroom generate` uses.
Result<std::shared_ptr<const CompiledConstraint>> compile_constraint(const ConstraintSpec& spec);

// Least recently used entries are dropped past `capacity`. Thread-safe.
class ConstraintCache {
public:
    explicit ConstraintCache(size_t capacity = 64) : capacity_(capacity) {}
    // Errors are the compiler's (they name every unsupported keyword with its JSON pointer).
    Result<std::shared_ptr<const CompiledConstraint>> get(const ConstraintSpec& spec);
    size_t size() const;

private:
    using Entry = std::pair<std::string, std::shared_ptr<const CompiledConstraint>>;
    size_t capacity_;
    mutable std::mutex mu_;
    std::list<Entry> lru_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace hr

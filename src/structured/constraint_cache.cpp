// ConstraintCache (see constraint_cache.h).
#include "structured/constraint_cache.h"

namespace hr {

Result<std::shared_ptr<const CompiledConstraint>> compile_constraint(const ConstraintSpec& spec) {
    switch (spec.kind) {
        case ConstraintKind::json_object: return compile_json_object();
        case ConstraintKind::choice: return compile_choice(spec.choices);
        case ConstraintKind::json_schema: break;
    }
    return compile_json_schema(spec.schema);
}

Result<std::shared_ptr<const CompiledConstraint>> ConstraintCache::get(const ConstraintSpec& spec) {
    if (spec.kind == ConstraintKind::json_object) return compile_json_object();
    // The kind's letter keeps a schema and a choice list with the same text apart.
    const std::string key = spec.kind == ConstraintKind::json_schema ? "s" + spec.schema.dump()
                                                                     : "c" + nlohmann::json(spec.choices).dump();
    {
        std::lock_guard lock(mu_);
        if (auto it = index_.find(key); it != index_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second);
            return it->second->second;
        }
    }
    // Compiled outside the lock: two callers with a new schema may both compile it (harmless).
    Result<std::shared_ptr<const CompiledConstraint>> c = compile_constraint(spec);
    if (!c.ok()) return c;
    std::lock_guard lock(mu_);
    if (index_.count(key)) return *c;
    lru_.emplace_front(key, *c);
    index_[key] = lru_.begin();
    while (lru_.size() > capacity_) {
        index_.erase(lru_.back().first);
        lru_.pop_back();
    }
    return *c;
}

size_t ConstraintCache::size() const {
    std::lock_guard lock(mu_);
    return lru_.size();
}

}  // namespace hr

// Structured output: the request's constraint as a ConstraintSpec (see structured_output.h).
#include "server/structured_output.h"

namespace hr::server {

ConstraintSpec constraint_spec(const ApiRequest& r, const nlohmann::ordered_json* schema_ordered) {
    ConstraintSpec s;
    switch (r.constraint) {
        case OutputConstraint::json_schema:
            s.kind = ConstraintKind::json_schema;
            s.schema = schema_ordered ? *schema_ordered : nlohmann::ordered_json(r.schema);
            break;
        case OutputConstraint::choice:
            s.kind = ConstraintKind::choice;
            s.choices = r.choices;
            break;
        case OutputConstraint::json_object:
        case OutputConstraint::none: s.kind = ConstraintKind::json_object; break;
    }
    return s;
}

}  // namespace hr::server

// Shared API errors (see api_errors.h).
#include "server/api_errors.h"

#include <algorithm>

namespace hr::server {

ApiError api_error(int status, std::string type, std::string message, std::string code) {
    ApiError e;
    e.status = status;
    e.type = std::move(type);
    e.message = std::move(message);
    e.code = std::move(code);
    return e;
}

ApiError model_not_found_error() {
    ApiError e = api_error(404, "invalid_request_error", "the requested model is not served here; GET /v1/models lists it",
                           "model_not_found");
    e.param = "model";
    return e;
}

ApiError not_serving_error(ServerState st) {
    ApiError e = api_error(503, "server_error",
                           st == ServerState::loading ? "the model is loading" : "the server is not serving",
                           std::string(server_state_name(st)));
    if (st == ServerState::loading) e.retry_after_s = 5;
    return e;
}

ApiError engine_dead_error() { return api_error(503, "server_error", std::string(kEngineFatalMessage), "engine_dead"); }

ApiError ended_error(const StreamEvent& ev) {
    if (ev.engine_dead) return engine_dead_error();
    switch (ev.reason) {
        case FinishReason::timeout: return api_error(504, "timeout_error", ev.error, "deadline_expired");
        case FinishReason::shutdown: return api_error(503, "server_error", ev.error, "shutdown");
        case FinishReason::cancelled: return api_error(499, "cancelled", "the request was cancelled", "cancelled");
        default:
            return api_error(500, "server_error", ev.error.empty() ? "generation failed" : ev.error, "generation_failed");
    }
}

Refusal submit_refusal(const SubmitError& se) {
    switch (se.kind) {
        case SubmitErrorKind::invalid: return {bad_request(se.message), "invalid"};
        case SubmitErrorKind::queue_full: {
            ApiError e = api_error(429, "rate_limit_error", se.message, "queue_full");
            e.retry_after_s = std::max(1.0, se.retry_after_s);
            return {e, "queue_full"};
        }
        case SubmitErrorKind::deadline:
            return {api_error(504, "timeout_error", se.message, "deadline_cannot_be_met"), "timeout"};
        case SubmitErrorKind::unavailable: break;
    }
    return {api_error(503, "server_error", se.message, "unavailable"), "unavailable"};
}

}  // namespace hr::server

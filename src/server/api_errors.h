// The API errors the routes share: how a server state, an engine submit refusal or an abnormal end of a
// generation reads to the client, and under which outcome /metrics counts it.
#pragma once

#include <string>

#include "runtime/request.h"
#include "runtime/engine.h"
#include "server/api_server.h"
#include "server/openai_types.h"

namespace hr::server {

// A refused request: the error to send and the headroom_requests_total outcome it is counted under.
struct Refusal {
    ApiError error;
    std::string outcome;
};

ApiError api_error(int status, std::string type, std::string message, std::string code = "");
// 404 for a request that names another model than the one served.
ApiError model_not_found_error();
// The 503 for a request that arrives while the server is loading, draining or dead.
ApiError not_serving_error(ServerState st);
// A fatal error (hr::fatal) stopped the engine; the process ends within kFatalGraceSeconds.
ApiError engine_dead_error();
// The error a generation that ended abnormally reports (as the response, or as a stream's last event).
ApiError ended_error(const StreamEvent& ev);
// Engine::submit refused the request.
Refusal submit_refusal(const SubmitError& se);

}  // namespace hr::server

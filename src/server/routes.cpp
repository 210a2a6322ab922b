// The route table: which handler answers which method and path, and which routes need the API key.
#include <fmt/format.h>

#include "classify/classify_batch.h"
#include "server/api_errors.h"
#include "server/api_server.h"
#include "server/prometheus.h"
#include "server/web_ui.h"

namespace hr::server {

using nlohmann::json;

namespace {

bool constant_time_equal(const std::string& a, const std::string& b) {
    // note: the loop length depends only on the expected key's length, never on where they differ.
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (size_t i = 0; i < b.size(); ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        diff |= x ^ static_cast<unsigned char>(b[i]);
    }
    return diff == 0;
}

}  // namespace

http::Handler ApiServer::authed(http::Handler h) {
    if (opts_.api_key.empty()) return h;
    return [this, h = std::move(h)](const http::Request& req, http::Response& res) {
        const std::string v = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        const bool ok = v.size() > prefix.size() && v.compare(0, prefix.size(), prefix) == 0 &&
                        constant_time_equal(v.substr(prefix.size()), opts_.api_key);
        if (ok) return h(req, res);
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, api_error(401, "authentication_error", "a valid API key is required (Authorization: Bearer)",
                                  "invalid_api_key"),
                   "unauthorized");
    };
}

void ApiServer::install_routes() {
    http::HttpTransport& s = *http_;
    // Requests the transport refuses itself (no route, body too large, header too large or slow, bad
    // Host/Origin/Content-Type, every worker busy) get the same error object and are counted.
    s.set_error_handler([this](int status, const std::string& code, const std::string& message, http::Response& res) {
        const std::string type = status >= 500 ? "server_error" : "invalid_request_error";
        send_error(res, api_error(status, type, message, code), "http_" + std::to_string(status));
    });
    // light routes run on the transport's I/O thread: they answer while every worker is busy.
    s.route("GET", "/health", [this](const http::Request&, http::Response& res) {
        const ServerState st = state();
        res.status = st == ServerState::ready ? 200 : 503;
        res.set_content(st == ServerState::loading ? startup_.health_json() : dump_json(json{{"status", server_state_name(st)}}),
                        "application/json");
    }, true);
    s.route("GET", "/ping", [this](const http::Request&, http::Response& res) {
        // The serverless load-balancer convention: 204 while initialising, 200 ready, 503 unhealthy.
        const ServerState st = state();
        res.status = st == ServerState::ready ? 200 : st == ServerState::loading ? 204 : 503;
        if (res.status != 204) res.set_content(dump_json(json{{"status", server_state_name(st)}}), "application/json");
    }, true);
    s.route("GET", "/metrics", authed([this](const http::Request&, http::Response& res) { handle_metrics(res); }), true);
    s.route("GET", "/v1/models", authed([this](const http::Request&, http::Response& res) { handle_models(res); }), true);
    // The web page is public: it holds no data, and every API call it makes carries the key typed into
    // it. The Host / Origin policy applies to it as to every checked route (no DNS-rebinding page).
    for (WebFile& f : web_files()) {
        const std::string path = f.path;
        s.route("GET", path, [f = std::move(f)](const http::Request&, http::Response& res) { serve_web_file(f, res); },
                true);
    }
    s.route("POST", "/v1/classify",
            authed([this](const http::Request& req, http::Response& res) { handle_classify(req, res); }));
    s.route("POST", "/v1/completions", authed([this](const http::Request& req, http::Response& res) {
        handle_generate(req, res, Endpoint::completions);
    }));
    s.route("POST", "/v1/chat/completions", authed([this](const http::Request& req, http::Response& res) {
        handle_generate(req, res, Endpoint::chat);
    }));
}

void ApiServer::handle_models(http::Response& res) {
    Engine* e = engine_.load(std::memory_order_acquire);
    json m = {{"id", opts_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "headroom"}};
    if (e) m["max_model_len"] = e->config().context;
    res.set_content(dump_json(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
}

void ApiServer::handle_metrics(http::Response& res) {
    MetricsInput in;
    in.state = state();
    in.engine = engine_.load(std::memory_order_acquire);
    in.planned_bytes = in.engine ? &planned_ : nullptr;
    in.offloaded_experts = offloaded_experts_;
    in.host_stream_bytes = in.engine ? &host_stream_bytes_ : nullptr;
    in.offload_compute = in.engine ? &offload_compute_ : nullptr;
    {
        std::lock_guard lock(counters_mu_);
        in.outcomes = outcomes_;
    }
    std::string text = render_metrics(in);
    text += "# HELP headroom_classify_documents Documents of /v1/classify requests: waiting in their request "
            "(not yet handed to the engine) or running (handed to the engine, not finished).\n"
            "# TYPE headroom_classify_documents gauge\n";
    text += fmt::format("headroom_classify_documents{{state=\"waiting\"}} {}\n", classify_docs_->waiting.load());
    text += fmt::format("headroom_classify_documents{{state=\"running\"}} {}\n", classify_docs_->running.load());
    const http::TransportStats t = http_->stats();
    text += "# HELP headroom_http_connections_open Client connections open now.\n"
            "# TYPE headroom_http_connections_open gauge\n";
    text += fmt::format("headroom_http_connections_open {}\n", t.open);
    text += "# HELP headroom_http_connections_closed_total Connections the server closed on its own, by reason.\n"
            "# TYPE headroom_http_connections_closed_total counter\n";
    text += fmt::format("headroom_http_connections_closed_total{{reason=\"idle_timeout\"}} {}\n", t.idle_timeouts);
    text += fmt::format("headroom_http_connections_closed_total{{reason=\"header_timeout\"}} {}\n", t.header_timeouts);
    text += fmt::format("headroom_http_connections_closed_total{{reason=\"body_timeout\"}} {}\n", t.body_timeouts);
    text += fmt::format("headroom_http_connections_closed_total{{reason=\"evicted\"}} {}\n", t.evicted);
    text += fmt::format("headroom_http_connections_closed_total{{reason=\"refused\"}} {}\n", t.refused);
    res.set_content(std::move(text), "text/plain; version=0.0.4");
}

}  // namespace hr::server

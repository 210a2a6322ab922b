// The HTTP front of headroom: OpenAI-compatible routes over HttpTransport (Boost.Beast), auth, typed errors, SSE
// streaming, disconnect -> cancel, health/readiness, Prometheus metrics and graceful shutdown.
// Handlers never throw; every error is an OpenAI error object.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/fatal_hooks.h"
#include "core/status.h"
#include "runtime/engine.h"
#include "server/http_transport.h"
#include "server/in_flight.h"
#include "server/openai_types.h"
#include "server/prometheus.h"
#include "server/startup_status.h"
#include "server/structured_output.h"
#include "tokenizer/tokenizer.h"

namespace hr {
class LabelScorer;
struct ClassifyBatchGauges;
}

namespace hr::server {

class AnswerAssembler;

// The classifier the server was started with (POST /v1/classify); its limits were planned at start-up.
struct ClassifierSetup {
    LabelScorer* scorer = nullptr;  // borrowed; outlives stop()
    int64_t max_labels = 0;
    int64_t max_label_tokens = 0;   // end-of-sequence token included
};

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                 // 0: any free port (start() returns it)
    std::string model_name;          // what /v1/models lists and requests must name
    std::string api_key;             // empty: no authentication
    size_t max_body_bytes = 2 * 1024 * 1024;
    int threads = 64;                // HTTP worker threads (each in-flight request holds one)
    int read_timeout_s = 10;         // deadline for one write to a client that stops reading
    double header_timeout_s = 10;    // a request header (or an idle keep-alive gap) must arrive within this
    double body_timeout_s = 30;      // a request body must arrive within this after its header
    int max_connections = 512;       // open connections (the oldest idle one is closed to admit a new one)
    std::vector<std::string> allowed_hosts;    // Host names accepted besides localhost and --host ("*": any)
    std::vector<std::string> allowed_origins;  // Origins accepted besides those of allowed hosts ("*": any)
    double stall_timeout_s = 0;      // > 0: the engine counts as dead when it makes no progress this long
};

// PlannedBytes (server/prometheus.h): the plan's regions for /metrics, per rank with tensor parallel.

enum class ServerState : uint8_t { loading, ready, draining, dead };
std::string_view server_state_name(ServerState s);

class ApiServer {
public:
    explicit ApiServer(ServerOptions opts);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // Binds and starts serving (state: loading). Returns the bound port. Also registers the server's
    // fatal hooks: on hr::fatal the server reports dead (503) and the fatal thread waits up to
    // kFatalGraceSeconds for handlers in flight to write their error before the process ends.
    Result<int> start();
    // The model is ready: serve with this engine and tokenizer (borrowed; they outlive stop()).
    // stop_token_ids end a generation (the tokenizer's or config's EOS); planned: the memory plan's
    // regions, shown in /metrics.
    // Also builds the token vocabulary for structured output (once); without it, structured requests
    // are refused with 500 and the reason is logged.
    void attach(Engine& engine, const Tokenizer& tok, std::vector<int32_t> stop_token_ids, PlannedBytes planned,
                ClassifierSetup classifier = {});
    // --offload-experts: shown in /metrics (call before attach()). streamed: bytes copied over the host
    // link so far (Backend::host_stream_bytes), callable from any thread.
    void set_offload(int64_t experts, std::function<uint64_t()> streamed) {
        offloaded_experts_ = experts;
        host_stream_bytes_ = std::move(streamed);
    }
    // --offload-compute: the start-up choice and its rates, shown in /metrics (call before attach()).
    void set_offload_compute(OffloadComputeInfo info) { offload_compute_ = std::move(info); }
    // Loading failed or the engine died: /health and /ping report 503.
    void mark_dead();
    // Graceful shutdown: refuse new work and report not ready at once, let requests in flight finish
    // for up to grace_s, end the rest with an explicit error, then close the listener.
    void shutdown(double grace_s);
    // Closes the listener now.
    void stop();
    ServerState state() const;
    // True when the engine is attached but has made no progress for stall_timeout_s.
    bool engine_stalled() const;
    int port() const { return port_; }
    // Start-up phase and weight progress, shown by /health until attach() (startup_status.h).
    StartupStatus& startup() { return startup_; }

private:
    struct Counters;
    void install_routes();
    // Authentication in front of a route's handler (every route but /health and /ping).
    http::Handler authed(http::Handler h);
    // generate_route.cpp
    void handle_generate(const http::Request& req, http::Response& res, Endpoint ep);
    void answer_whole(AnswerAssembler& answer, http::Response& res);
    void answer_stream(std::shared_ptr<AnswerAssembler> answer, http::Response& res, InFlight in_flight);
    // classify_route.cpp
    void handle_classify(const http::Request& req, http::Response& res);
    // routes.cpp
    void handle_metrics(http::Response& res);
    void handle_models(http::Response& res);
    void count(const std::string& outcome);
    void send_error(http::Response& res, const ApiError& e, const std::string& outcome);
    // send_error whose response is released only once written: active_ counts the response until the
    // transport has sent it, which is what the fatal grace period waits for.
    void send_error_tracked(http::Response& res, const ApiError& e, const std::string& outcome);

    ServerOptions opts_;
    StartupStatus startup_;
    std::unique_ptr<http::HttpTransport> http_;
    int port_ = 0;

    std::atomic<Engine*> engine_{nullptr};
    std::atomic<const Tokenizer*> tok_{nullptr};
    std::vector<int32_t> stop_ids_;  // written before engine_ is published
    PlannedBytes planned_;           // written before engine_ is published
    int64_t offloaded_experts_ = 0;  // written before engine_ is published
    std::function<uint64_t()> host_stream_bytes_;  // written before engine_ is published
    OffloadComputeInfo offload_compute_;           // written before engine_ is published
    ClassifierSetup classifier_;     // written before engine_ is published
    std::shared_ptr<const TokenVocab> vocab_;  // written before engine_ is published; null: unavailable
    std::string vocab_error_;
    ConstraintCache constraints_;
    std::atomic<bool> draining_{false};
    std::atomic<bool> dead_{false};
    std::atomic<int64_t> active_{0};  // generation handlers (including streams) in progress
    // Documents of /v1/classify requests held by their handler (waiting) or started (running): /metrics.
    std::shared_ptr<ClassifyBatchGauges> classify_docs_;
    std::atomic<uint64_t> next_id_{1};

    std::mutex counters_mu_;
    std::map<std::string, uint64_t> outcomes_;  // requests by outcome

    FatalHookHandle fatal_notify_, fatal_drain_;  // removed first in ~ApiServer
};

// How long a fatal error (hr::fatal) waits for handlers in flight to deliver their error before the
// process ends; a supervisor restarts it.
inline constexpr double kFatalGraceSeconds = 2.0;

}  // namespace hr::server

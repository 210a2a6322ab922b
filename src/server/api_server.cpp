// ApiServer: lifecycle (start, attach, drain, shutdown), state, and the error and outcome counting the
// routes share (see api_server.h). The routes are in routes.cpp, generate_route.cpp, classify_route.cpp.
#include "server/api_server.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "classify/classify_batch.h"
#include "core/log.h"
#include "server/api_errors.h"
#include "structured/tokenizer_vocab.h"

namespace hr::server {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kPoll = 50ms;  // how often shutdown checks for requests still in flight

}  // namespace

std::string_view server_state_name(ServerState s) {
    switch (s) {
        case ServerState::loading: return "loading";
        case ServerState::ready: return "ready";
        case ServerState::draining: return "draining";
        case ServerState::dead: return "dead";
    }
    return "?";
}

ApiServer::ApiServer(ServerOptions opts)
    : opts_(std::move(opts)), classify_docs_(std::make_shared<ClassifyBatchGauges>()) {
    http::TransportOptions t;
    t.host = opts_.host;
    t.port = opts_.port;
    t.max_body_bytes = opts_.max_body_bytes;
    t.workers = std::max(4, opts_.threads);
    t.max_waiting = t.workers;
    t.header_timeout_s = opts_.header_timeout_s;
    t.body_timeout_s = opts_.body_timeout_s;
    t.write_timeout_s = opts_.read_timeout_s;
    t.max_connections = opts_.max_connections;
    t.policy = http::make_host_policy(opts_.host, opts_.allowed_hosts, opts_.allowed_origins);
    http_ = std::make_unique<http::HttpTransport>(std::move(t));
}

ApiServer::~ApiServer() {
    // First: a hook must not run on a half-destroyed server (reset waits while hooks run elsewhere).
    fatal_drain_.reset();
    fatal_notify_.reset();
    stop();
}

bool ApiServer::engine_stalled() const {
    Engine* e = engine_.load(std::memory_order_acquire);
    return e && opts_.stall_timeout_s > 0 && e->health() == EngineHealth::ready &&
           e->seconds_since_progress() > opts_.stall_timeout_s;
}

ServerState ApiServer::state() const {
    Engine* e = engine_.load(std::memory_order_acquire);
    if (dead_.load() || (e && e->health() == EngineHealth::dead) || engine_stalled()) return ServerState::dead;
    if (draining_.load()) return ServerState::draining;
    if (!e) return ServerState::loading;
    return e->health() == EngineHealth::ready ? ServerState::ready : ServerState::draining;
}

void ApiServer::count(const std::string& outcome) {
    std::lock_guard lock(counters_mu_);
    ++outcomes_[outcome];
}

void ApiServer::send_error(http::Response& res, const ApiError& e, const std::string& outcome) {
    res.status = e.status;
    if (e.retry_after_s > 0) {
        res.set_header("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(e.retry_after_s))));
    }
    res.set_content(dump_json(error_body(e)), "application/json");
    count(outcome);
}

void ApiServer::send_error_tracked(http::Response& res, const ApiError& e, const std::string& outcome) {
    res.status = e.status;
    if (e.retry_after_s > 0) {
        res.set_header("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(e.retry_after_s))));
    }
    auto held = std::make_shared<InFlight>(active_);
    res.set_content(dump_json(error_body(e)), "application/json", [held](bool) { held->release(); });
    count(outcome);
}

Result<int> ApiServer::start() {
    install_routes();
    HR_ASSIGN(const int port, http_->start());
    port_ = port;
    // note: the hooks run on the thread that called hr::fatal (often the engine loop inside a step), so
    // they only read and store atomics. Handlers notice the fatal themselves (their stream's next()
    // returns the engine_dead event within one poll) and write the error; the drain hook only waits
    // for active_ (bounded), so a handler that never finishes costs the grace period, never a hang.
    fatal_notify_ = add_fatal_hook(FatalStage::notify, [this] { dead_.store(true); });
    fatal_drain_ = add_fatal_hook(FatalStage::drain, [this] {
        const auto t0 = Clock::now();
        const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kFatalGraceSeconds));
        const long long before = static_cast<long long>(active_.load());
        while (active_.load() > 0 && Clock::now() < end) std::this_thread::sleep_for(5ms);
        std::fprintf(stderr,
                     "headroom: fatal: %lld HTTP requests were in flight; %lld still were after %.3f s (grace %.1f s)\n",
                     before, static_cast<long long>(active_.load()),
                     std::chrono::duration<double>(Clock::now() - t0).count(), kFatalGraceSeconds);
    });
    return port;
}

void ApiServer::attach(Engine& engine, const Tokenizer& tok, std::vector<int32_t> stop_token_ids,
                       PlannedBytes planned, ClassifierSetup classifier) {
    stop_ids_ = std::move(stop_token_ids);
    planned_ = std::move(planned);
    classifier_ = classifier;
    // Structured output: the vocabulary covers the ids both the tokenizer and the head know; the first
    // stop token (the tokenizer's EOS) is the one that ends a complete answer.
    if (stop_ids_.empty()) {
        vocab_error_ = "the model has no end-of-sequence token";
    } else {
        const auto t0 = Clock::now();
        Result<TokenVocab> v =
            build_token_vocab(tok, std::min<int64_t>(engine.vocab_size(), tok.vocab_size()), stop_ids_[0]);
        if (v.ok()) {
            vocab_ = std::make_shared<const TokenVocab>(std::move(*v));
            log_info("structured output: token vocabulary of {} ids built in {:.1f} ms", vocab_->size(),
                     std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        } else {
            vocab_error_ = v.error().message;
            log_warn("structured output is unavailable: {}", vocab_error_);
        }
    }
    tok_.store(&tok, std::memory_order_release);
    engine_.store(&engine, std::memory_order_release);
}

void ApiServer::mark_dead() { dead_ = true; }

void ApiServer::stop() {
    if (http_) http_->stop();
}

void ApiServer::shutdown(double grace_s) {
    draining_ = true;
    Engine* e = engine_.load(std::memory_order_acquire);
    if (e) {
        e->begin_drain();
        const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(grace_s));
        while (e->n_in_flight() > 0 && Clock::now() < end) std::this_thread::sleep_for(kPoll);
        const int64_t left = e->n_in_flight();
        if (left > 0) log_warn("shutdown: grace period of {:.1f} s over; ending {} requests", grace_s, left);
        e->stop(FinishReason::shutdown, "the server is shutting down and ended this request");
    }
    // Let handlers write the final events or errors before the listener closes (bounded).
    for (int i = 0; i < 100 && active_.load() > 0; ++i) std::this_thread::sleep_for(kPoll);
    stop();
}

}  // namespace hr::server

// ApiServer: routes, auth, validation -> engine -> JSON or SSE (see api_server.h).
#include "server/api_server.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "classify/classify.h"
#include "core/log.h"
#include "server/connection.h"
#include "server/json_body.h"
#include "server/prometheus.h"
#include "server/stop.h"

namespace hr::server {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kPoll = 50ms;  // how often a waiting handler checks its client and the engine

bool constant_time_equal(const std::string& a, const std::string& b) {
    // note: the loop length depends only on the expected key's length, never on where they differ.
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (size_t i = 0; i < b.size(); ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        diff |= x ^ static_cast<unsigned char>(b[i]);
    }
    return diff == 0;
}

ApiError api_error(int status, std::string type, std::string message, std::string code = "") {
    ApiError e;
    e.status = status;
    e.type = std::move(type);
    e.message = std::move(message);
    e.code = std::move(code);
    return e;
}

std::string finish_to_openai(FinishReason r) { return r == FinishReason::length ? "length" : "stop"; }

// The error a request that ended abnormally reports (non-streaming: as the response).
ApiError ended_error(FinishReason r, const std::string& detail) {
    switch (r) {
        case FinishReason::timeout: return api_error(504, "timeout_error", detail, "deadline_expired");
        case FinishReason::shutdown: return api_error(503, "server_error", detail, "shutdown");
        case FinishReason::cancelled: return api_error(499, "cancelled", "the request was cancelled", "cancelled");
        default: return api_error(500, "server_error", detail.empty() ? "generation failed" : detail, "generation_failed");
    }
}

// The request field a classifier error is about, for "param" (classify.cpp's messages start with it).
std::string classify_param(const std::string& msg) {
    static const std::pair<const char*, const char*> kPrefixes[] = {
        {"document", "document"}, {"the document", "document"}, {"the prompt", "document"},
        {"labels", "labels"},     {"label ", "labels"},         {"instructions", "instructions"},
        {"method", "method"}};
    for (const auto& [prefix, field] : kPrefixes) {
        if (msg.rfind(prefix, 0) == 0) return field;
    }
    return "";
}

// A fatal error (hr::fatal) stopped the engine; the process ends within kFatalGraceSeconds.
ApiError engine_dead_error() { return api_error(503, "server_error", std::string(kEngineFatalMessage), "engine_dead"); }

ApiError ended_error(const StreamEvent& ev) {
    return ev.engine_dead ? engine_dead_error() : ended_error(ev.reason, ev.error);
}

std::string sse(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace

std::string_view server_state_name(ServerState s) {
    switch (s) {
        case ServerState::loading: return "loading";
        case ServerState::ready: return "ok";
        case ServerState::draining: return "draining";
        case ServerState::dead: return "dead";
    }
    return "?";
}

ApiServer::ApiServer(ServerOptions opts) : opts_(std::move(opts)) {
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
    active_.fetch_add(1);
    res.set_content(dump_json(error_body(e)), "application/json", [this](bool) { active_.fetch_sub(1); });
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
        res.set_content(dump_json(json{{"status", server_state_name(st)}}), "application/json");
    }, true);
    s.route("GET", "/ping", [this](const http::Request&, http::Response& res) {
        // The serverless load-balancer convention: 204 while initialising, 200 ready, 503 unhealthy.
        const ServerState st = state();
        res.status = st == ServerState::ready ? 200 : st == ServerState::loading ? 204 : 503;
        if (res.status != 204) res.set_content(dump_json(json{{"status", server_state_name(st)}}), "application/json");
    }, true);
    s.route("GET", "/metrics", authed([this](const http::Request&, http::Response& res) { handle_metrics(res); }), true);
    s.route("GET", "/v1/models", authed([this](const http::Request&, http::Response& res) {
        Engine* e = engine_.load(std::memory_order_acquire);
        json m = {{"id", opts_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "headroom"}};
        if (e) m["max_model_len"] = e->config().context;
        res.set_content(dump_json(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
    }), true);
    s.route("POST", "/v1/classify",
            authed([this](const http::Request& req, http::Response& res) { handle_classify(req, res); }));
    s.route("POST", "/v1/completions", authed([this](const http::Request& req, http::Response& res) {
        handle_generate(req, res, Endpoint::completions);
    }));
    s.route("POST", "/v1/chat/completions", authed([this](const http::Request& req, http::Response& res) {
        handle_generate(req, res, Endpoint::chat);
    }));
}

void ApiServer::handle_metrics(http::Response& res) {
    MetricsInput in;
    in.state = state();
    in.engine = engine_.load(std::memory_order_acquire);
    in.planned_bytes = in.engine ? &planned_ : nullptr;
    {
        std::lock_guard lock(counters_mu_);
        in.outcomes = outcomes_;
    }
    std::string text = render_metrics(in);
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

// Everything one generation shares between the handler and its stream provider.
struct GenerationState {
    Engine* engine = nullptr;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<StreamDecoder> decoder;
    std::unique_ptr<StopMatcher> stop;
    std::unique_ptr<ConnectionWatch> watch;
    Endpoint ep = Endpoint::completions;
    std::string id, model;
    int64_t created = 0;
    int64_t prompt_tokens = 0;
    int64_t received = 0;  // token events consumed
    bool include_usage = false;
    bool sent_role = false;
    bool done = false;     // the final event was handled
};

namespace {

// The 503 for a request that arrives while the server is loading, draining or dead.
ApiError not_serving_error(ServerState st) {
    ApiError e = api_error(503, "server_error",
                           st == ServerState::loading ? "the model is loading" : "the server is not serving",
                           std::string(server_state_name(st)));
    if (st == ServerState::loading) e.retry_after_s = 5;
    return e;
}

}  // namespace

void ApiServer::handle_generate(const http::Request& req, http::Response& res, Endpoint ep) {
    active_.fetch_add(1);
    bool streaming_started = false;
    try {
        const ServerState st = state();
        if (st != ServerState::ready) {
            const ApiError e = not_serving_error(st);
            send_error(res, e, "unavailable");
            active_.fetch_sub(1);
            return;
        }
        Engine& engine = *engine_.load(std::memory_order_acquire);
        const Tokenizer& tok = *tok_.load(std::memory_order_acquire);
        const int64_t context = engine.config().context;

        Result<json> body = parse_json_body(req.body);
        if (!body.ok()) {
            send_error(res, bad_request(body.error().message), "invalid");
            active_.fetch_sub(1);
            return;
        }
        auto parsed = parse_request(*body, ep, context);
        if (auto* e = std::get_if<ApiError>(&parsed)) {
            send_error(res, *e, "invalid");
            active_.fetch_sub(1);
            return;
        }
        ApiRequest& r = std::get<ApiRequest>(parsed);
        if (r.model != opts_.model_name) {
            ApiError e = api_error(404, "invalid_request_error",
                                   "the requested model is not served here; GET /v1/models lists it", "model_not_found");
            e.param = "model";
            send_error(res, e, "model_not_found");
            active_.fetch_sub(1);
            return;
        }
        if (req.has_header("X-Request-Timeout")) {
            auto t = parse_timeout_header(req.get_header_value("X-Request-Timeout"));
            if (!t) {
                send_error(res, bad_request("the X-Request-Timeout header must be a number of seconds in (0, 86400]"),
                           "invalid");
                active_.fetch_sub(1);
                return;
            }
            if (!r.timeout_s) r.timeout_s = t;
        }

        // Prompt ids (tokenizing here keeps the engine loop free of request-sized CPU work).
        std::vector<int32_t> ids;
        const int64_t vocab = std::min<int64_t>(engine.vocab_size(), tok.vocab_size());
        if (ep == Endpoint::chat) {
            if (tok.chat_template().empty()) {
                send_error(res, bad_request("this model has no chat template; use /v1/completions"), "invalid");
                active_.fetch_sub(1);
                return;
            }
            Result<std::string> text = tok.apply_chat_template(r.messages, true);
            if (!text.ok()) {
                send_error(res, bad_request("the chat template refused these messages: " + text.error().message, "messages"),
                           "invalid");
                active_.fetch_sub(1);
                return;
            }
            Result<std::vector<int32_t>> enc = tok.encode(*text, false);
            if (!enc.ok()) {
                send_error(res, bad_request("the rendered chat could not be tokenized", "messages"), "invalid");
                active_.fetch_sub(1);
                return;
            }
            ids = std::move(*enc);
        } else if (r.prompt_text) {
            Result<std::vector<int32_t>> enc = tok.encode(*r.prompt_text, true);
            if (!enc.ok()) {
                send_error(res, bad_request("the prompt could not be tokenized", "prompt"), "invalid");
                active_.fetch_sub(1);
                return;
            }
            ids = std::move(*enc);
        } else {
            ids = std::move(*r.prompt_ids);
            for (size_t i = 0; i < ids.size(); ++i) {
                if (ids[i] >= vocab) {
                    send_error(res,
                               bad_request(fmt::format("'prompt' token id at index {} is outside the vocabulary [0, {})",
                                                       i, vocab),
                                           "prompt"),
                               "invalid");
                    active_.fetch_sub(1);
                    return;
                }
            }
        }
        const int64_t n_prompt = static_cast<int64_t>(ids.size());
        if (n_prompt == 0) {
            send_error(res, bad_request("the prompt is empty after tokenization", ep == Endpoint::chat ? "messages" : "prompt"),
                       "invalid");
            active_.fetch_sub(1);
            return;
        }
        int64_t max_tokens = r.max_tokens.value_or(ep == Endpoint::chat ? std::max<int64_t>(1, context - n_prompt) : 16);
        if (n_prompt + max_tokens > context) {
            ApiError e = bad_request(fmt::format("this model's context is {} tokens; the request needs {} ({} in the "
                                                 "prompt + {} max_tokens)",
                                                 context, n_prompt + max_tokens, n_prompt, max_tokens),
                                     r.max_tokens ? "max_tokens" : (ep == Endpoint::chat ? "messages" : "prompt"));
            e.code = "context_length_exceeded";
            send_error(res, e, "invalid");
            active_.fetch_sub(1);
            return;
        }

        std::shared_ptr<ConstraintProcessor> constraint;
        if (r.constraint != OutputConstraint::none) {
            if (!vocab_) {
                send_error(res, api_error(500, "server_error", "structured output is unavailable: " + vocab_error_,
                                          "structured_output_unavailable"),
                           "internal_error");
                active_.fetch_sub(1);
                return;
            }
            // The schema again with the client's key order, so that properties come out in that order.
            std::optional<nlohmann::ordered_json> ordered;
            if (r.constraint == OutputConstraint::json_schema) {
                nlohmann::ordered_json o = nlohmann::ordered_json::parse(req.body, nullptr, false);
                if (!o.is_discarded() && o.is_object() && o.contains("response_format")) {
                    ordered = o["response_format"]["json_schema"]["schema"];
                }
            }
            auto c = constraints_.get(r, ordered ? &*ordered : nullptr);
            if (!c.ok()) {
                const bool choice = r.constraint == OutputConstraint::choice;
                send_error(res,
                           bad_request((choice ? "'choice' cannot be used: " : "the JSON schema cannot be used: ") +
                                           c.error().message,
                                       choice ? "choice" : "response_format"),
                           "invalid");
                active_.fetch_sub(1);
                return;
            }
            constraint = std::make_shared<ConstraintProcessor>(*c, vocab_);
        }

        GenerationRequest g;
        g.logits_processor = constraint;
        g.prompt = std::move(ids);
        g.max_tokens = max_tokens;
        g.sampling = r.sampling;
        if (!r.ignore_eos) g.stop_token_ids = stop_ids_;
        if (r.timeout_s) {
            g.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
        }
        SubmitResult sub = engine.submit(std::move(g));
        if (auto* se = std::get_if<SubmitError>(&sub)) {
            ApiError e;
            std::string outcome;
            switch (se->kind) {
                case SubmitErrorKind::invalid:
                    e = bad_request(se->message);
                    outcome = "invalid";
                    break;
                case SubmitErrorKind::queue_full:
                    e = api_error(429, "rate_limit_error", se->message, "queue_full");
                    e.retry_after_s = std::max(1.0, se->retry_after_s);
                    outcome = "queue_full";
                    break;
                case SubmitErrorKind::deadline:
                    e = api_error(504, "timeout_error", se->message, "deadline_cannot_be_met");
                    outcome = "timeout";
                    break;
                case SubmitErrorKind::unavailable:
                    e = api_error(503, "server_error", se->message, "unavailable");
                    outcome = "unavailable";
                    break;
            }
            send_error(res, e, outcome);
            active_.fetch_sub(1);
            return;
        }

        auto gs = std::make_shared<GenerationState>();
        gs->engine = &engine;
        gs->stream = std::get<std::shared_ptr<RequestStream>>(sub);
        gs->decoder = std::make_unique<StreamDecoder>(tok, /*skip_special=*/true);
        gs->stop = std::make_unique<StopMatcher>(r.stop);
        gs->watch = std::make_unique<ConnectionWatch>(req.fd);
        gs->ep = ep;
        gs->id = fmt::format("{}-{:x}{:06x}", ep == Endpoint::chat ? "chatcmpl" : "cmpl", gs->stream->id(),
                             next_id_.fetch_add(1) & 0xffffff);
        gs->model = opts_.model_name;
        gs->created = static_cast<int64_t>(std::time(nullptr));
        gs->prompt_tokens = n_prompt;
        gs->include_usage = r.include_usage;

        if (!r.stream) {
            std::string text;
            std::string finish;
            std::optional<ApiError> failure;
            FinishReason failed_reason = FinishReason::error;
            bool engine_dead = false;
            int64_t completion_tokens = 0;
            while (true) {
                auto ev = gs->stream->next(kPoll);
                // note: checked on every event too: tokens may arrive faster than the poll interval.
                if (gs->watch->peer_closed()) {
                    engine.cancel(*gs->stream);
                    count("client_disconnected");
                    active_.fetch_sub(1);
                    return;
                }
                if (!ev) continue;
                if (ev->kind == StreamEvent::Kind::token) {
                    ++gs->received;
                    text += gs->stop->push(gs->decoder->push(ev->token));
                    if (gs->stop->stopped()) {
                        engine.cancel(*gs->stream);
                        finish = "stop";
                        completion_tokens = gs->received;
                        break;
                    }
                    continue;
                }
                if (ev->reason == FinishReason::stop || ev->reason == FinishReason::length) {
                    text += gs->stop->push(gs->decoder->finish());
                    text += gs->stop->flush();
                    finish = finish_to_openai(ev->reason);
                    completion_tokens = gs->stream->stats().generated_tokens;
                } else {
                    failure = ended_error(*ev);
                    failed_reason = ev->reason;
                    engine_dead = ev->engine_dead;
                }
                break;
            }
            if (failure) {
                send_error_tracked(res, *failure, engine_dead ? "engine_dead" : std::string(finish_reason_name(failed_reason)));
            } else {
                Usage u{n_prompt, completion_tokens};
                json out = ep == Endpoint::chat ? chat_response(gs->id, gs->created, gs->model, text, finish, u)
                                                : completion_response(gs->id, gs->created, gs->model, text, finish, u);
                res.set_content(dump_json(out), "application/json");
                count(finish);
            }
            active_.fetch_sub(1);
            return;
        }

        // Streaming: the provider runs after this handler returns, on the same connection thread.
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, gs](size_t, http::DataSink& sink) -> bool {
                auto emit = [&](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
                auto text_chunk = [&](const std::string& t, const std::string& fin, std::optional<Usage> u) {
                    if (gs->ep == Endpoint::chat) {
                        return chat_chunk(gs->id, gs->created, gs->model, t, fin, u, false);
                    }
                    return completion_chunk(gs->id, gs->created, gs->model, t, fin, u);
                };
                if (gs->ep == Endpoint::chat && !gs->sent_role) {
                    gs->sent_role = true;
                    if (!emit(sse(chat_chunk(gs->id, gs->created, gs->model, "", "", std::nullopt, true)))) {
                        gs->engine->cancel(*gs->stream);
                        count("client_disconnected");
                        gs->done = true;
                        return false;
                    }
                }
                auto ev = gs->stream->next(kPoll);
                if (gs->watch->peer_closed()) {
                    gs->engine->cancel(*gs->stream);
                    count("client_disconnected");
                    gs->done = true;
                    return false;
                }
                if (!ev) return true;
                std::string fin;
                std::string piece;
                std::optional<ApiError> failure;
                int64_t completion_tokens = 0;
                if (ev->kind == StreamEvent::Kind::token) {
                    ++gs->received;
                    piece = gs->stop->push(gs->decoder->push(ev->token));
                    if (gs->stop->stopped()) {
                        gs->engine->cancel(*gs->stream);
                        fin = "stop";
                        completion_tokens = gs->received;
                    }
                } else if (ev->reason == FinishReason::stop || ev->reason == FinishReason::length) {
                    piece = gs->stop->push(gs->decoder->finish());
                    piece += gs->stop->flush();
                    fin = finish_to_openai(ev->reason);
                    completion_tokens = gs->stream->stats().generated_tokens;
                } else {
                    failure = ended_error(*ev);
                }
                if (fin.empty() && !failure) {
                    if (!piece.empty() && !emit(sse(text_chunk(piece, "", std::nullopt)))) {
                        gs->engine->cancel(*gs->stream);
                        count("client_disconnected");
                        gs->done = true;
                        return false;
                    }
                    return true;
                }
                gs->done = true;
                if (failure) {
                    // Mid-stream failures are an error event (the status line is already sent).
                    emit(sse(error_body(*failure)));
                    count(ev->engine_dead ? "engine_dead" : std::string(finish_reason_name(ev->reason)));
                } else {
                    Usage u{gs->prompt_tokens, completion_tokens};
                    if (!piece.empty()) emit(sse(text_chunk(piece, "", std::nullopt)));
                    emit(sse(text_chunk("", fin, u)));
                    if (gs->include_usage) emit(sse(usage_chunk(gs->ep, gs->id, gs->created, gs->model, u)));
                    count(fin);
                }
                emit("data: [DONE]\n\n");
                sink.done();
                return true;
            },
            [this, gs](bool) {
                if (!gs->done) {
                    gs->engine->cancel(*gs->stream);
                    count("client_disconnected");
                }
                active_.fetch_sub(1);
            });
        streaming_started = true;
    } catch (const std::exception&) {
        if (!streaming_started) {
            send_error(res, api_error(500, "server_error", "internal error", "internal_error"), "internal_error");
            active_.fetch_sub(1);
        }
    }
}

// What a classify handler shares with its job on the engine loop (the handler may return first).
struct ClassifyJob {
    ClassifyPrompt prompt;
    std::optional<Clock::time_point> deadline;
    std::atomic<bool> abandoned{false};  // the client went away or the deadline passed while queued
    bool expired = false;                // set by the job: it did not run
    std::optional<Result<LabelScores>> scores;
};

void ApiServer::handle_classify(const http::Request& req, http::Response& res) {
    const auto t0 = Clock::now();
    active_.fetch_add(1);
    struct Leave {
        std::atomic<int64_t>& n;
        ~Leave() { n.fetch_sub(1); }
    } leave{active_};
    auto fail = [&](const ApiError& e, const std::string& outcome) {
        res.status = e.status;
        if (e.retry_after_s > 0) {
            res.set_header("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(e.retry_after_s))));
        }
        res.set_content(dump_json(error_body(e)), "application/json");
        count("classify_" + outcome);
    };
    try {
        const ServerState st = state();
        if (st != ServerState::ready) {
            const ApiError e = not_serving_error(st);
            return fail(e, "unavailable");
        }
        Engine& engine = *engine_.load(std::memory_order_acquire);
        const Tokenizer& tok = *tok_.load(std::memory_order_acquire);
        const int64_t context = engine.config().context;
        Result<json> body = parse_json_body(req.body);
        if (!body.ok()) return fail(bad_request(body.error().message), "invalid");
        auto parsed = parse_classify_request(*body);
        if (auto* e = std::get_if<ApiError>(&parsed)) return fail(*e, "invalid");
        ClassifyApiRequest& r = std::get<ClassifyApiRequest>(parsed);
        if (r.model != opts_.model_name) {
            ApiError e = api_error(404, "invalid_request_error",
                                   "the requested model is not served here; GET /v1/models lists it", "model_not_found");
            e.param = "model";
            return fail(e, "model_not_found");
        }
        if (req.has_header("X-Request-Timeout")) {
            auto t = parse_timeout_header(req.get_header_value("X-Request-Timeout"));
            if (!t) return fail(bad_request("the X-Request-Timeout header must be a number of seconds in (0, 86400]"), "invalid");
            if (!r.timeout_s) r.timeout_s = t;
        }
        if (!classifier_.scorer) {
            return fail(api_error(503, "server_error", "classification is not available on this server", "unavailable"),
                        "unavailable");
        }
        if (static_cast<int64_t>(r.labels.size()) > classifier_.max_labels) {
            return fail(bad_request(fmt::format("'labels' holds {} labels; this server was started for at most {}",
                                                r.labels.size(), classifier_.max_labels),
                                    "labels"),
                        "invalid");
        }
        ClassifyRequest cr;
        cr.document = std::move(r.document);
        cr.labels = r.labels;
        cr.instructions = r.instructions;
        cr.truncate = r.truncate;
        cr.label_descriptions = r.label_descriptions;
        for (auto& [text, label] : r.examples) cr.examples.push_back({std::move(text), std::move(label)});
        if (r.calibrate) cr.calibrate = *r.calibrate;
        if (r.length_normalize) cr.length_normalize = *r.length_normalize;
        if (r.method) {
            ClassifyMethod m{};
            if (!parse_method(*r.method, m))
                return fail(bad_request(fmt::format("'method' is '{}': expected labels, embedding or combined", *r.method),
                                        "method"),
                            "invalid");
            cr.method = m;
        }
        if (Status v = validate_classify_request(cr); !v.ok()) {
            return fail(bad_request(v.error().message, classify_param(v.error().message)), "invalid");
        }
        auto job = std::make_shared<ClassifyJob>();
        {
            // Tokenizing here keeps the engine loop free of request-sized CPU work.
            Result<ClassifyPrompt> p = build_classify_prompt(tok, cr, context);
            if (!p.ok()) return fail(bad_request(p.error().message, classify_param(p.error().message)), "invalid");
            job->prompt = std::move(*p);
        }
        for (size_t i = 0; i < job->prompt.label_ids.size(); ++i) {
            const auto n = static_cast<int64_t>(job->prompt.label_ids[i].size());
            if (n > classifier_.max_label_tokens) {
                return fail(bad_request(fmt::format("'labels[{}]' is {} tokens (end token included); this server was "
                                                    "started for at most {}",
                                                    i, n, classifier_.max_label_tokens),
                                        "labels"),
                            "invalid");
            }
        }
        if (r.timeout_s) {
            job->deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
        }
        LabelScorer* scorer = classifier_.scorer;
        auto submitted = engine.run_exclusive([job, scorer] {
            if (job->abandoned.load() || (job->deadline && Clock::now() >= *job->deadline)) {
                job->expired = true;
                return;
            }
            job->scores = score_classify_prompt(*scorer, job->prompt);
        });
        if (auto* se = std::get_if<SubmitError>(&submitted)) {
            return fail(api_error(503, "server_error", se->message, "unavailable"), "unavailable");
        }
        std::future<void>& fut = std::get<std::future<void>>(submitted);
        ConnectionWatch watch(req.fd);
        while (fut.wait_for(kPoll) != std::future_status::ready) {
            if (fatal_in_progress()) {
                // The job will never run (or never finish): tell the client before the process ends.
                send_error_tracked(res, engine_dead_error(), "classify_engine_dead");
                return;
            }
            if (watch.peer_closed()) {
                job->abandoned = true;
                count("classify_client_disconnected");
                return;
            }
            if (job->deadline && Clock::now() >= *job->deadline) {
                job->abandoned = true;
                return fail(api_error(504, "timeout_error", "the request's deadline expired", "deadline_expired"),
                            "timeout");
            }
        }
        try {
            fut.get();
        } catch (const std::future_error&) {
            return fail(api_error(503, "server_error", "the engine stopped before this request ran", "shutdown"),
                        "shutdown");
        }
        if (job->expired || !job->scores) {
            return fail(api_error(504, "timeout_error", "the request's deadline expired", "deadline_expired"), "timeout");
        }
        if (!job->scores->ok()) {
            return fail(api_error(500, "server_error", "classification failed: " + job->scores->error().message,
                                  "classification_failed"),
                        "error");
        }
        const LabelScores& sc = **job->scores;
        const ClassifyPrompt& p = job->prompt;
        json probs = json::object();
        for (size_t i = 0; i < r.labels.size(); ++i) probs[r.labels[i]] = sc.prob[i];
        int64_t label_tokens = 0;
        for (const auto& l : p.label_ids) label_tokens += static_cast<int64_t>(l.size());
        if (p.method == ClassifyMethod::embedding) label_tokens = 0;  // no label is scored
        const int64_t n_prompt = classify_prompt_tokens(p);
        json out = {{"object", "classification"},
                    {"model", opts_.model_name},
                    {"label", r.labels[sc.best]},
                    {"probabilities", std::move(probs)},
                    {"usage", {{"prompt_tokens", n_prompt}, {"total_tokens", n_prompt + label_tokens}}},
                    {"timings", {{"total_ms", std::chrono::duration<double, std::milli>(Clock::now() - t0).count()}}},
                    {"truncated", p.truncated}};
        if (p.truncated) {
            out["document_tokens"] = p.document_tokens;
            out["document_tokens_kept"] = p.document_tokens_kept;
        }
        if (r.return_tokens) {
            out["prompt_ids"] = p.prompt;
            out["label_ids"] = p.label_ids;
            out["logprobs"] = sc.logprob;
            if (!sc.prior.empty()) out["calibration_prior"] = sc.prior;
            if (!sc.similarity.empty()) out["similarity"] = sc.similarity;
        }
        res.set_content(dump_json(out), "application/json");
        count("classify_ok");
    } catch (const std::exception&) {
        fail(api_error(500, "server_error", "internal error", "internal_error"), "internal_error");
    }
}

}  // namespace hr::server

// POST /v1/classify (docs/classify.md): the request's labels and options validated once, then each
// document through classify_document(), the one per-document call: `document` answers with its result,
// `documents` with one result or error object per document, in order.
#include <chrono>
#include <cmath>
#include <future>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "classify/classify.h"
#include "core/fatal_hooks.h"
#include "server/api_errors.h"
#include "server/api_server.h"
#include "server/connection.h"
#include "server/in_flight.h"
#include "server/json_body.h"

namespace hr::server {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kPoll = 50ms;  // how often a waiting handler checks its client and the engine

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

// What a classify handler shares with its job on the engine loop (the handler may return first).
struct ClassifyJob {
    ClassifyPrompt prompt;
    std::optional<Clock::time_point> deadline;
    std::atomic<bool> abandoned{false};  // the client went away or the deadline passed
    // Set with abandoned: ends the engine's score requests of this job within one step.
    std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
    std::optional<Result<LabelScores>> scores;  // set by the worker before it signals; none: not scored
};

// Everything one document's classification needs besides the document (borrowed for the call).
struct ClassifyCall {
    Engine& engine;
    const Tokenizer& tok;
    const ClassifierSetup& classifier;
    const ClassifyRequest& shared;  // labels and options; its document is unused
    const std::vector<std::string>& labels;
    const std::string& model_name;
    bool return_tokens = false;
    std::optional<Clock::time_point> deadline;
    int fd = -1;  // the client's socket, watched while the job waits
    Clock::time_point started;  // what the answer's timings.total_ms counts from
};

// How one document went.
struct DocumentOutcome {
    enum class Kind : uint8_t {
        ok,            // result holds the classification object
        failed,        // error (counted as "classify_" + outcome)
        engine_dead,   // the process is ending: the error must be written before it does
        client_gone,   // nobody to answer
    };
    Kind kind = Kind::ok;
    json result;
    ApiError error;
    std::string outcome;
    // failed: the error is about this document only (the others of a `documents` request may succeed).
    bool document_only = false;
};

DocumentOutcome failed(ApiError e, std::string outcome, bool document_only = false) {
    DocumentOutcome o;
    o.kind = DocumentOutcome::Kind::failed;
    o.error = std::move(e);
    o.outcome = std::move(outcome);
    o.document_only = document_only;
    return o;
}

// An invalid-document error is this document's own; other 400s are about the shared labels or options.
DocumentOutcome invalid(const std::string& message) {
    const std::string param = classify_param(message);
    return failed(bad_request(message, param), "invalid", param == "document");
}

// The one per-document call: validate, tokenize, score through the engine's scheduler (score groups,
// batched with generation; docs/classify.md), shape the answer.
DocumentOutcome classify_document(const ClassifyCall& c, std::string document) {
    ClassifyRequest cr = c.shared;
    cr.document = std::move(document);
    if (Status v = validate_classify_request(cr); !v.ok()) return invalid(v.error().message);
    auto job = std::make_shared<ClassifyJob>();
    {
        // Tokenizing here keeps the engine loop free of request-sized CPU work.
        Result<ClassifyPrompt> p = build_classify_prompt(c.tok, cr, c.engine.config().context);
        if (!p.ok()) return invalid(p.error().message);
        job->prompt = std::move(*p);
    }
    for (size_t i = 0; i < job->prompt.label_ids.size(); ++i) {
        const auto n = static_cast<int64_t>(job->prompt.label_ids[i].size());
        if (n > c.classifier.max_label_tokens) {
            return failed(bad_request(fmt::format("'labels[{}]' is {} tokens (end token included); this server was "
                                                  "started for at most {}",
                                                  i, n, c.classifier.max_label_tokens),
                                      "labels"),
                          "invalid");
        }
    }
    job->deadline = c.deadline;
    if (c.engine.health() != EngineHealth::ready) {
        return failed(api_error(503, "server_error",
                                c.engine.health() == EngineHealth::dead ? "the engine failed and is not serving"
                                                                        : "the server is shutting down",
                                "unavailable"),
                      "unavailable");
    }
    // A worker thread waits for the scores so this one can watch the connection and the deadline. It may
    // outlive the request (the hold keeps the scorer alive); an abandoned job's groups are cancelled.
    std::promise<void> done;
    std::future<void> fut = done.get_future();
    std::thread([job, hold = LabelScorer::Hold(*c.classifier.scorer), done = std::move(done)]() mutable {
        // A request whose deadline passed (or whose client left) before its scoring starts is not scored
        // (no scores: the caller answers 504).
        if (!job->abandoned.load() && !(job->deadline && Clock::now() >= *job->deadline)) {
            LabelScorer mine(hold.scorer(), job->cancel);  // the shared memo; cancelled with the request
            job->scores = score_classify_prompt(mine, job->prompt);
        }
        done.set_value();
    }).detach();
    ConnectionWatch watch(c.fd);
    const ApiError expired = api_error(504, "timeout_error", "the request's deadline expired", "deadline_expired");
    while (fut.wait_for(kPoll) != std::future_status::ready) {
        if (fatal_in_progress()) {
            // The job will never run (or never finish): tell the client before the process ends.
            DocumentOutcome o;
            o.kind = DocumentOutcome::Kind::engine_dead;
            o.error = engine_dead_error();
            o.outcome = "engine_dead";
            return o;
        }
        if (watch.peer_closed()) {
            job->abandoned = true;
            job->cancel->store(true);
            DocumentOutcome o;
            o.kind = DocumentOutcome::Kind::client_gone;
            o.outcome = "client_disconnected";
            return o;
        }
        if (job->deadline && Clock::now() >= *job->deadline) {
            job->abandoned = true;
            job->cancel->store(true);
            return failed(expired, "timeout");
        }
    }
    try {
        fut.get();
    } catch (const std::future_error&) {
        return failed(api_error(503, "server_error", "the engine stopped before this request ran", "shutdown"),
                      "shutdown");
    }
    if (!job->scores) return failed(expired, "timeout");
    if (!job->scores->ok() && c.engine.health() != EngineHealth::ready) {
        return failed(api_error(503, "server_error", "the engine stopped before this request ran", "shutdown"),
                      "shutdown");
    }
    if (!job->scores->ok()) {
        return failed(api_error(500, "server_error", "classification failed: " + job->scores->error().message,
                                "classification_failed"),
                      "error", /*document_only=*/true);
    }
    const LabelScores& sc = **job->scores;
    const ClassifyPrompt& p = job->prompt;
    json probs = json::object();
    for (size_t i = 0; i < c.labels.size(); ++i) probs[c.labels[i]] = sc.prob[i];
    int64_t label_tokens = 0;
    for (const auto& l : p.label_ids) label_tokens += static_cast<int64_t>(l.size());
    if (p.method == ClassifyMethod::embedding) label_tokens = 0;  // no label is scored
    const int64_t n_prompt = classify_prompt_tokens(p);
    DocumentOutcome o;
    o.outcome = "ok";
    json& out = o.result;
    out = {{"object", "classification"},
           {"model", c.model_name},
           {"label", c.labels[sc.best]},
           {"probabilities", std::move(probs)},
           {"usage", {{"prompt_tokens", n_prompt}, {"total_tokens", n_prompt + label_tokens}}},
           {"timings", {{"total_ms", std::chrono::duration<double, std::milli>(Clock::now() - c.started).count()}}},
           {"truncated", p.truncated}};
    if (p.truncated) {
        out["document_tokens"] = p.document_tokens;
        out["document_tokens_kept"] = p.document_tokens_kept;
    }
    if (c.return_tokens) {
        out["prompt_ids"] = p.prompt;
        out["label_ids"] = p.label_ids;
        out["logprobs"] = sc.logprob;
        if (!sc.prior.empty()) out["calibration_prior"] = sc.prior;
        if (!sc.similarity.empty()) out["similarity"] = sc.similarity;
    }
    return o;
}

}  // namespace

void ApiServer::handle_classify(const http::Request& req, http::Response& res) {
    const auto t0 = Clock::now();
    InFlight in_flight(active_);
    auto fail = [&](const ApiError& e, const std::string& outcome) {
        res.status = e.status;
        if (e.retry_after_s > 0) {
            res.set_header("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(e.retry_after_s))));
        }
        res.set_content(dump_json(error_body(e)), "application/json");
        count("classify_" + outcome);
    };
    // A document's outcome that ends the whole request (everything but a success or its own error).
    auto end_request = [&](const DocumentOutcome& o) {
        if (o.kind == DocumentOutcome::Kind::engine_dead) return send_error_tracked(res, o.error, "classify_engine_dead");
        if (o.kind == DocumentOutcome::Kind::client_gone) return count("classify_" + o.outcome);
        fail(o.error, o.outcome);
    };
    try {
        const ServerState st = state();
        if (st != ServerState::ready) return fail(not_serving_error(st), "unavailable");
        Engine& engine = *engine_.load(std::memory_order_acquire);
        const Tokenizer& tok = *tok_.load(std::memory_order_acquire);
        Result<json> body = parse_json_body(req.body);
        if (!body.ok()) return fail(bad_request(body.error().message), "invalid");
        auto parsed = parse_classify_request(*body);
        if (auto* e = std::get_if<ApiError>(&parsed)) return fail(*e, "invalid");
        ClassifyApiRequest& r = std::get<ClassifyApiRequest>(parsed);
        if (r.model != opts_.model_name) return fail(model_not_found_error(), "model_not_found");
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
        ClassifyRequest shared;
        shared.labels = r.labels;
        shared.instructions = r.instructions;
        shared.truncate = r.truncate;
        shared.label_descriptions = r.label_descriptions;
        for (auto& [text, label] : r.examples) shared.examples.push_back({std::move(text), std::move(label)});
        if (r.calibrate) shared.calibrate = *r.calibrate;
        if (r.length_normalize) shared.length_normalize = *r.length_normalize;
        if (r.method) {
            ClassifyMethod m{};
            if (!parse_method(*r.method, m))
                return fail(bad_request(fmt::format("'method' is '{}': expected labels, embedding or combined", *r.method),
                                        "method"),
                            "invalid");
            shared.method = m;
        }
        ClassifyCall call{.engine = engine,
                          .tok = tok,
                          .classifier = classifier_,
                          .shared = shared,
                          .labels = r.labels,
                          .model_name = opts_.model_name,
                          .return_tokens = r.return_tokens,
                          .deadline = std::nullopt,
                          .fd = req.fd,
                          .started = t0};
        if (r.timeout_s) {
            call.deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
        }

        if (r.documents.empty()) {
            DocumentOutcome o = classify_document(call, std::move(r.document));
            if (o.kind != DocumentOutcome::Kind::ok) return end_request(o);
            res.set_content(dump_json(o.result), "application/json");
            return count("classify_ok");
        }

        // `documents`: the shared labels and options are checked once, so that their errors fail the
        // request (they would fail every document) while each document's own errors stay in its slot.
        ClassifyRequest probe = shared;
        probe.document = "x";
        if (Status v = validate_classify_request(probe); !v.ok()) {
            return fail(bad_request(v.error().message, classify_param(v.error().message)), "invalid");
        }
        json data = json::array();
        int64_t prompt_tokens = 0, total_tokens = 0;
        for (size_t i = 0; i < r.documents.size(); ++i) {
            const std::string where = fmt::format("documents[{}]", i);
            call.started = Clock::now();
            DocumentOutcome o =
                is_classifiable(r.documents[i])
                    ? classify_document(call, std::move(r.documents[i]))
                    : failed(bad_request(fmt::format("'{}' is empty or only whitespace (expected the text to classify)", where)),
                             "invalid", /*document_only=*/true);
            if (o.kind == DocumentOutcome::Kind::ok) {
                prompt_tokens += o.result["usage"]["prompt_tokens"].get<int64_t>();
                total_tokens += o.result["usage"]["total_tokens"].get<int64_t>();
                o.result["index"] = i;
                data.push_back(std::move(o.result));
                count("classify_ok");
                continue;
            }
            if (o.kind != DocumentOutcome::Kind::failed || !o.document_only) return end_request(o);
            o.error.param = where;
            json item = error_body(o.error);
            item["index"] = i;
            data.push_back(std::move(item));
            count("classify_" + o.outcome);
        }
        json out = {{"object", "list"},
                    {"model", opts_.model_name},
                    {"data", std::move(data)},
                    {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", total_tokens}}},
                    {"timings", {{"total_ms", std::chrono::duration<double, std::milli>(Clock::now() - t0).count()}}}};
        res.set_content(dump_json(out), "application/json");
    } catch (const std::exception&) {
        fail(api_error(500, "server_error", "internal error", "internal_error"), "internal_error");
    }
}

}  // namespace hr::server

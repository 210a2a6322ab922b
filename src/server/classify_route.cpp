// POST /v1/classify (docs/classify.md): the request's labels and options validated once, then its
// documents (one for `document`) side by side through a ClassifyBatch on the engine's scheduler:
// `document` answers with its result, `documents` with one result or error object per document, in order.
#include <chrono>
#include <cmath>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "classify/classify_batch.h"
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

// The classification object of one scored document (what a `document` request answers, and each
// successful entry of a `documents` answer).
json classification_json(const BatchDocumentResult& b, const std::vector<std::string>& labels,
                         const std::string& model_name, bool return_tokens, double total_ms) {
    const LabelScores& sc = b.scores;
    const ClassifyPrompt& p = b.prompt;
    json probs = json::object();
    for (size_t i = 0; i < labels.size(); ++i) probs[labels[i]] = sc.prob[i];
    int64_t label_tokens = 0;
    for (const auto& l : p.label_ids) label_tokens += static_cast<int64_t>(l.size());
    if (p.method == ClassifyMethod::embedding) label_tokens = 0;  // no label is scored
    const int64_t n_prompt = classify_prompt_tokens(p);
    json out = {{"object", "classification"},
                {"model", model_name},
                {"label", labels[sc.best]},
                {"probabilities", std::move(probs)},
                {"usage", {{"prompt_tokens", n_prompt}, {"total_tokens", n_prompt + label_tokens}}},
                {"timings", {{"total_ms", total_ms}}},
                {"truncated", p.truncated}};
    if (p.truncated) {
        out["document_tokens"] = p.document_tokens;
        out["document_tokens_kept"] = p.document_tokens_kept;
    }
    if (return_tokens) {
        out["prompt_ids"] = p.prompt;
        out["label_ids"] = p.label_ids;
        out["logprobs"] = sc.logprob;
        if (!sc.prior.empty()) out["calibration_prior"] = sc.prior;
        if (!sc.similarity.empty()) out["similarity"] = sc.similarity;
    }
    return out;
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
        // The labels and options are checked once, before any document: their errors fail the request
        // (they would fail every document) while each document's own errors stay its own.
        ClassifyRequest probe = shared;
        probe.document = "x";
        if (Status v = validate_classify_request(probe); !v.ok()) {
            return fail(bad_request(v.error().message, classify_param(v.error().message)), "invalid");
        }
        if (Result<ClassifyPrompt> p = build_classify_prompt(tok, probe, engine.config().context); p.ok()) {
            for (size_t i = 0; i < p->label_ids.size(); ++i) {
                const auto n = static_cast<int64_t>(p->label_ids[i].size());
                if (n > classifier_.max_label_tokens) {
                    return fail(bad_request(fmt::format("'labels[{}]' is {} tokens (end token included); this server "
                                                        "was started for at most {}",
                                                        i, n, classifier_.max_label_tokens),
                                            "labels"),
                                "invalid");
                }
            }
        }
        if (engine.health() != EngineHealth::ready) {
            return fail(api_error(503, "server_error",
                                  engine.health() == EngineHealth::dead ? "the engine failed and is not serving"
                                                                        : "the server is shutting down",
                                  "unavailable"),
                        "unavailable");
        }
        std::optional<Clock::time_point> deadline;
        if (r.timeout_s) {
            deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
        }
        const ApiError expired = api_error(504, "timeout_error", "the request's deadline expired", "deadline_expired");
        // A request whose deadline passed before its scoring starts is not scored.
        if (deadline && Clock::now() >= *deadline) return fail(expired, "timeout");

        // Every document (one for `document`) goes through one ClassifyBatch: side by side on the
        // scheduler, started in order while it admits them, at most max_seqs at once (docs/classify.md).
        const bool many = !r.documents.empty();
        std::vector<std::string> texts;
        if (many) texts = std::move(r.documents);
        else texts.push_back(std::move(r.document));
        ClassifyBatch batch(*classifier_.scorer, tok, shared,
                            {.context = engine.config().context,
                             .max_in_flight = engine.config().limits.max_seqs,
                             .gauges = classify_docs_});
        std::vector<std::optional<size_t>> slot(texts.size());  // none: not classifiable (empty)
        for (size_t i = 0; i < texts.size(); ++i) {
            if (!many || is_classifiable(texts[i])) slot[i] = batch.add(std::move(texts[i]));
        }
        ConnectionWatch watch(req.fd);
        json data = json::array();
        int64_t prompt_tokens = 0, total_tokens = 0;
        for (size_t i = 0; i < texts.size(); ++i) {
            const std::string where = many ? fmt::format("documents[{}]", i) : "document";
            // A document's own error: the request's answer for `document`, its entry for `documents`.
            auto own_error = [&](ApiError e, const std::string& outcome) {
                if (!many) return fail(e, outcome);
                e.param = where;
                json item = error_body(e);
                item["index"] = i;
                data.push_back(std::move(item));
                count("classify_" + outcome);
            };
            if (!slot[i]) {
                own_error(bad_request(fmt::format("'{}' is empty or only whitespace (expected the text to classify)", where)),
                          "invalid");
                continue;
            }
            while (!batch.wait(*slot[i], kPoll)) {
                // What ends the request as a whole; the batch's destructor cancels its documents, whose
                // engine requests end within one step and free their blocks.
                if (fatal_in_progress()) return send_error_tracked(res, engine_dead_error(), "classify_engine_dead");
                if (watch.peer_closed()) return count("classify_client_disconnected");
                if (deadline && Clock::now() >= *deadline) return fail(expired, "timeout");
            }
            BatchDocumentResult b = batch.take(*slot[i]);
            if (b.kind == BatchDocumentResult::Kind::invalid) {
                const std::string param = classify_param(b.error);
                own_error(bad_request(b.error, many ? where : param), "invalid");
                if (!many) return;
                continue;
            }
            if (b.kind != BatchDocumentResult::Kind::ok) {
                if (engine.health() != EngineHealth::ready || b.kind == BatchDocumentResult::Kind::cancelled) {
                    return fail(api_error(503, "server_error", "the engine stopped before this request ran", "shutdown"),
                                "shutdown");
                }
                own_error(api_error(500, "server_error", "classification failed: " + b.error, "classification_failed"),
                          "error");
                if (!many) return;
                continue;
            }
            const double ms = many ? b.seconds * 1e3 : std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            json out = classification_json(b, r.labels, opts_.model_name, r.return_tokens, ms);
            count("classify_ok");
            if (!many) return res.set_content(dump_json(out), "application/json");
            prompt_tokens += out["usage"]["prompt_tokens"].get<int64_t>();
            total_tokens += out["usage"]["total_tokens"].get<int64_t>();
            out["index"] = i;
            data.push_back(std::move(out));
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

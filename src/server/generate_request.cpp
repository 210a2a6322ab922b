// prepare_generation (see generate_request.h).
#include "server/generate_request.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "server/json_body.h"
#include "server/structured_output.h"

namespace hr::server {

namespace {

Refusal invalid(ApiError e) { return {std::move(e), "invalid"}; }

// The prompt's token ids; tokenizing here keeps the engine loop free of request-sized CPU work.
std::variant<std::vector<int32_t>, Refusal> prompt_ids(ApiRequest& r, Endpoint ep, const GenerateSetup& s) {
    const Tokenizer& tok = s.tok;
    if (ep == Endpoint::chat) {
        if (tok.chat_template().empty()) return invalid(bad_request("this model has no chat template; use /v1/completions"));
        Result<std::string> text = tok.apply_chat_template(r.messages, true);
        if (!text.ok()) {
            return invalid(bad_request("the chat template refused these messages: " + text.error().message, "messages"));
        }
        Result<std::vector<int32_t>> enc = tok.encode(*text, false);
        if (!enc.ok()) return invalid(bad_request("the rendered chat could not be tokenized", "messages"));
        return std::move(*enc);
    }
    if (r.prompt_text) {
        Result<std::vector<int32_t>> enc = tok.encode(*r.prompt_text, true);
        if (!enc.ok()) return invalid(bad_request("the prompt could not be tokenized", "prompt"));
        return std::move(*enc);
    }
    std::vector<int32_t> ids = std::move(*r.prompt_ids);
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] >= s.vocab) {
            return invalid(bad_request(
                fmt::format("'prompt' token id at index {} is outside the vocabulary [0, {})", i, s.vocab), "prompt"));
        }
    }
    return ids;
}

// The request's output constraint as a logits processor (null when it has none).
std::variant<std::shared_ptr<LogitsProcessor>, Refusal> constraint_processor(const ApiRequest& r,
                                                                             const nlohmann::ordered_json& body,
                                                                             const GenerateSetup& s) {
    if (r.constraint == OutputConstraint::none) return std::shared_ptr<LogitsProcessor>();
    if (!s.token_vocab) {
        return Refusal{api_error(500, "server_error", "structured output is unavailable: " + s.vocab_error,
                                 "structured_output_unavailable"),
                       "internal_error"};
    }
    // The schema with the client's key order (the body was parsed keeping it), so that properties come
    // out in that order; parse_request has already checked the path exists.
    const nlohmann::ordered_json* ordered = nullptr;
    if (r.constraint == OutputConstraint::json_schema) ordered = &body.at("response_format").at("json_schema").at("schema");
    auto c = s.constraints.get(constraint_spec(r, ordered));
    if (!c.ok()) {
        const bool choice = r.constraint == OutputConstraint::choice;
        return invalid(bad_request(
            (choice ? "'choice' cannot be used: " : "the JSON schema cannot be used: ") + c.error().message,
            choice ? "choice" : "response_format"));
    }
    return std::shared_ptr<LogitsProcessor>(std::make_shared<ConstraintProcessor>(*c, s.token_vocab));
}

}  // namespace

std::variant<PreparedGeneration, Refusal> prepare_generation(const http::Request& req, Endpoint ep,
                                                              const GenerateSetup& s) {
    // Parsed once, keeping the client's key order (a JSON schema's property order is part of its meaning
    // to the client); the validators read the same values through a plain json copy.
    Result<nlohmann::ordered_json> ordered = parse_json_body_ordered(req.body);
    if (!ordered.ok()) return invalid(bad_request(ordered.error().message));
    auto parsed = parse_request(nlohmann::json(*ordered), ep, s.context);
    if (auto* e = std::get_if<ApiError>(&parsed)) return invalid(*e);
    ApiRequest& r = std::get<ApiRequest>(parsed);
    if (r.model != s.model_name) return Refusal{model_not_found_error(), "model_not_found"};
    if (req.has_header("X-Request-Timeout")) {
        auto t = parse_timeout_header(req.get_header_value("X-Request-Timeout"));
        if (!t) return invalid(bad_request("the X-Request-Timeout header must be a number of seconds in (0, 86400]"));
        if (!r.timeout_s) r.timeout_s = t;
    }

    auto ids = prompt_ids(r, ep, s);
    if (auto* refused = std::get_if<Refusal>(&ids)) return std::move(*refused);
    PreparedGeneration p;
    GenerationRequest& g = p.request;
    g.prompt = std::move(std::get<std::vector<int32_t>>(ids));
    p.prompt_tokens = static_cast<int64_t>(g.prompt.size());
    const int64_t n_prompt = p.prompt_tokens;
    if (n_prompt == 0) {
        return invalid(bad_request("the prompt is empty after tokenization", ep == Endpoint::chat ? "messages" : "prompt"));
    }
    const int64_t context = s.context;
    const int64_t max_tokens =
        r.max_tokens.value_or(ep == Endpoint::chat ? std::max<int64_t>(1, context - n_prompt) : 16);
    if (n_prompt + max_tokens > context) {
        ApiError e = bad_request(fmt::format("this model's context is {} tokens; the request needs {} ({} in the "
                                             "prompt + {} max_tokens)",
                                             context, n_prompt + max_tokens, n_prompt, max_tokens),
                                 r.max_tokens ? "max_tokens" : (ep == Endpoint::chat ? "messages" : "prompt"));
        e.code = "context_length_exceeded";
        return invalid(std::move(e));
    }

    auto processor = constraint_processor(r, *ordered, s);
    if (auto* refused = std::get_if<Refusal>(&processor)) return std::move(*refused);
    g.logits_processor = std::get<std::shared_ptr<LogitsProcessor>>(processor);
    g.max_tokens = max_tokens;
    g.sampling = r.sampling;
    if (!r.ignore_eos) g.stop_token_ids = s.stop_ids;
    if (r.timeout_s) {
        g.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
    }
    p.stop = std::move(r.stop);
    p.stream = r.stream;
    p.include_usage = r.include_usage;
    return p;
}

}  // namespace hr::server

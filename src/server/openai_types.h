// OpenAI-compatible request parsing and validation (completions and chat), the error object, and
// the response and stream-chunk objects. Pure: no engine, no sockets; every failure is an ApiError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"

namespace hr::server {

// OpenAI's error object: {"error": {"message", "type", "param", "code"}}. Messages are fixed text plus
// numbers and field names; they never quote request content or internal paths.
struct ApiError {
    int status = 400;
    std::string type = "invalid_request_error";
    std::string message;
    std::string param;  // the offending field; empty -> null
    std::string code;   // machine-readable; empty -> null
    double retry_after_s = 0;  // > 0: send Retry-After
};
nlohmann::json error_body(const ApiError& e);
ApiError bad_request(std::string message, std::string param = "");

enum class Endpoint { completions, chat };

constexpr size_t kMaxStopSequences = 4;
constexpr size_t kMaxStopBytes = 256;
constexpr double kMaxTimeoutSeconds = 24 * 3600;

// Structured output: what the answer must be (docs/structured-output.md).
enum class OutputConstraint : uint8_t { none, json_object, json_schema, choice };
constexpr size_t kMaxChoiceCount = 10000;

struct ApiRequest {
    Endpoint endpoint = Endpoint::completions;
    std::string model;
    // completions: exactly one of these
    std::optional<std::string> prompt_text;
    std::optional<std::vector<int32_t>> prompt_ids;
    // chat: [{role, content}] with content flattened to a string
    nlohmann::json messages;
    std::optional<int64_t> max_tokens;  // nullopt: endpoint default
    SamplingParams sampling;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;
    bool ignore_eos = false;  // extension (as vLLM): generate max_tokens regardless of EOS (benchmarks)
    std::optional<double> timeout_s;
    OutputConstraint constraint = OutputConstraint::none;
    nlohmann::json schema;             // json_schema: response_format.json_schema.schema (an object)
    std::vector<std::string> choices;  // choice: non-empty, distinct
};

// Parses and validates a request body already parsed as JSON. `context` bounds max_tokens.
std::variant<ApiRequest, ApiError> parse_request(const nlohmann::json& body, Endpoint ep, int64_t context);
// POST /v1/classify (docs/classify.md): the document (or messages joined), labels and options.
// Label and document contents are checked later by the classifier (validate_classify_request).
constexpr size_t kMaxClassifyDocuments = 256;
struct ClassifyApiRequest {
    std::string model;
    std::string document;
    // `documents` instead of `document`: the same labels for each, one result (or error) per document.
    std::vector<std::string> documents;
    std::vector<std::string> labels;
    std::optional<std::string> instructions;
    bool truncate = false;
    bool return_tokens = false;  // debugging aid: add prompt_ids and label_ids to the answer
    std::optional<double> timeout_s;
    // Accuracy options (docs/classify.md); absent ones take the classifier's defaults.
    std::vector<std::string> label_descriptions;                 // one per label ("" = none), or empty
    std::vector<std::pair<std::string, std::string>> examples;  // few-shot (text, label)
    std::optional<bool> calibrate, length_normalize;
    std::optional<std::string> method;  // labels | embedding | combined (classify/embedding.h); checked by the route
};
std::variant<ClassifyApiRequest, ApiError> parse_classify_request(const nlohmann::json& body);
// False for a document that is empty or only whitespace (nothing to classify).
bool is_classifiable(const std::string& document);

// A timeout header value ("12.5" seconds); nullopt when malformed or out of range.
std::optional<double> parse_timeout_header(const std::string& value);

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
};
nlohmann::json usage_json(const Usage& u);

// Full (non-streaming) responses.
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::string& text, const std::string& finish_reason, const Usage& u);
nlohmann::json chat_response(const std::string& id, int64_t created, const std::string& model,
                             const std::string& text, const std::string& finish_reason, const Usage& u);

// Stream chunks. finish_reason empty -> null; usage attached when given.
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const std::string& text, const std::string& finish_reason,
                                const std::optional<Usage>& usage);
// role_chunk: the first chat chunk, delta {"role": "assistant", "content": ""}.
nlohmann::json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                          const std::string& finish_reason, const std::optional<Usage>& usage, bool role_chunk);
// The final usage-only chunk of stream_options.include_usage (choices: []).
nlohmann::json usage_chunk(Endpoint ep, const std::string& id, int64_t created, const std::string& model,
                           const Usage& u);

// JSON text that never throws on invalid UTF-8 (replaced with U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace hr::server

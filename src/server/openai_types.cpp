// OpenAI request validation and response objects (see openai_types.h).
#include "server/openai_types.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

namespace hr::server {

using nlohmann::json;

namespace {

// A field name is echoed only when it looks like an identifier (it is still request content).
std::string safe_field_name(const std::string& k) {
    if (k.empty() || k.size() > 64) return "";
    for (char c : k) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return "";
    }
    return k;
}

const std::set<std::string>& allowed_fields(Endpoint ep) {
    static const std::set<std::string> completions = {
        "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stream", "stream_options", "stop",
        "seed", "timeout", "user", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "echo",
        "suffix", "best_of", "ignore_eos", "response_format", "choice"};
    static const std::set<std::string> chat = {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "n", "stream",
        "stream_options", "stop", "seed", "timeout", "user", "presence_penalty", "frequency_penalty", "logit_bias",
        "logprobs", "top_logprobs", "response_format", "ignore_eos", "choice"};
    return ep == Endpoint::chat ? chat : completions;
}

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "an integer";
        case json::value_t::number_float: return "a number";
        default: return "an unsupported value";
    }
}

ApiError wrong_type(const std::string& field, const char* expected, const json& found) {
    return bad_request(fmt::format("'{}' must be {}, found {}", field, expected, type_name(found)), field);
}

// Integer field: JSON integers only (5.0 and "5" are refused, as vLLM does).
std::optional<ApiError> get_int(const json& j, const std::string& field, std::optional<int64_t>& out) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (it->is_number_unsigned()) {
        if (it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            return bad_request(fmt::format("'{}' is too large", field), field);
        }
        out = static_cast<int64_t>(it->get<uint64_t>());
        return std::nullopt;
    }
    if (!it->is_number_integer()) return wrong_type(field, "an integer", *it);
    out = it->get<int64_t>();
    return std::nullopt;
}

std::optional<ApiError> get_number(const json& j, const std::string& field, std::optional<double>& out) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_number()) return wrong_type(field, "a number", *it);
    double v = it->get<double>();
    if (!std::isfinite(v)) return bad_request(fmt::format("'{}' must be a finite number", field), field);
    out = v;
    return std::nullopt;
}

std::optional<ApiError> get_bool(const json& j, const std::string& field, bool& out) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) return wrong_type(field, "a boolean", *it);
    out = it->get<bool>();
    return std::nullopt;
}

// Fields we know but do not implement: accepted only at their neutral value.
std::optional<ApiError> check_neutral(const json& j) {
    for (const char* f : {"presence_penalty", "frequency_penalty"}) {
        std::optional<double> v;
        if (auto e = get_number(j, f, v)) return e;
        if (v && *v != 0.0) return bad_request(fmt::format("'{}' is not supported (only 0)", f), f);
    }
    if (auto it = j.find("logit_bias"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return wrong_type("logit_bias", "an object", *it);
        if (!it->empty()) return bad_request("'logit_bias' is not supported", "logit_bias");
    }
    if (auto it = j.find("logprobs"); it != j.end() && !it->is_null()) {
        const bool off = (it->is_boolean() && !it->get<bool>()) || (it->is_number_integer() && it->get<int64_t>() == 0);
        if (!off) return bad_request("'logprobs' is not supported", "logprobs");
    }
    if (auto it = j.find("top_logprobs"); it != j.end() && !it->is_null()) {
        if (!(it->is_number_integer() && it->get<int64_t>() == 0)) {
            return bad_request("'top_logprobs' is not supported", "top_logprobs");
        }
    }
    bool echo = false;
    if (auto e = get_bool(j, "echo", echo)) return e;
    if (echo) return bad_request("'echo' is not supported", "echo");
    if (auto it = j.find("suffix"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) return wrong_type("suffix", "a string", *it);
        if (!it->get<std::string>().empty()) return bad_request("'suffix' is not supported", "suffix");
    }
    for (const char* f : {"n", "best_of"}) {
        std::optional<int64_t> v;
        if (auto e = get_int(j, f, v)) return e;
        if (v && *v != 1) {
            return bad_request(fmt::format("'{}' must be 1: one completion per request is supported, found {}", f, *v),
                               f);
        }
    }
    if (auto it = j.find("user"); it != j.end() && !it->is_null() && !it->is_string()) {
        return wrong_type("user", "a string", *it);
    }
    return std::nullopt;
}

// response_format ({"type": "text" | "json_object" | "json_schema"}) and choice (an array of strings).
std::optional<ApiError> parse_constraint(const json& j, ApiRequest& r) {
    if (auto it = j.find("response_format"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return wrong_type("response_format", "an object", *it);
        auto t = it->find("type");
        if (t == it->end() || !t->is_string()) {
            return bad_request("'response_format.type' must be a string", "response_format.type");
        }
        const std::string& type = t->get_ref<const std::string&>();
        const std::set<std::string> keys = type == "json_schema" ? std::set<std::string>{"type", "json_schema"}
                                                                 : std::set<std::string>{"type"};
        for (const auto& [k, v] : it->items()) {
            (void)v;
            if (!keys.count(k)) {
                std::string safe = safe_field_name(k);
                return bad_request(safe.empty() ? "'response_format' holds an unsupported field"
                                                : fmt::format("'response_format.{}' is not supported", safe),
                                   "response_format");
            }
        }
        if (type == "json_object") {
            r.constraint = OutputConstraint::json_object;
        } else if (type == "json_schema") {
            auto js = it->find("json_schema");
            if (js == it->end() || !js->is_object()) {
                return bad_request("'response_format.json_schema' must be an object with a 'schema'",
                                   "response_format.json_schema");
            }
            for (const auto& [k, v] : js->items()) {
                if (k == "name" || k == "description") {
                    if (!v.is_string()) return wrong_type("response_format.json_schema." + k, "a string", v);
                } else if (k == "strict") {
                    if (!v.is_boolean() && !v.is_null()) {
                        return wrong_type("response_format.json_schema.strict", "a boolean", v);
                    }
                } else if (k != "schema") {
                    std::string safe = safe_field_name(k);
                    return bad_request(safe.empty() ? "'response_format.json_schema' holds an unsupported field"
                                                    : fmt::format("'response_format.json_schema.{}' is not supported", safe),
                                       "response_format.json_schema");
                }
            }
            auto schema = js->find("schema");
            if (schema == js->end() || !schema->is_object()) {
                return schema == js->end()
                           ? bad_request("'response_format.json_schema.schema' is required",
                                         "response_format.json_schema.schema")
                           : wrong_type("response_format.json_schema.schema", "an object", *schema);
            }
            r.constraint = OutputConstraint::json_schema;
            r.schema = *schema;
        } else if (type != "text") {
            return bad_request("'response_format.type' must be text, json_object or json_schema", "response_format.type");
        }
    }
    if (auto it = j.find("choice"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return wrong_type("choice", "an array of strings", *it);
        if (it->empty()) return bad_request("'choice' is empty", "choice");
        if (it->size() > kMaxChoiceCount) {
            return bad_request(fmt::format("'choice' holds {} strings; at most {} are allowed", it->size(), kMaxChoiceCount),
                               "choice");
        }
        if (r.constraint != OutputConstraint::none) {
            return bad_request("'choice' cannot be combined with a JSON 'response_format'", "choice");
        }
        std::set<std::string> seen;
        for (size_t i = 0; i < it->size(); ++i) {
            const json& c = (*it)[i];
            if (!c.is_string()) return wrong_type(fmt::format("choice[{}]", i), "a string", c);
            if (c.get_ref<const std::string&>().empty()) {
                return bad_request(fmt::format("'choice[{}]' is empty", i), "choice");
            }
            if (!seen.insert(c.get<std::string>()).second) {
                return bad_request(fmt::format("'choice[{}]' repeats an earlier choice", i), "choice");
            }
            r.choices.push_back(c.get<std::string>());
        }
        r.constraint = OutputConstraint::choice;
    }
    if (r.constraint != OutputConstraint::none) {
        // A stop string or ignore_eos could cut or extend an answer that must validate.
        if (j.contains("stop") && !j["stop"].is_null()) {
            return bad_request("'stop' cannot be combined with structured output (response_format or choice)", "stop");
        }
        if (j.contains("ignore_eos") && j["ignore_eos"].is_boolean() && j["ignore_eos"].get<bool>()) {
            return bad_request("'ignore_eos' cannot be combined with structured output (response_format or choice)",
                               "ignore_eos");
        }
    }
    return std::nullopt;
}

std::optional<ApiError> parse_prompt(const json& j, ApiRequest& r) {
    auto it = j.find("prompt");
    if (it == j.end() || it->is_null()) return bad_request("'prompt' is required", "prompt");
    const json* p = &*it;
    if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
    if (p->is_string()) {
        if (p->get_ref<const std::string&>().empty()) return bad_request("'prompt' is empty", "prompt");
        r.prompt_text = p->get<std::string>();
        return std::nullopt;
    }
    if (!p->is_array()) return wrong_type("prompt", "a string or an array of token ids", *p);
    if (p->empty()) return bad_request("'prompt' is empty", "prompt");
    std::vector<int32_t> ids;
    ids.reserve(p->size());
    for (const json& v : *p) {
        if (v.is_string() || v.is_array()) {
            return bad_request("'prompt' holds several prompts; one prompt per request is supported", "prompt");
        }
        if (!v.is_number_integer()) return bad_request("'prompt' token ids must be integers", "prompt");
        if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())
                                   : (v.get<int64_t>() < 0 || v.get<int64_t>() > std::numeric_limits<int32_t>::max())) {
            return bad_request("'prompt' holds a token id outside the vocabulary", "prompt");
        }
        ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    r.prompt_ids = std::move(ids);
    return std::nullopt;
}

std::optional<ApiError> parse_messages(const json& j, ApiRequest& r) {
    auto it = j.find("messages");
    if (it == j.end() || it->is_null()) return bad_request("'messages' is required", "messages");
    if (!it->is_array()) return wrong_type("messages", "an array", *it);
    if (it->empty()) return bad_request("'messages' is empty", "messages");
    json out = json::array();
    for (size_t i = 0; i < it->size(); ++i) {
        const json& m = (*it)[i];
        const std::string field = fmt::format("messages[{}]", i);
        if (!m.is_object()) return wrong_type(field, "an object", m);
        auto role = m.find("role");
        if (role == m.end() || !role->is_string()) {
            return bad_request(fmt::format("'{}.role' must be a string", field), field + ".role");
        }
        const std::string& rs = role->get_ref<const std::string&>();
        if (rs != "system" && rs != "user" && rs != "assistant") {
            return bad_request(fmt::format("'{}.role' must be system, user or assistant", field), field + ".role");
        }
        auto content = m.find("content");
        std::string text;
        if (content == m.end() || content->is_null()) {
            return bad_request(fmt::format("'{}.content' is required", field), field + ".content");
        } else if (content->is_string()) {
            text = content->get<std::string>();
        } else if (content->is_array()) {
            for (const json& part : *content) {
                auto ty = part.is_object() ? part.find("type") : part.end();
                auto tx = part.is_object() ? part.find("text") : part.end();
                if (!part.is_object() || ty == part.end() || !ty->is_string() || ty->get<std::string>() != "text" ||
                    tx == part.end() || !tx->is_string()) {
                    return bad_request(fmt::format("'{}.content' parts must be {{\"type\": \"text\", \"text\": ...}}", field),
                                       field + ".content");
                }
                text += tx->get<std::string>();
            }
        } else {
            return wrong_type(field + ".content", "a string or an array of text parts", *content);
        }
        for (const auto& [k, v] : m.items()) {
            if (k != "role" && k != "content" && k != "name") {
                std::string safe = safe_field_name(k);
                return bad_request(safe.empty() ? fmt::format("'{}' holds an unsupported field", field)
                                                : fmt::format("'{}.{}' is not supported", field, safe),
                                   safe.empty() ? field : field + "." + safe);
            }
            (void)v;
        }
        out.push_back({{"role", rs}, {"content", std::move(text)}});
    }
    r.messages = std::move(out);
    return std::nullopt;
}

std::optional<ApiError> parse_stop(const json& j, ApiRequest& r) {
    auto it = j.find("stop");
    if (it == j.end() || it->is_null()) return std::nullopt;
    std::vector<std::string> stops;
    if (it->is_string()) {
        stops.push_back(it->get<std::string>());
    } else if (it->is_array()) {
        for (const json& s : *it) {
            if (!s.is_string()) return bad_request("'stop' must be a string or an array of strings", "stop");
            stops.push_back(s.get<std::string>());
        }
    } else {
        return wrong_type("stop", "a string or an array of strings", *it);
    }
    if (stops.size() > kMaxStopSequences) {
        return bad_request(fmt::format("'stop' holds {} sequences; at most {} are allowed", stops.size(),
                                       kMaxStopSequences),
                           "stop");
    }
    for (const std::string& s : stops) {
        if (s.empty()) return bad_request("'stop' holds an empty string", "stop");
        if (s.size() > kMaxStopBytes) {
            return bad_request(fmt::format("a 'stop' sequence is {} bytes; at most {} are allowed", s.size(),
                                           kMaxStopBytes),
                               "stop");
        }
    }
    r.stop = std::move(stops);
    return std::nullopt;
}

}  // namespace

ApiError bad_request(std::string message, std::string param) {
    ApiError e;
    e.status = 400;
    e.message = std::move(message);
    e.param = std::move(param);
    return e;
}

namespace {

// Checks shared by every route's body: a JSON object holding only `allowed` fields (a field is named in
// the error only when it is safe to echo) and a string "model".
std::optional<ApiError> check_body(const json& j, const std::set<std::string>& allowed) {
    if (!j.is_object()) return bad_request(fmt::format("the request body must be a JSON object, found {}", type_name(j)));
    for (const auto& [k, v] : j.items()) {
        (void)v;
        if (!allowed.count(k)) {
            std::string safe = safe_field_name(k);
            return bad_request(safe.empty() ? "the request holds an unsupported field"
                                            : fmt::format("'{}' is not a supported field", safe),
                               safe);
        }
    }
    auto model = j.find("model");
    if (model == j.end() || model->is_null()) return bad_request("'model' is required", "model");
    if (!model->is_string()) return wrong_type("model", "a string", *model);
    return std::nullopt;
}

}  // namespace

json error_body(const ApiError& e) {
    json err = {{"message", e.message}, {"type", e.type}};
    err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
    err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
    return json{{"error", err}};
}

std::variant<ApiRequest, ApiError> parse_request(const json& j, Endpoint ep, int64_t context) {
    if (auto e = check_body(j, allowed_fields(ep))) return *e;
    ApiRequest r;
    r.endpoint = ep;
    r.model = j.at("model").get<std::string>();

    if (ep == Endpoint::completions) {
        if (auto e = parse_prompt(j, r)) return *e;
    } else {
        if (auto e = parse_messages(j, r)) return *e;
    }
    if (auto e = check_neutral(j)) return *e;
    if (auto e = parse_constraint(j, r)) return *e;

    // chat: max_completion_tokens is OpenAI's current name, max_tokens the deprecated one. Each given one
    // is validated; when both are given they must agree (a request that says two things is refused rather
    // than guessed at), and max_completion_tokens is the one used (docs/server.md).
    const auto token_limit = [&](const char* field, std::optional<int64_t>& v) -> std::optional<ApiError> {
        if (auto e = get_int(j, field, v)) return e;
        if (v && (*v < 1 || *v > context)) {
            return bad_request(fmt::format("'{}' must be in [1, {}] (the context), found {}", field, context, *v), field);
        }
        return std::nullopt;
    };
    std::optional<int64_t> max_tokens, max_completion_tokens;
    if (auto e = token_limit("max_tokens", max_tokens)) return *e;
    if (ep == Endpoint::chat) {
        if (auto e = token_limit("max_completion_tokens", max_completion_tokens)) return *e;
        if (max_tokens && max_completion_tokens && *max_tokens != *max_completion_tokens) {
            return bad_request(fmt::format("'max_tokens' ({}) and 'max_completion_tokens' ({}) disagree; send one of them "
                                           "(max_completion_tokens is the current name)",
                                           *max_tokens, *max_completion_tokens),
                               "max_completion_tokens");
        }
    }
    r.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;

    std::optional<double> temperature, top_p, timeout;
    if (auto e = get_number(j, "temperature", temperature)) return *e;
    // note: the sampler works in float, so a positive value below FLT_MIN (1.17549e-38) would become 0
    // or a denormal there (top_p 1e-300 -> 0 -> 500 generation_failed): refused here with the range.
    if (temperature && (*temperature < 0 || *temperature > 2 ||
                        (*temperature > 0 && *temperature < std::numeric_limits<float>::min()))) {
        return bad_request(fmt::format("'temperature' must be 0 (greedy) or in [{:g}, 2], found {}",
                                       std::numeric_limits<float>::min(), *temperature),
                           "temperature");
    }
    if (auto e = get_number(j, "top_p", top_p)) return *e;
    if (top_p && (*top_p < std::numeric_limits<float>::min() || *top_p > 1)) {
        return bad_request(fmt::format("'top_p' must be in [{:g}, 1] (greater than 0, a normal float), found {}",
                                       std::numeric_limits<float>::min(), *top_p),
                           "top_p");
    }
    std::optional<int64_t> top_k, seed;
    if (auto e = get_int(j, "top_k", top_k)) return *e;
    if (top_k && (*top_k < -1 || *top_k > std::numeric_limits<int32_t>::max())) {
        return bad_request(fmt::format("'top_k' must be -1 or 0 (no limit) or positive, found {}", *top_k), "top_k");
    }
    if (auto e = get_int(j, "seed", seed)) return *e;
    if (auto e = get_number(j, "timeout", timeout)) return *e;
    if (timeout && (*timeout <= 0 || *timeout > kMaxTimeoutSeconds)) {
        return bad_request(fmt::format("'timeout' must be in (0, {}] seconds", kMaxTimeoutSeconds), "timeout");
    }
    r.timeout_s = timeout;
    if (temperature) r.sampling.temperature = static_cast<float>(*temperature);
    if (top_p) r.sampling.top_p = static_cast<float>(*top_p);
    if (top_k) r.sampling.top_k = *top_k < 0 ? 0 : static_cast<int>(*top_k);
    if (seed) {
        r.sampling.seed = static_cast<uint64_t>(*seed);
        r.sampling.has_seed = true;
    }
    if (auto e = parse_stop(j, r)) return *e;
    if (auto e = get_bool(j, "stream", r.stream)) return *e;
    if (auto e = get_bool(j, "ignore_eos", r.ignore_eos)) return *e;
    if (auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return wrong_type("stream_options", "an object", *it);
        for (const auto& [k, v] : it->items()) {
            (void)v;
            if (k != "include_usage") return bad_request("'stream_options' supports only include_usage", "stream_options");
        }
        if (auto e = get_bool(*it, "include_usage", r.include_usage)) return *e;
        if (!r.stream) return bad_request("'stream_options' needs \"stream\": true", "stream_options");
    }
    return r;
}

bool is_classifiable(const std::string& document) {
    return document.find_first_not_of(" \t\r\n\f\v") != std::string::npos;
}

std::variant<ClassifyApiRequest, ApiError> parse_classify_request(const json& j) {
    static const std::set<std::string> allowed = {"model",    "document", "messages", "labels",       "instructions",
                                                  "truncate", "timeout",  "user",     "return_tokens", "calibrate",
                                                  "length_normalize", "label_descriptions", "examples", "documents",
                                                  "method"};
    if (auto e = check_body(j, allowed)) return *e;
    ClassifyApiRequest r;
    r.model = j.at("model").get<std::string>();
    auto doc = j.find("document");
    const bool has_doc = doc != j.end() && !doc->is_null();
    const bool has_msgs = j.contains("messages") && !j["messages"].is_null();
    auto docs = j.find("documents");
    const bool has_docs = docs != j.end() && !docs->is_null();
    if (has_docs) {
        if (has_doc || has_msgs) {
            return bad_request("exactly one of 'document', 'documents' and 'messages' is required", "documents");
        }
        if (!docs->is_array()) return wrong_type("documents", "an array of strings", *docs);
        if (docs->empty() || docs->size() > kMaxClassifyDocuments) {
            return bad_request(fmt::format("'documents' holds {} entries (expected 1 to {})", docs->size(),
                                           kMaxClassifyDocuments),
                               "documents");
        }
        for (size_t i = 0; i < docs->size(); ++i) {
            const json& d = (*docs)[i];
            if (!d.is_string()) return wrong_type(fmt::format("documents[{}]", i), "a string", d);
            // note: an empty entry is not refused here: it gets its own error in its slot of the answer.
            r.documents.push_back(d.get<std::string>());
        }
    } else if (has_doc == has_msgs) {
        return bad_request("exactly one of 'document' and 'messages' is required", "document");
    } else if (has_doc) {
        if (!doc->is_string()) return wrong_type("document", "a string", *doc);
        r.document = doc->get<std::string>();
    } else {
        ApiRequest tmp;
        if (auto e = parse_messages(j, tmp)) return *e;
        for (size_t i = 0; i < tmp.messages.size(); ++i) {
            if (i) r.document += "\n";
            r.document += tmp.messages[i]["content"].get<std::string>();
        }
    }
    if (!has_docs && !is_classifiable(r.document)) {
        const char* field = has_doc ? "document" : "messages";
        return bad_request(fmt::format("'{}' is empty or only whitespace (expected the text to classify)", field), field);
    }
    auto labels = j.find("labels");
    if (labels == j.end() || labels->is_null()) return bad_request("'labels' is required", "labels");
    if (!labels->is_array()) return wrong_type("labels", "an array of strings", *labels);
    for (size_t i = 0; i < labels->size(); ++i) {
        const json& l = (*labels)[i];
        if (!l.is_string()) return wrong_type(fmt::format("labels[{}]", i), "a string", l);
        r.labels.push_back(l.get<std::string>());
    }
    if (auto it = j.find("instructions"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) return wrong_type("instructions", "a string", *it);
        r.instructions = it->get<std::string>();
    }
    if (auto e = get_bool(j, "truncate", r.truncate)) return *e;
    if (auto e = get_bool(j, "return_tokens", r.return_tokens)) return *e;
    for (const char* name : {"calibrate", "length_normalize"}) {
        if (auto it = j.find(name); it != j.end() && !it->is_null()) {
            if (!it->is_boolean()) return wrong_type(name, "a boolean", *it);
            (std::string(name) == "calibrate" ? r.calibrate : r.length_normalize) = it->get<bool>();
        }
    }
    if (auto it = j.find("label_descriptions"); it != j.end() && !it->is_null()) {
        // {label: description}; labels without one get none.
        if (!it->is_object()) return wrong_type("label_descriptions", "an object {label: description}", *it);
        r.label_descriptions.assign(r.labels.size(), "");
        for (const auto& [k, v] : it->items()) {
            const auto pos = std::find(r.labels.begin(), r.labels.end(), k);
            if (pos == r.labels.end())
                return bad_request(fmt::format("'label_descriptions' names '{}', which is not one of 'labels'", k),
                                   "label_descriptions");
            if (!v.is_string()) return wrong_type(fmt::format("label_descriptions['{}']", k), "a string", v);
            r.label_descriptions[static_cast<size_t>(pos - r.labels.begin())] = v.get<std::string>();
        }
    }
    if (auto it = j.find("examples"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return wrong_type("examples", "an array of {\"text\", \"label\"} objects", *it);
        for (size_t i = 0; i < it->size(); ++i) {
            const json& ex = (*it)[i];
            if (!ex.is_object() || !ex.contains("text") || !ex["text"].is_string() || !ex.contains("label") ||
                !ex["label"].is_string())
                return wrong_type(fmt::format("examples[{}]", i), "an object {\"text\": string, \"label\": string}", ex);
            r.examples.emplace_back(ex["text"].get<std::string>(), ex["label"].get<std::string>());
        }
    }
    if (auto it = j.find("method"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) return wrong_type("method", "a string (labels, embedding or combined)", *it);
        r.method = it->get<std::string>();
    }
    std::optional<double> timeout;
    if (auto e = get_number(j, "timeout", timeout)) return *e;
    if (timeout && (*timeout <= 0 || *timeout > kMaxTimeoutSeconds)) {
        return bad_request(fmt::format("'timeout' must be in (0, {}] seconds", kMaxTimeoutSeconds), "timeout");
    }
    r.timeout_s = timeout;
    if (auto it = j.find("user"); it != j.end() && !it->is_null() && !it->is_string()) {
        return wrong_type("user", "a string", *it);
    }
    return r;
}

std::optional<double> parse_timeout_header(const std::string& value) {
    if (value.empty() || value.size() > 32) return std::nullopt;
    size_t used = 0;
    double v;
    try {
        v = std::stod(value, &used);
    } catch (...) {
        return std::nullopt;
    }
    if (used != value.size() || !std::isfinite(v) || v <= 0 || v > kMaxTimeoutSeconds) return std::nullopt;
    return v;
}

json usage_json(const Usage& u) {
    return {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

namespace {
json finish_json(const std::string& f) { return f.empty() ? json(nullptr) : json(f); }
}  // namespace

json completion_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                         const std::string& finish_reason, const Usage& u) {
    json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish_reason)}};
    return {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({choice})},
            {"usage", usage_json(u)}};
}

json chat_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                   const std::string& finish_reason, const Usage& u) {
    json choice = {{"index", 0},
                   {"message", {{"role", "assistant"}, {"content", text}}},
                   {"logprobs", nullptr},
                   {"finish_reason", finish_json(finish_reason)}};
    return {{"id", id},
            {"object", "chat.completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({choice})},
            {"usage", usage_json(u)}};
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                      const std::string& finish_reason, const std::optional<Usage>& usage) {
    json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish_reason)}};
    json j = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({choice})}};
    if (usage) j["usage"] = usage_json(*usage);
    return j;
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                const std::string& finish_reason, const std::optional<Usage>& usage, bool role_chunk) {
    json delta = json::object();
    if (role_chunk) {
        delta = {{"role", "assistant"}, {"content", ""}};
    } else if (!text.empty() || finish_reason.empty()) {
        delta = {{"content", text}};
    }
    json choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish_reason)}};
    json j = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", model},
              {"choices", json::array({choice})}};
    if (usage) j["usage"] = usage_json(*usage);
    return j;
}

json usage_chunk(Endpoint ep, const std::string& id, int64_t created, const std::string& model, const Usage& u) {
    return {{"id", id},
            {"object", ep == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array()},
            {"usage", usage_json(u)}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace hr::server

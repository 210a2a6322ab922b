// libFuzzer target over the server's request parsing without the network: the body checks and JSON
// parse (json_body), then OpenAI request validation for both endpoints and the classify request.
// Invariants: nothing throws or crashes; an accepted request has sampling values the sampler accepts
// (validate_sampling: a request that passes validation must not fail later as a 500), max_tokens in
// [1, context], at most kMaxStopSequences stop strings, and a classify document that is not blank.
#include <cstdint>
#include <string>
#include <variant>

#include "runtime/sampler.h"
#include "server/json_body.h"
#include "server/openai_types.h"

namespace {

void require(bool cond) {
    if (!cond) __builtin_trap();
}

constexpr int64_t kContext = 2048;

void check_request(const nlohmann::json& body, hr::server::Endpoint ep) {
    auto r = hr::server::parse_request(body, ep, kContext);
    if (auto* e = std::get_if<hr::server::ApiError>(&r)) {
        require(e->status >= 400 && e->status < 500 && !e->message.empty());
        return;
    }
    const auto& req = std::get<hr::server::ApiRequest>(r);
    require(hr::validate_sampling(req.sampling).ok());
    if (req.max_tokens) require(*req.max_tokens >= 1 && *req.max_tokens <= kContext);
    require(req.stop.size() <= hr::server::kMaxStopSequences);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto body = hr::server::parse_json_body(text);
    if (!body.ok()) {
        require(!body.error().message.empty());
        return 0;
    }
    check_request(*body, hr::server::Endpoint::completions);
    check_request(*body, hr::server::Endpoint::chat);
    auto c = hr::server::parse_classify_request(*body);
    if (auto* req = std::get_if<hr::server::ClassifyApiRequest>(&c)) {
        require(req->document.find_first_not_of(" \t\r\n\f\v") != std::string::npos);
        require(!req->labels.empty());
    }
    return 0;
}

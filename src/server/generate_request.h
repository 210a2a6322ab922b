// Request preparation for /v1/completions and /v1/chat/completions: the body parsed once, validated,
// tokenized and constrained into what Engine::submit takes, or the error that refuses it. No engine
// calls, no writes to the client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "runtime/request.h"
#include "server/api_errors.h"
#include "server/http_transport.h"
#include "server/openai_types.h"
#include "structured/constraint_cache.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

namespace hr::server {

// What preparation reads from the server (borrowed for the call).
struct GenerateSetup {
    const Tokenizer& tok;
    int64_t context = 0;     // tokens per sequence
    int64_t vocab = 0;       // ids both the tokenizer and the model's head know
    const std::string& model_name;
    const std::vector<int32_t>& stop_ids;
    std::shared_ptr<const TokenVocab> token_vocab;  // null: structured output is unavailable ...
    const std::string& vocab_error;                 // ... for this reason
    ConstraintCache& constraints;
};

struct PreparedGeneration {
    GenerationRequest request;      // ready for Engine::submit (deadline already set)
    std::vector<std::string> stop;  // stop strings
    bool stream = false;
    bool include_usage = false;
    int64_t prompt_tokens = 0;
};

std::variant<PreparedGeneration, Refusal> prepare_generation(const http::Request& req, Endpoint ep,
                                                              const GenerateSetup& setup);

}  // namespace hr::server

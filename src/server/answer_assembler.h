// The ONE place a generation's answer is assembled from the engine's events: tokens -> text (stream
// decoder, stop strings), how it ended (finish reason, usage, or the error), and the client watch.
// Both answer forms are built from the same steps: the whole JSON response, and the SSE stream's events.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "server/connection.h"
#include "server/openai_types.h"
#include "server/stop.h"
#include "tokenizer/tokenizer.h"

namespace hr::server {

// What the answer reports about itself (ids and counts the client sees).
struct AnswerIdentity {
    Endpoint ep = Endpoint::completions;
    std::string id;
    std::string model;
    int64_t created = 0;
    int64_t prompt_tokens = 0;
    bool include_usage = false;  // streaming: end with a usage-only chunk
};

class AnswerAssembler {
public:
    struct Step {
        enum class Kind : uint8_t {
            waiting,      // no event within the wait
            text,         // the answer goes on; `text` is its next piece (may be empty: held back)
            finished,     // the answer is complete; `text` is its last piece
            failed,       // the generation ended abnormally: `error`
            client_gone,  // the client closed the connection; the request was cancelled
        };
        Kind kind = Kind::waiting;
        std::string text;
        std::string finish_reason;  // finished: "stop" | "length"
        Usage usage;                // finished
        ApiError error;             // failed
        std::string outcome;        // finished, failed, client_gone: the headroom_requests_total outcome
    };

    // fd: the client's socket (polled for a peer close on every step).
    AnswerAssembler(Engine& engine, std::shared_ptr<RequestStream> stream, const Tokenizer& tok,
                    std::vector<std::string> stop, int fd, AnswerIdentity who);

    // Waits up to `wait` for the next engine event.
    Step next(std::chrono::milliseconds wait);
    // Cancels the request because its client is gone (a write failed).
    void cancel();
    // A final step was returned, or the request was cancelled: nothing more will come.
    bool ended() const { return ended_; }
    const AnswerIdentity& identity() const { return who_; }

    // The whole (non-streaming) response: text is every piece, end the finished step.
    nlohmann::json whole(const std::string& text, const Step& end) const;
    // SSE events. role: the chat stream's first event ("" for completions).
    std::string sse_role() const;
    std::string sse_text(const std::string& piece) const;
    // The events that end the stream, in order: the last piece and the finish chunk (with usage, and the
    // usage-only chunk when asked), or the error event; then [DONE].
    std::vector<std::string> sse_end(const Step& end) const;

private:
    Step finished(std::string text, const std::string& reason, int64_t completion_tokens);

    Engine& engine_;
    std::shared_ptr<RequestStream> stream_;
    StreamDecoder decoder_;
    StopMatcher stop_;
    ConnectionWatch watch_;
    AnswerIdentity who_;
    int64_t received_ = 0;  // token events consumed
    bool ended_ = false;
};

}  // namespace hr::server

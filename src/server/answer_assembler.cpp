// AnswerAssembler (see answer_assembler.h).
#include "server/answer_assembler.h"

#include "server/api_errors.h"

namespace hr::server {

namespace {

std::string sse(const nlohmann::json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace

AnswerAssembler::AnswerAssembler(Engine& engine, std::shared_ptr<RequestStream> stream, const Tokenizer& tok,
                                 std::vector<std::string> stop, int fd, AnswerIdentity who)
    : engine_(engine),
      stream_(std::move(stream)),
      decoder_(tok, /*skip_special=*/true),
      stop_(std::move(stop)),
      watch_(fd),
      who_(std::move(who)) {}

AnswerAssembler::Step AnswerAssembler::finished(std::string text, const std::string& reason, int64_t completion_tokens) {
    ended_ = true;
    Step s;
    s.kind = Step::Kind::finished;
    s.text = std::move(text);
    s.finish_reason = reason;
    s.outcome = reason;
    s.usage = Usage{who_.prompt_tokens, completion_tokens};
    return s;
}

AnswerAssembler::Step AnswerAssembler::next(std::chrono::milliseconds wait) {
    Step s;
    if (ended_) return s;
    auto ev = stream_->next(wait);
    // note: checked on every event too: tokens may arrive faster than the poll interval.
    if (watch_.peer_closed()) {
        cancel();
        s.kind = Step::Kind::client_gone;
        s.outcome = "client_disconnected";
        return s;
    }
    if (!ev) return s;
    if (ev->kind == StreamEvent::Kind::token) {
        ++received_;
        std::string piece = stop_.push(decoder_.push(ev->token));
        if (stop_.stopped()) {
            // A stop string ended the answer before the engine did: the tokens it saw are the usage.
            engine_.cancel(*stream_);
            return finished(std::move(piece), "stop", received_);
        }
        s.kind = Step::Kind::text;
        s.text = std::move(piece);
        return s;
    }
    if (ev->reason == FinishReason::stop || ev->reason == FinishReason::length) {
        std::string piece = stop_.push(decoder_.finish());
        piece += stop_.flush();
        return finished(std::move(piece), ev->reason == FinishReason::length ? "length" : "stop",
                        stream_->stats().generated_tokens);
    }
    ended_ = true;
    s.kind = Step::Kind::failed;
    s.error = ended_error(*ev);
    s.outcome = ev->engine_dead ? "engine_dead" : std::string(finish_reason_name(ev->reason));
    return s;
}

void AnswerAssembler::cancel() {
    ended_ = true;
    engine_.cancel(*stream_);
}

nlohmann::json AnswerAssembler::whole(const std::string& text, const Step& end) const {
    return who_.ep == Endpoint::chat
               ? chat_response(who_.id, who_.created, who_.model, text, end.finish_reason, end.usage)
               : completion_response(who_.id, who_.created, who_.model, text, end.finish_reason, end.usage);
}

std::string AnswerAssembler::sse_role() const {
    if (who_.ep != Endpoint::chat) return "";
    return sse(chat_chunk(who_.id, who_.created, who_.model, "", "", std::nullopt, true));
}

std::string AnswerAssembler::sse_text(const std::string& piece) const {
    if (who_.ep == Endpoint::chat) return sse(chat_chunk(who_.id, who_.created, who_.model, piece, "", std::nullopt, false));
    return sse(completion_chunk(who_.id, who_.created, who_.model, piece, "", std::nullopt));
}

std::vector<std::string> AnswerAssembler::sse_end(const Step& end) const {
    std::vector<std::string> out;
    if (end.kind == Step::Kind::failed) {
        // Mid-stream failures are an error event (the status line is already sent).
        out.push_back(sse(error_body(end.error)));
    } else {
        if (!end.text.empty()) out.push_back(sse_text(end.text));
        out.push_back(sse(who_.ep == Endpoint::chat
                              ? chat_chunk(who_.id, who_.created, who_.model, "", end.finish_reason, end.usage, false)
                              : completion_chunk(who_.id, who_.created, who_.model, "", end.finish_reason, end.usage)));
        if (who_.include_usage) out.push_back(sse(usage_chunk(who_.ep, who_.id, who_.created, who_.model, end.usage)));
    }
    out.push_back("data: [DONE]\n\n");
    return out;
}

}  // namespace hr::server

// POST /v1/completions and /v1/chat/completions: prepare -> submit -> one AnswerAssembler, written
// whole (JSON) or as it comes (SSE).
#include <ctime>

#include <fmt/format.h>

#include "core/log.h"
#include "server/answer_assembler.h"
#include "server/api_errors.h"
#include "server/api_server.h"
#include "server/generate_request.h"
#include "server/in_flight.h"

namespace hr::server {

using namespace std::chrono_literals;

namespace {

constexpr auto kPoll = 50ms;  // how often a waiting handler checks its client and the engine

}  // namespace

void ApiServer::handle_generate(const http::Request& req, http::Response& res, Endpoint ep) {
    InFlight in_flight(active_);
    bool streaming_started = false;
    try {
        const ServerState st = state();
        if (st != ServerState::ready) return send_error(res, not_serving_error(st), "unavailable");
        Engine& engine = *engine_.load(std::memory_order_acquire);
        const Tokenizer& tok = *tok_.load(std::memory_order_acquire);
        const GenerateSetup setup{.tok = tok,
                                  .context = engine.config().context,
                                  .vocab = std::min<int64_t>(engine.vocab_size(), tok.vocab_size()),
                                  .model_name = opts_.model_name,
                                  .stop_ids = stop_ids_,
                                  .token_vocab = vocab_,
                                  .vocab_error = vocab_error_,
                                  .constraints = constraints_};
        auto prepared = prepare_generation(req, ep, setup);
        if (auto* refused = std::get_if<Refusal>(&prepared)) return send_error(res, refused->error, refused->outcome);
        PreparedGeneration& p = std::get<PreparedGeneration>(prepared);

        SubmitResult sub = engine.submit(std::move(p.request));
        if (auto* se = std::get_if<SubmitError>(&sub)) {
            const Refusal r = submit_refusal(*se);
            return send_error(res, r.error, r.outcome);
        }
        auto stream = std::get<std::shared_ptr<RequestStream>>(sub);
        AnswerIdentity who;
        who.ep = ep;
        who.id = fmt::format("{}-{:x}{:06x}", ep == Endpoint::chat ? "chatcmpl" : "cmpl", stream->id(),
                             next_id_.fetch_add(1) & 0xffffff);
        who.model = opts_.model_name;
        who.created = static_cast<int64_t>(std::time(nullptr));
        who.prompt_tokens = p.prompt_tokens;
        who.include_usage = p.include_usage;
        auto answer = std::make_shared<AnswerAssembler>(engine, std::move(stream), tok, std::move(p.stop), req.fd,
                                                        std::move(who));
        if (!p.stream) return answer_whole(*answer, res);
        answer_stream(std::move(answer), res, std::move(in_flight));
        streaming_started = true;
    } catch (const std::exception&) {
        if (!streaming_started) {
            send_error(res, api_error(500, "server_error", "internal error", "internal_error"), "internal_error");
        }
    }
}

void ApiServer::answer_whole(AnswerAssembler& answer, http::Response& res) {
    std::string text;
    while (true) {
        AnswerAssembler::Step s = answer.next(kPoll);
        switch (s.kind) {
            case AnswerAssembler::Step::Kind::waiting: continue;
            case AnswerAssembler::Step::Kind::text: text += s.text; continue;
            case AnswerAssembler::Step::Kind::client_gone: return count(s.outcome);
            case AnswerAssembler::Step::Kind::failed: return send_error_tracked(res, s.error, s.outcome);
            case AnswerAssembler::Step::Kind::finished:
                text += s.text;
                res.set_content(dump_json(answer.whole(text, s)), "application/json");
                return count(s.outcome);
        }
    }
}

void ApiServer::answer_stream(std::shared_ptr<AnswerAssembler> answer, http::Response& res, InFlight in_flight) {
    // The provider runs after the handler returns, on the same connection thread; the request stays in
    // flight until the transport releases the response.
    auto held = std::make_shared<InFlight>(std::move(in_flight));
    auto sent_role = std::make_shared<bool>(false);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, answer, sent_role](size_t, http::DataSink& sink) -> bool {
            auto write = [&](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
            auto client_gone = [&] {
                answer->cancel();
                count("client_disconnected");
                return false;
            };
            if (!*sent_role) {
                *sent_role = true;
                if (!write(answer->sse_role())) return client_gone();
            }
            AnswerAssembler::Step s = answer->next(kPoll);
            switch (s.kind) {
                case AnswerAssembler::Step::Kind::waiting: return true;
                case AnswerAssembler::Step::Kind::client_gone: count(s.outcome); return false;
                case AnswerAssembler::Step::Kind::text:
                    if (!s.text.empty() && !write(answer->sse_text(s.text))) return client_gone();
                    return true;
                case AnswerAssembler::Step::Kind::finished:
                case AnswerAssembler::Step::Kind::failed: break;
            }
            for (const std::string& event : answer->sse_end(s)) write(event);
            count(s.outcome);
            sink.done();
            return true;
        },
        [this, answer, held](bool) {
            if (!answer->ended()) {
                answer->cancel();
                count("client_disconnected");
            }
            held->release();
        });
}

}  // namespace hr::server

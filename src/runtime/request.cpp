// RequestStream: the event queue between the engine loop and one consumer.
#include "runtime/request.h"

#include "core/fatal_hooks.h"

namespace hr {

std::optional<StreamEvent> RequestStream::next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    // note: nobody notifies on a fatal error (the fatal thread takes no locks); consumers poll with a
    // short timeout, and the predicate is evaluated again when it expires.
    auto ready = [&] { return fatal_in_progress() ? !fatal_delivered_ : !events_.empty(); };
    if (!cv_.wait_for(lock, timeout, ready)) return std::nullopt;
    if (fatal_in_progress()) {
        // Tokens not yet consumed are dropped: the explicit error is what the client must get before
        // the process ends. A request that already finished normally (its final event queued) ends
        // with the error too, since its output was not delivered.
        fatal_delivered_ = true;
        finished_ = true;
        events_.clear();
        StreamEvent ev;
        ev.kind = StreamEvent::Kind::finished;
        ev.reason = FinishReason::error;
        ev.error = std::string(kEngineFatalMessage);
        ev.engine_dead = true;
        return ev;
    }
    StreamEvent ev = std::move(events_.front());
    events_.pop_front();
    return ev;
}

RequestStats RequestStream::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

void RequestStream::push(StreamEvent ev) {
    {
        std::lock_guard lock(mu_);
        if (finished_) return;
        events_.push_back(std::move(ev));
    }
    cv_.notify_all();
}

void RequestStream::finish(FinishReason reason, std::string error, const RequestStats& stats) {
    {
        std::lock_guard lock(mu_);
        if (finished_) return;
        finished_ = true;
        stats_ = stats;
        StreamEvent ev;
        ev.kind = StreamEvent::Kind::finished;
        ev.reason = reason;
        ev.error = std::move(error);
        events_.push_back(std::move(ev));
    }
    cv_.notify_all();
}

}  // namespace hr

// RequestStream: the event queue between the engine loop and one consumer.
#include "runtime/request.h"

namespace hr {

std::optional<StreamEvent> RequestStream::next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
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

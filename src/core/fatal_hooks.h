// Fatal hooks: what runs once when the process hits hr::fatal (a sticky CUDA error, a broken invariant)
// before it ends, so that the engine and the server can fail requests in flight explicitly
// (RELIABILITY #99) instead of cutting their connections. hr::fatal then ends the process (abort).
#pragma once

#include <cstdint>
#include <functional>

namespace hr {

// note: the hooks run on the thread that called fatal, which may be in the middle of anything (a
// forward step, a scheduler update) and may hold any lock of its own. So a hook never takes a lock
// that code calling fatal could hold; it flips atomics, and anything that needs locks (building an
// error response, writing it) is done by the other threads, which notice the flags. Stages order them:
enum class FatalStage : uint8_t {
    notify,  // first, all of them: flip flags (engine dead, server unhealthy); never block
    drain,   // then: bounded waits for other threads to deliver errors (at most a few seconds in all)
};

using FatalHook = std::function<void()>;

// Removes its hook when destroyed. Destruction waits while another thread runs the hooks (so a hook
// never outlives what it uses); since fatal then ends the process, it does not return in that case.
class FatalHookHandle {
public:
    FatalHookHandle() = default;
    explicit FatalHookHandle(uint64_t id) : id_(id) {}
    ~FatalHookHandle() { reset(); }
    FatalHookHandle(FatalHookHandle&& o) noexcept : id_(o.id_) { o.id_ = 0; }
    FatalHookHandle& operator=(FatalHookHandle&& o) noexcept;
    FatalHookHandle(const FatalHookHandle&) = delete;
    FatalHookHandle& operator=(const FatalHookHandle&) = delete;
    void reset();
    bool active() const { return id_ != 0; }

private:
    uint64_t id_ = 0;
};

// Registers `hook` to run once if hr::fatal is called. Hooks of one stage run in registration order;
// an exception from a hook is swallowed (the process is ending anyway).
[[nodiscard]] FatalHookHandle add_fatal_hook(FatalStage stage, FatalHook hook);

// True once some thread entered hr::fatal: the process is ending. Lock-free, callable from anywhere.
bool fatal_in_progress();

// Called by hr::fatal (core/status.h) after it printed its message: runs the hooks once, then ends the
// process with a non-zero status (SIGABRT). A fatal inside a hook, or a second thread's fatal while
// the hooks run, runs no hooks again.
namespace detail {
[[noreturn]] void end_after_fatal();
}

}  // namespace hr

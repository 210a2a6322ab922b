// The fatal-hook registry and the end of hr::fatal (see fatal_hooks.h).
#include "core/fatal_hooks.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace hr {

namespace {

struct Entry {
    uint64_t id;
    FatalStage stage;
    FatalHook hook;
};

struct Registry {
    std::timed_mutex mu;
    std::vector<Entry> hooks;  // guarded by mu
    uint64_t next_id = 1;      // guarded by mu
};

// note: never destroyed, so that a fatal during static destruction still finds a valid registry.
Registry& registry() {
    static Registry* r = new Registry;
    return *r;
}

std::atomic<bool> g_started{false};
// Set on the thread that runs the hooks: a fatal (or a hook registration change) from inside a hook
// must not wait for the registry lock that this same thread holds.
thread_local bool t_in_fatal = false;

// A thread that holds the registry lock only adds or removes one entry; waiting longer than this means
// something is badly wrong, and the process ends without hooks rather than hanging.
constexpr auto kRegistryWait = std::chrono::seconds(1);
// A second thread that hits fatal while the first runs the hooks stops here (no more device work
// from it) and leaves the ending to the first; the hooks are bounded well below this.
constexpr auto kSecondFatalWait = std::chrono::seconds(30);

void run_stage(Registry& r, FatalStage stage) {
    for (Entry& e : r.hooks) {
        if (e.stage != stage) continue;
        try {
            e.hook();
        } catch (...) {
            std::fputs("headroom: fatal: a fatal hook threw; continuing with the next\n", stderr);
        }
    }
}

}  // namespace

FatalHookHandle& FatalHookHandle::operator=(FatalHookHandle&& o) noexcept {
    if (this != &o) {
        reset();
        id_ = std::exchange(o.id_, 0);
    }
    return *this;
}

void FatalHookHandle::reset() {
    if (id_ == 0) return;
    const uint64_t id = std::exchange(id_, 0);
    // The registry is locked by this very thread while it runs the hooks; the process is ending.
    if (t_in_fatal) return;
    Registry& r = registry();
    // note: blocks while another thread runs the hooks (it holds the lock until the process ends), so
    // the owner of a hook is never destroyed under it.
    std::lock_guard lock(r.mu);
    std::erase_if(r.hooks, [id](const Entry& e) { return e.id == id; });
}

FatalHookHandle add_fatal_hook(FatalStage stage, FatalHook hook) {
    if (t_in_fatal) return FatalHookHandle();
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    const uint64_t id = r.next_id++;
    r.hooks.push_back(Entry{id, stage, std::move(hook)});
    return FatalHookHandle(id);
}

bool fatal_in_progress() { return g_started.load(std::memory_order_acquire); }

namespace detail {

[[noreturn]] void end_after_fatal() {
    if (t_in_fatal) {
        std::fputs("headroom: fatal: a second fatal error inside a fatal hook; aborting now\n", stderr);
        std::fflush(stderr);
        std::abort();
    }
    t_in_fatal = true;
    bool expected = false;
    if (!g_started.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
        std::fputs("headroom: fatal: another thread is already ending the process\n", stderr);
        std::fflush(stderr);
        std::this_thread::sleep_for(kSecondFatalWait);
        std::abort();
    }
    Registry& r = registry();
    // note: the lock is held until abort(): a hook's owner that is being destroyed on another thread
    // waits in FatalHookHandle::reset instead of freeing what the hook uses.
    std::unique_lock lock(r.mu, std::defer_lock);
    if (lock.try_lock_for(kRegistryWait)) {
        run_stage(r, FatalStage::notify);
        run_stage(r, FatalStage::drain);
    } else {
        std::fputs("headroom: fatal: the hook registry stayed locked; ending without hooks\n", stderr);
    }
    std::fputs("headroom: fatal: ending the process\n", stderr);
    std::fflush(stderr);
    std::abort();
}

}  // namespace detail

}  // namespace hr

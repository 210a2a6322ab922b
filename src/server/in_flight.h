// One request counted as in flight for as long as a guard lives. The fatal grace period waits for this
// count to reach zero, so a missed decrement on one early return costs every fatal exit its whole grace
// period; a guard cannot miss one. An answer that outlives its handler (a stream, an error that must be
// written before the process ends) moves the guard into the response's release callback.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace hr::server {

class InFlight {
public:
    explicit InFlight(std::atomic<int64_t>& n) : n_(&n) { n.fetch_add(1); }
    InFlight(InFlight&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
    InFlight& operator=(InFlight&&) = delete;
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    ~InFlight() { release(); }

    // Stops counting now (idempotent): a release callback calls it when the answer is written, which
    // may be long before the callback itself is destroyed.
    void release() {
        if (n_) std::exchange(n_, nullptr)->fetch_sub(1);
    }

private:
    std::atomic<int64_t>* n_;
};

}  // namespace hr::server

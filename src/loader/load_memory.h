// The loader's allocated-bytes counter: the host memory a load holds besides the weights' destination
// (staging buffers, per-chunk scratch), now and at its peak. Tests bound a tensor-parallel rank's load with
// it (tests/unit/model/rank_load_test.cpp): per rank, the rank's weights plus this, never the model.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace hr {

class LoadMemory {
public:
    void add(uint64_t n) {
        const uint64_t now = current_.fetch_add(n, std::memory_order_relaxed) + n;
        uint64_t p = peak_.load(std::memory_order_relaxed);
        while (now > p && !peak_.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
        }
    }
    void sub(uint64_t n) { current_.fetch_sub(n, std::memory_order_relaxed); }
    uint64_t current() const { return current_.load(std::memory_order_relaxed); }
    uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> current_{0}, peak_{0};
};

// Counts `bytes` in `m` (may be null) while it lives.
class CountedBytes {
public:
    CountedBytes(LoadMemory* m, uint64_t bytes) : m_(m), bytes_(bytes) {
        if (m_) m_->add(bytes_);
    }
    ~CountedBytes() { release(); }
    // No longer counted (the memory was freed before the end of the scope).
    void release() {
        if (m_) m_->sub(bytes_);
        m_ = nullptr;
    }
    CountedBytes(const CountedBytes&) = delete;
    CountedBytes& operator=(const CountedBytes&) = delete;

private:
    LoadMemory* m_;
    uint64_t bytes_;
};

// A scratch buffer of `bytes` (uninitialised), counted while it lives.
class ScratchBuffer {
public:
    ScratchBuffer(LoadMemory* m, uint64_t bytes) : buf_(new uint8_t[bytes ? bytes : 1]), count_(m, bytes) {}
    uint8_t* data() { return buf_.get(); }

private:
    std::unique_ptr<uint8_t[]> buf_;
    CountedBytes count_;
};

}  // namespace hr

// Paged KV block pool (see kv_blocks.h for the invariants).
#include "runtime/kv_blocks.h"

#include "core/status.h"

namespace hr {

KvBlockPool::KvBlockPool(int64_t n_blocks, int block_size)
    : n_total_(n_blocks), block_size_(block_size), in_use_(static_cast<size_t>(n_blocks), 0) {
    HR_CHECK(n_blocks >= 0 && n_blocks <= INT32_MAX);
    HR_CHECK(block_size > 0);
    free_list_.reserve(static_cast<size_t>(n_blocks));
    // Push in reverse so that low block ids come out first (easier to read in logs and tests).
    for (int64_t b = n_blocks - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
}

bool KvBlockPool::try_reserve(int64_t n) {
    if (n < 0 || n > n_available()) return false;
    reserved_ += n;
    return true;
}

void KvBlockPool::unreserve(int64_t n) {
    HR_CHECK(n >= 0 && n <= reserved_);
    reserved_ -= n;
}

int32_t KvBlockPool::allocate_reserved() {
    HR_CHECK_MSG(reserved_ > 0, "allocation without a reservation");
    HR_CHECK(!free_list_.empty());
    int32_t b = free_list_.back();
    free_list_.pop_back();
    --reserved_;
    in_use_[static_cast<size_t>(b)] = 1;
    return b;
}

void KvBlockPool::release(const std::vector<int32_t>& blocks) {
    for (int32_t b : blocks) {
        HR_CHECK(b >= 0 && b < n_total_);
        HR_CHECK_MSG(in_use_[static_cast<size_t>(b)] == 1, "double free of a KV block");
        in_use_[static_cast<size_t>(b)] = 0;
        free_list_.push_back(b);
    }
}

bool KvBlockPool::check_invariants() const {
    if (reserved_ < 0 || reserved_ > n_free()) return false;
    int64_t used = 0;
    for (uint8_t u : in_use_) used += u;
    if (used != n_used()) return false;
    for (int32_t b : free_list_) {
        if (b < 0 || b >= n_total_ || in_use_[static_cast<size_t>(b)] != 0) return false;
    }
    return true;
}

}  // namespace hr

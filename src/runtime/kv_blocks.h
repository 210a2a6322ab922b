// Paged KV block pool: a free list over the plan's KV region, per-sequence reservations made at
// admission, and lazy allocation of reserved blocks as a sequence's tokens reach them.
#pragma once

#include <cstdint>
#include <vector>

namespace hr {

// note: invariants (checked by check_invariants(), always on in tests):
//   free_list_.size() == n_free(); every block id is either on the free list or owned by exactly one
//   sequence's block table; reserved_ <= free_list_.size(). A reservation is a promise that this many
//   free blocks stay available to the sequence that holds it, which is why a started request can
//   never run out of KV memory.
class KvBlockPool {
public:
    KvBlockPool(int64_t n_blocks, int block_size);

    int block_size() const { return block_size_; }
    int64_t n_total() const { return n_total_; }
    int64_t n_free() const { return static_cast<int64_t>(free_list_.size()); }
    int64_t n_used() const { return n_total_ - n_free(); }
    int64_t n_reserved() const { return reserved_; }       // free blocks promised to admitted sequences
    int64_t n_available() const { return n_free() - reserved_; }  // free and unpromised

    static int64_t blocks_for(int64_t n_tokens, int block_size) {
        return (n_tokens + block_size - 1) / block_size;
    }

    // Promises n blocks; false (and nothing changes) when fewer than n are available.
    bool try_reserve(int64_t n);
    // Returns an unused part of a reservation (a sequence that ended early).
    void unreserve(int64_t n);
    // Takes one block out of an existing reservation.
    int32_t allocate_reserved();
    // Returns blocks to the free list.
    void release(const std::vector<int32_t>& blocks);

    bool check_invariants() const;

private:
    int64_t n_total_;
    int block_size_;
    int64_t reserved_ = 0;
    std::vector<int32_t> free_list_;  // stack of free block ids
    std::vector<uint8_t> in_use_;     // [n_total] 1 when allocated (guards double free)
};

}  // namespace hr

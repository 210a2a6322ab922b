// Paged KV block pool: reference-counted blocks over the plan's KV region, per-sequence reservations
// made at admission, lazy allocation of reserved blocks as a sequence's tokens reach them, and a
// prefix cache: full blocks are content-addressed so a later prompt that starts with the same tokens
// reuses their K/V instead of recomputing it.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace hr {

// Where a chain of full blocks ends, as the prefix cache knows it: the chain hash of the tokens so far
// and the cached block that holds the last of them (block -1: the empty prefix, or a chain the cache
// does not hold, valid = false, after which nothing more of that sequence is cached).
struct PrefixLink {
    uint64_t hash = 0;
    int32_t block = -1;
    uint32_t gen = 0;   // the block's generation when linked: a reused block no longer matches
    bool valid = true;
};

// The cached blocks that start a prompt, found by KvBlockPool::match().
struct PrefixMatch {
    std::vector<int32_t> blocks;   // [n] in position order: they hold tokens [0, n * block_size)
    int64_t n_unreferenced = 0;    // of them, blocks no sequence holds now (taking them uses free capacity)
    PrefixLink link;               // the chain after the last matched block
};

// note: every block is in exactly one state:
//   free       on free_list_, refcount 0, not in the index;
//   evictable  refcount 0, in the index (its K/V is a cached prefix), on the LRU list;
//   held       refcount > 0 (by that many sequences' block tables), in the index or not.
// n_free() counts free + evictable: both can be handed out, an evictable block by evicting it
// (least recently released first). reserved_ <= n_free(): a reservation is a promise that this many
// blocks stay available to the sequence that holds it, which is why a started request can never run
// out of KV memory, however many blocks are cached. Block ids never leave [0, n_total): eviction only
// ever recycles blocks of the planned region.
//
// Content addressing: a full block's key is chain_hash(parent's hash, its tokens). A lookup compares
// the block's stored tokens and its parent (block id and generation) too, so a hash collision can
// cost a hit but never return K/V computed for other tokens.
class KvBlockPool {
public:
    KvBlockPool(int64_t n_blocks, int block_size, bool prefix_caching = true);

    int block_size() const { return block_size_; }
    int64_t n_total() const { return n_total_; }
    int64_t n_free() const { return static_cast<int64_t>(free_list_.size()) + n_evictable_; }
    int64_t n_used() const { return n_total_ - n_free(); }  // held by at least one sequence
    int64_t n_reserved() const { return reserved_; }       // free blocks promised to admitted sequences
    int64_t n_available() const { return n_free() - reserved_; }  // free and unpromised
    int64_t n_cached() const { return static_cast<int64_t>(index_.size()); }  // in the index, held or not
    int64_t n_evictable() const { return n_evictable_; }
    bool prefix_caching() const { return prefix_caching_; }
    int32_t refcount(int32_t block) const { return meta_[static_cast<size_t>(block)].refs; }
    bool cached(int32_t block) const { return meta_[static_cast<size_t>(block)].cached; }
    // A block a sequence may write into: nobody else holds it and the prefix cache does not index it
    // (else it is copied first: Scheduler::schedule's copy-on-write).
    bool writable(int32_t block) const { return refcount(block) == 1 && !cached(block); }

    static int64_t blocks_for(int64_t n_tokens, int block_size) {
        return (n_tokens + block_size - 1) / block_size;
    }
    // The key of a full block after a prefix whose chain hash is `parent` (kRootHash: the first block).
    static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> block_tokens);
    static constexpr uint64_t kRootHash = 0xcbf29ce484222325ull;

    // Promises n blocks; false (and nothing changes) when fewer than n are available.
    bool try_reserve(int64_t n);
    // Returns an unused part of a reservation (a sequence that ended early).
    void unreserve(int64_t n);
    // Takes one block out of an existing reservation: a free block, else the least recently released
    // evictable one (which leaves the index).
    int32_t allocate_reserved();
    // Drops one reference to each block; a block nobody holds becomes evictable when cached (the
    // blocks are taken last to first, so a prompt's tail is evicted before its head), else free.
    void release(std::span<const int32_t> blocks);
    void release(const std::vector<int32_t>& blocks) { release(std::span<const int32_t>(blocks)); }

    // One more reference to each of these held blocks (a sequence sharing another's blocks).
    void share(const std::vector<int32_t>& blocks);

    // The longest run of cached blocks that holds the first full blocks of `tokens`, at most
    // max_blocks of them. Changes nothing.
    PrefixMatch match(std::span<const int32_t> tokens, int64_t max_blocks) const;
    // Whether the cache holds the full block of `block_tokens` right after the chain `link` (a block a
    // match stopped short of: the prompt's last one, recomputed for its last token's logits).
    bool holds_next(const PrefixLink& link, std::span<const int32_t> block_tokens) const;
    // Admission with a prefix hit: takes a reference on every matched block and reserves n_new more,
    // or (false) changes nothing. Matched blocks nobody held leave the evictable list, so they are
    // counted against availability here; held ones cost nothing (cached blocks count once).
    bool try_acquire(const PrefixMatch& m, int64_t n_new);
    // A sequence's block `block` now holds block_size computed tokens following `parent`: enters it in
    // the index (unless an equal block is already there: then that one continues the chain) and
    // returns the chain after it.
    PrefixLink commit_full_block(const PrefixLink& parent, int32_t block, std::span<const int32_t> block_tokens);

    bool check_invariants() const;

private:
    struct Meta {
        int32_t refs = 0;
        uint32_t gen = 0;       // bumped each time the block is handed out again
        bool cached = false;    // in index_ under `hash`
        uint64_t hash = 0;
        int32_t parent = -1;    // the cached block before it in its chain (-1: first block)
        uint32_t parent_gen = 0;
        int32_t lru_prev = -1, lru_next = -1;  // evictable list links
    };
    bool holds(int32_t block, const PrefixLink& parent, std::span<const int32_t> block_tokens) const;
    void lru_push_back(int32_t b);
    void lru_remove(int32_t b);
    std::span<const int32_t> stored_tokens(int32_t b) const {
        return {tokens_.data() + static_cast<size_t>(b) * static_cast<size_t>(block_size_),
                static_cast<size_t>(block_size_)};
    }

    int64_t n_total_;
    int block_size_;
    bool prefix_caching_;
    int64_t reserved_ = 0;
    std::vector<int32_t> free_list_;  // stack of free block ids
    std::vector<Meta> meta_;          // [n_total]
    std::vector<int32_t> tokens_;     // [n_total, block_size] token ids of cached blocks (exact lookups)
    std::unordered_map<uint64_t, int32_t> index_;  // chain hash -> cached block
    int32_t lru_head_ = -1, lru_tail_ = -1;         // head: least recently released
    int64_t n_evictable_ = 0;
};

}  // namespace hr

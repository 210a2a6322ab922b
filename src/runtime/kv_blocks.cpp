// Paged KV block pool with a prefix cache (see kv_blocks.h for the states and invariants).
#include "runtime/kv_blocks.h"

#include <algorithm>

#include "core/status.h"

namespace hr {

KvBlockPool::KvBlockPool(int64_t n_blocks, int block_size, bool prefix_caching)
    : n_total_(n_blocks), block_size_(block_size), prefix_caching_(prefix_caching) {
    HR_CHECK(n_blocks >= 0 && n_blocks <= INT32_MAX);
    HR_CHECK(block_size > 0);
    meta_.resize(static_cast<size_t>(n_blocks));
    free_list_.reserve(static_cast<size_t>(n_blocks));
    // Push in reverse so that low block ids come out first (easier to read in logs and tests).
    for (int64_t b = n_blocks - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
    if (prefix_caching_) {
        // Host memory only, sized once: 4 bytes per KV slot, so a lookup can compare tokens exactly.
        tokens_.assign(static_cast<size_t>(n_blocks) * static_cast<size_t>(block_size), 0);
        index_.reserve(static_cast<size_t>(n_blocks));
    }
}

uint64_t KvBlockPool::chain_hash(uint64_t parent, std::span<const int32_t> block_tokens) {
    // FNV-1a over the parent hash and the token ids, then a splitmix finaliser to spread the bits.
    // note: only an index key; lookups verify tokens and parent, so quality matters for speed only.
    uint64_t h = kRootHash;
    auto mix = [&h](uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            h ^= (v >> (8 * i)) & 0xffu;
            h *= 0x100000001b3ull;
        }
    };
    mix(parent);
    for (int32_t t : block_tokens) mix(static_cast<uint32_t>(t));
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
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

void KvBlockPool::lru_push_back(int32_t b) {
    Meta& m = meta_[static_cast<size_t>(b)];
    m.lru_prev = lru_tail_;
    m.lru_next = -1;
    if (lru_tail_ >= 0) meta_[static_cast<size_t>(lru_tail_)].lru_next = b;
    else lru_head_ = b;
    lru_tail_ = b;
    ++n_evictable_;
}

void KvBlockPool::lru_remove(int32_t b) {
    Meta& m = meta_[static_cast<size_t>(b)];
    if (m.lru_prev >= 0) meta_[static_cast<size_t>(m.lru_prev)].lru_next = m.lru_next;
    else lru_head_ = m.lru_next;
    if (m.lru_next >= 0) meta_[static_cast<size_t>(m.lru_next)].lru_prev = m.lru_prev;
    else lru_tail_ = m.lru_prev;
    m.lru_prev = m.lru_next = -1;
    --n_evictable_;
}

int32_t KvBlockPool::allocate_reserved() {
    HR_CHECK_MSG(reserved_ > 0, "allocation without a reservation");
    int32_t b;
    if (!free_list_.empty()) {
        b = free_list_.back();
        free_list_.pop_back();
    } else {
        HR_CHECK(lru_head_ >= 0);
        b = lru_head_;  // evict the least recently released cached block
        lru_remove(b);
        Meta& m = meta_[static_cast<size_t>(b)];
        auto it = index_.find(m.hash);
        HR_CHECK(it != index_.end() && it->second == b);
        index_.erase(it);
        m.cached = false;
    }
    --reserved_;
    Meta& m = meta_[static_cast<size_t>(b)];
    m.refs = 1;
    ++m.gen;  // cached children of this block's old contents no longer match
    m.parent = -1;
    return b;
}

void KvBlockPool::release(std::span<const int32_t> blocks) {
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
        const int32_t b = *it;
        HR_CHECK(b >= 0 && b < n_total_);
        Meta& m = meta_[static_cast<size_t>(b)];
        HR_CHECK_MSG(m.refs > 0, "double free of a KV block");
        if (--m.refs > 0) continue;
        if (m.cached) lru_push_back(b);
        else free_list_.push_back(b);
    }
}

void KvBlockPool::share(const std::vector<int32_t>& blocks) {
    for (int32_t b : blocks) {
        HR_CHECK(b >= 0 && b < n_total_);
        Meta& m = meta_[static_cast<size_t>(b)];
        HR_CHECK_MSG(m.refs > 0, "sharing a KV block nobody holds");
        ++m.refs;
    }
}

bool KvBlockPool::holds(int32_t b, const PrefixLink& parent, std::span<const int32_t> block_tokens) const {
    const Meta& m = meta_[static_cast<size_t>(b)];
    if (!m.cached || m.parent != parent.block) return false;
    if (parent.block >= 0 && m.parent_gen != parent.gen) return false;
    return std::equal(block_tokens.begin(), block_tokens.end(), stored_tokens(b).begin());
}

PrefixMatch KvBlockPool::match(std::span<const int32_t> tokens, int64_t max_blocks) const {
    PrefixMatch out;
    out.link = PrefixLink{kRootHash, -1, 0, prefix_caching_};
    if (!prefix_caching_) return out;
    const int64_t bs = block_size_;
    const int64_t n = std::min<int64_t>(max_blocks, static_cast<int64_t>(tokens.size()) / bs);
    for (int64_t k = 0; k < n; ++k) {
        std::span<const int32_t> blk = tokens.subspan(static_cast<size_t>(k * bs), static_cast<size_t>(bs));
        const uint64_t h = chain_hash(out.link.hash, blk);
        auto it = index_.find(h);
        if (it == index_.end() || !holds(it->second, out.link, blk)) break;
        const int32_t b = it->second;
        out.blocks.push_back(b);
        if (meta_[static_cast<size_t>(b)].refs == 0) ++out.n_unreferenced;
        out.link = PrefixLink{h, b, meta_[static_cast<size_t>(b)].gen, true};
    }
    return out;
}

bool KvBlockPool::holds_next(const PrefixLink& link, std::span<const int32_t> blk) const {
    if (!prefix_caching_ || !link.valid || static_cast<int64_t>(blk.size()) != block_size_) return false;
    auto it = index_.find(chain_hash(link.hash, blk));
    return it != index_.end() && holds(it->second, link, blk);
}

bool KvBlockPool::try_acquire(const PrefixMatch& m, int64_t n_new) {
    if (n_new < 0 || n_new + m.n_unreferenced > n_available()) return false;
    for (int32_t b : m.blocks) {
        Meta& meta = meta_[static_cast<size_t>(b)];
        HR_CHECK(meta.cached);
        if (meta.refs++ == 0) lru_remove(b);
    }
    reserved_ += n_new;
    return true;
}

PrefixLink KvBlockPool::commit_full_block(const PrefixLink& parent, int32_t b, std::span<const int32_t> blk) {
    HR_CHECK(b >= 0 && b < n_total_ && meta_[static_cast<size_t>(b)].refs > 0);
    HR_CHECK(static_cast<int64_t>(blk.size()) == block_size_);
    if (!prefix_caching_ || !parent.valid) return PrefixLink{0, -1, 0, false};
    const uint64_t h = chain_hash(parent.hash, blk);
    Meta& m = meta_[static_cast<size_t>(b)];
    if (m.cached) {
        // A block this sequence took from the cache: already the chain's block for these tokens.
        return PrefixLink{h, b, m.gen, true};
    }
    auto it = index_.find(h);
    if (it != index_.end()) {
        // Another sequence computed the same tokens first (or a different chain collides on the hash):
        // keep the indexed block; this one stays private and is freed with its sequence.
        if (holds(it->second, parent, blk)) return PrefixLink{h, it->second, meta_[static_cast<size_t>(it->second)].gen, true};
        return PrefixLink{0, -1, 0, false};
    }
    m.cached = true;
    m.hash = h;
    m.parent = parent.block;
    m.parent_gen = parent.gen;
    std::copy(blk.begin(), blk.end(), tokens_.begin() + static_cast<ptrdiff_t>(b) * block_size_);
    index_.emplace(h, b);
    return PrefixLink{h, b, m.gen, true};
}

bool KvBlockPool::check_invariants() const {
    if (reserved_ < 0 || reserved_ > n_free()) return false;
    std::vector<uint8_t> on_free(static_cast<size_t>(n_total_), 0);
    for (int32_t b : free_list_) {
        if (b < 0 || b >= n_total_ || on_free[static_cast<size_t>(b)]) return false;
        on_free[static_cast<size_t>(b)] = 1;
        const Meta& m = meta_[static_cast<size_t>(b)];
        if (m.refs != 0 || m.cached) return false;
    }
    int64_t lru = 0;
    for (int32_t b = lru_head_, prev = -1; b >= 0; prev = b, b = meta_[static_cast<size_t>(b)].lru_next) {
        const Meta& m = meta_[static_cast<size_t>(b)];
        if (m.refs != 0 || !m.cached || m.lru_prev != prev || on_free[static_cast<size_t>(b)]) return false;
        if (++lru > n_total_) return false;  // a cycle
    }
    if (lru != n_evictable_) return false;
    int64_t held = 0;
    for (const Meta& m : meta_) held += m.refs > 0 ? 1 : 0;
    if (held != n_used()) return false;
    int64_t cached = 0;
    for (int64_t b = 0; b < n_total_; ++b) {
        const Meta& m = meta_[static_cast<size_t>(b)];
        if (!m.cached) continue;
        ++cached;
        auto it = index_.find(m.hash);
        if (it == index_.end() || it->second != b) return false;
    }
    return cached == n_cached();
}

}  // namespace hr

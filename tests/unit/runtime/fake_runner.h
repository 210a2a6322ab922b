// A fake ModelRunner for engine and server tests: a "model" whose logits are a hash of every token
// in the sequence's context, read back through the paged KV cache it keeps (token ids per slot).
// A wrong slot mapping, block table or position therefore changes the output, and the expected
// continuation of any prompt can be computed directly (expected_greedy).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/status.h"
#include "runtime/model_runner.h"

namespace hr::testing {

class FakeRunner : public ModelRunner {
public:
    FakeRunner(int64_t vocab, int64_t n_blocks, int block_size)
        : vocab_(vocab), block_size_(block_size), slots_(static_cast<size_t>(n_blocks * block_size), -1) {}

    int64_t vocab_size() const override { return vocab_; }

    static uint64_t mix(uint64_t h, int32_t tok) {
        h ^= static_cast<uint64_t>(tok) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        return h * 0x100000001b3ull;
    }
    static float logit(uint64_t h, int64_t v) {
        uint64_t x = (h ^ (static_cast<uint64_t>(v) * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
        return static_cast<float>((x >> 40) % 100000) / 1000.0f;
    }
    // The greedy continuation the fake model gives `prompt`, computed without any KV cache.
    static std::vector<int32_t> expected_greedy(std::vector<int32_t> tokens, int64_t vocab, int64_t n,
                                                int32_t stop_token = -1) {
        std::vector<int32_t> out;
        for (int64_t i = 0; i < n; ++i) {
            uint64_t h = 1469598103934665603ull;
            for (int32_t t : tokens) h = mix(h, t);
            int32_t best = 0;
            for (int64_t v = 1; v < vocab; ++v) {
                if (logit(h, v) > logit(h, best)) best = static_cast<int32_t>(v);
            }
            if (best == stop_token) break;
            out.push_back(best);
            tokens.push_back(best);
        }
        return out;
    }

    Status run(const StepBatch& b, std::span<float> logits) override {
        steps.fetch_add(1);
        if (fail_next.exchange(false)) return make_error("fake runner failure");
        if (step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms));
        const size_t T = b.token_ids.size();
        if (b.positions.size() != T || b.token_seq.size() != T || b.slot_mapping.size() != T) {
            return make_error("batch vectors differ in length");
        }
        max_tokens_seen = std::max<int64_t>(max_tokens_seen, static_cast<int64_t>(T));
        tokens_run.fetch_add(static_cast<int64_t>(T));
        std::lock_guard lock(mu_);
        // Copy-on-write copies first, as forward_upload() enqueues them: a missing copy leaves the
        // sequence's copied block unwritten, which the read below turns into an error.
        const size_t bs = static_cast<size_t>(block_size_);
        for (const KvBlockCopy& c : b.block_copies) {
            if (c.src < 0 || c.dst < 0 || static_cast<size_t>(std::max(c.src, c.dst) + 1) * bs > slots_.size() ||
                c.src == c.dst) {
                return make_error("block copy out of range");
            }
            std::copy_n(slots_.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(c.src) * bs), bs,
                        slots_.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(c.dst) * bs));
            block_copies.fetch_add(1);
        }
        for (size_t t = 0; t < T; ++t) {
            if (b.slot_mapping[t] < 0 || static_cast<size_t>(b.slot_mapping[t]) >= slots_.size()) {
                return make_error("slot out of range");
            }
            slots_[static_cast<size_t>(b.slot_mapping[t])] = b.token_ids[t];
        }
        const int64_t n_rows = b.token_seq.empty() ? 0 : b.token_seq.back() + 1;
        const int64_t max_blocks = n_rows > 0 ? static_cast<int64_t>(b.block_tables.size()) / n_rows : 0;
        for (size_t r = 0; r < b.logit_rows.size(); ++r) {
            const size_t t = static_cast<size_t>(b.logit_rows[r]);
            const int64_t seq = b.token_seq[t];
            const int32_t pos = b.positions[t];
            uint64_t h = 1469598103934665603ull;
            for (int32_t p = 0; p <= pos; ++p) {
                int32_t block = b.block_tables[static_cast<size_t>(seq * max_blocks + p / block_size_)];
                int32_t tok = slots_[static_cast<size_t>(block * block_size_ + p % block_size_)];
                if (tok < 0) return make_error("read an unwritten KV slot");
                h = mix(h, tok);
            }
            float* row = logits.data() + r * static_cast<size_t>(vocab_);
            for (int64_t v = 0; v < vocab_; ++v) row[v] = logit(h, v);
            if (nan_for_first_token >= 0 && b.token_ids[t] == nan_for_first_token && pos == 0) row[0] = NAN;
        }
        return ok();
    }

    std::atomic<int64_t> steps{0};
    std::atomic<bool> fail_next{false};
    std::atomic<int> step_delay_ms{0};
    std::atomic<int64_t> max_tokens_seen{0};
    std::atomic<int64_t> block_copies{0};
    std::atomic<int64_t> tokens_run{0};
    int32_t nan_for_first_token = -1;  // a one-token prompt of this id gets a NaN logit

private:
    int64_t vocab_;
    int block_size_;
    std::mutex mu_;
    std::vector<int32_t> slots_;  // [n_blocks * block_size] token id written at each slot
};

}  // namespace hr::testing

// Uploader: how the loader streams weights into backend memory. Reader threads ask for a slot, write
// the bytes of up to two destinations (a tensor's data rows and their scales) into it, and commit it;
// the backend copies committed slots while other slots are being filled. A CPU backend hands out the
// destination itself (the bytes are written in place: no staging copy); the CUDA backend hands out
// pinned host buffers allocated once and copies them on several streams (backend/cuda/uploader.cpp).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/dtype.h"

namespace hr {

struct UploadSlot {
    uint8_t* p0 = nullptr;  // write n0 bytes here: they land at dst0
    uint8_t* p1 = nullptr;  // write n1 bytes here: they land at dst1 (null when n1 == 0)
    int id = -1;            // the uploader's buffer (-1: written in place)
};

class Uploader {
public:
    virtual ~Uploader() = default;
    // Largest n0 + n1 of one acquire() (after 256-byte alignment of n0); 0: unlimited (in place).
    virtual size_t slot_bytes() const = 0;
    // Blocks until a buffer is free. Thread-safe; a slot is filled by the one thread that acquired it.
    virtual UploadSlot acquire(void* dst0, size_t n0, void* dst1, size_t n1) = 0;
    // The slot's bytes are written: copy them to their destinations (asynchronously). Thread-safe.
    virtual void commit(const UploadSlot& s) = 0;
    // Every committed copy has landed.
    virtual void finish() = 0;

    // Quantize-on-load on the device (int8, bit-identical to quant::quantize_row_q8): true when this
    // uploader can take rows of `cols` columns. Then a slot filled with [rows, cols] source values (f32,
    // f16 or bf16, as in the checkpoint) is committed with commit_q8, which writes int8 rows to q and
    // their f32 scales to scales instead of copying bytes.
    virtual bool device_q8(int64_t cols) const {
        (void)cols;
        return false;
    }
    virtual void commit_q8(const UploadSlot& s, DType src, int64_t rows, int64_t cols, void* q, void* scales) {
        (void)s, (void)src, (void)rows, (void)cols, (void)q, (void)scales;
    }
    // After finish(): some row met a non-finite value (left unwritten; the caller redoes it on the host
    // for the error message).
    virtual bool device_q8_failed() const { return false; }
};

// Host-addressable backend memory: the destination is the slot.
class InPlaceUploader final : public Uploader {
public:
    size_t slot_bytes() const override { return 0; }
    UploadSlot acquire(void* dst0, size_t, void* dst1, size_t) override {
        return {static_cast<uint8_t*>(dst0), static_cast<uint8_t*>(dst1), -1};
    }
    void commit(const UploadSlot&) override {}
    void finish() override {}
};

// Any backend, through its synchronous upload(): heap buffers, one copy per commit. The fallback for a
// backend without its own uploader.
template <class UploadFn>
class CopyUploader final : public Uploader {
public:
    CopyUploader(UploadFn upload, size_t slot_bytes, int n_slots) : upload_(std::move(upload)), bytes_(slot_bytes) {
        bufs_.resize(static_cast<size_t>(n_slots));
        for (int i = 0; i < n_slots; ++i) {
            bufs_[static_cast<size_t>(i)].reset(new uint8_t[slot_bytes]);
            free_.push_back(i);
        }
        dst_.resize(static_cast<size_t>(n_slots));
    }
    size_t slot_bytes() const override { return bytes_; }
    UploadSlot acquire(void* dst0, size_t n0, void* dst1, size_t n1) override {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !free_.empty(); });
        const int i = free_.back();
        free_.pop_back();
        uint8_t* b = bufs_[static_cast<size_t>(i)].get();
        const size_t a0 = (n0 + 255) / 256 * 256;
        dst_[static_cast<size_t>(i)] = {dst0, n0, dst1, n1, a0};
        return {b, n1 ? b + a0 : nullptr, i};
    }
    void commit(const UploadSlot& s) override {
        const Dst d = dst_[static_cast<size_t>(s.id)];
        if (d.n0) upload_(d.dst0, s.p0, d.n0);
        if (d.n1) upload_(d.dst1, s.p1, d.n1);
        std::lock_guard lock(mu_);
        free_.push_back(s.id);
        cv_.notify_one();
    }
    void finish() override {}

private:
    struct Dst {
        void* dst0;
        size_t n0;
        void* dst1;
        size_t n1;
        size_t a0;
    };
    UploadFn upload_;
    size_t bytes_;
    std::vector<std::unique_ptr<uint8_t[]>> bufs_;
    std::vector<Dst> dst_;
    std::vector<int> free_;
    std::mutex mu_;
    std::condition_variable cv_;
};

}  // namespace hr

// The load pipeline: weights go from the checkpoint's mapping to their place in the backend's weights
// region in row chunks, on several reader threads, through the backend's uploader (backend/uploader.h:
// pinned staging buffers and copy streams on CUDA, in place on the CPU). A reader fills a chunk straight
// into a staging buffer (a copy, a conversion or quantize-on-load of its rows), so reads, conversions and
// host-to-device copies of different chunks overlap and nothing holds a second copy of the model.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "backend/uploader.h"
#include "core/byte_progress.h"
#include "core/dtype.h"
#include "core/status.h"
#include "loader/load_memory.h"
#include "memory/plan.h"

namespace hr {

// Where one tensor lands and how it may be cut. Its data part is rows x data_row_bytes contiguous bytes,
// its scales rows x scale_row_bytes (0 when unquantized).
struct PipelineTensor {
    uint8_t* data = nullptr;    // destination in backend memory
    uint8_t* scales = nullptr;  // destination of the scales (null when none)
    int64_t rows = 1;
    uint64_t data_row_bytes = 0;
    uint64_t scale_row_bytes = 0;
    bool splittable = true;     // false: fill() must be called with the whole tensor (GGUF)
    // Set when int8 quantize-on-load runs on the device (Uploader::device_q8): readers copy the source
    // rows [rows, cols] as they are (q8_src_row_bytes each) and the uploader quantizes them; fill() is
    // not called for this tensor.
    const uint8_t* q8_src = nullptr;
    DType q8_src_dtype = DType::bf16;
    uint64_t q8_src_row_bytes = 0;
    int64_t cols = 0;
    uint64_t bytes() const { return static_cast<uint64_t>(rows) * (data_row_bytes + scale_row_bytes); }
};

// Writes rows [row0, row0 + n_rows) of tensor i: data_row_bytes per row to `data`, scale_row_bytes per
// row to `scales`. Called concurrently from reader threads (for different chunks).
using FillRows = std::function<Status(size_t i, int64_t row0, int64_t n_rows, uint8_t* data, uint8_t* scales)>;

struct PipelineOptions {
    int threads = 0;                      // reader threads; 0: one per core, at most kMaxLoadThreads
    uint64_t chunk_bytes = 0;             // chunk size when the uploader writes in place (0: kLoadSlotBytes)
    std::function<void()> on_wait;        // called on the waiting thread about every 100 ms (progress)
    ByteProgress* progress = nullptr;     // bytes landed so far (of every tensor's bytes())
    double injected_delay_s = 0;          // test only: this much wall time of sleep, spread over the chunks
    LoadMemory* memory = nullptr;         // counts the heap buffers of tensors whose rows exceed a slot
};

// Staging: each reader holds one buffer while filling it and kExtraSlots more are queued or copying
// (the plan's row "staging.load", memory/plan.h, counts the same).
inline constexpr int kMaxLoadThreads = kLoadMaxThreads;
inline constexpr uint64_t kLoadSlotBytes = 32ull << 20;
inline constexpr int kLoadExtraSlots = 4;
static_assert((kMaxLoadThreads + kLoadExtraSlots) * kLoadSlotBytes == kLoadStagingMaxHostBytes);
int load_threads(int requested);
// Pinned host bytes the staging buffers of a load take (the plan's host row "staging.load").
inline uint64_t load_staging_bytes(int threads) { return static_cast<uint64_t>(threads + kLoadExtraSlots) * kLoadSlotBytes; }

// Runs every tensor through fill() and the uploader; the first error stops the readers and is returned
// (the region's contents are then unspecified). up.finish() has been called when it returns.
Status run_load_pipeline(Uploader& up, std::span<const PipelineTensor> tensors, const FillRows& fill,
                         const PipelineOptions& opts);

}  // namespace hr

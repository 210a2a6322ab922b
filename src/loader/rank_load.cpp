// Each tensor-parallel rank's weights straight from the checkpoint (see rank_load.h).
#include "loader/rank_load.h"

#include <chrono>
#include <optional>

#include "core/log.h"
#include "io/safetensors.h"
#include "loader/checkpoint.h"
#include "loader/column_slice.h"
#include "loader/load_pipeline.h"
#include "memory/weight_format.h"
#include "model/shard.h"
#include "quant/formats.h"

namespace hr {

namespace {

using Cut = TensorSlice::Cut;

// The rank's part of `spec` as a spec of its own (its shape; a [n] vector stays one-dimensional).
TensorSpec rank_spec(const TensorSpec& spec, const TensorSlice& sl) {
    TensorSpec r = spec;
    if (sl.cut == Cut::rows) r.shape.front() = sl.size;
    if (sl.cut == Cut::cols) r.shape.back() = sl.size;
    return r;
}

// A column cut must fall on its storage format's block (shard_weights cuts stored blocks, never
// re-quantizes; a GGUF file may keep several ggml types, so each tensor is checked for its own).
Status check_column_blocks(const Checkpoint& ck, const RankShard& shard) {
    for (size_t i = 0; i < ck.specs.size(); ++i) {
        const TensorSlice sl = shard_slice(ck.cfg, shard, ck.specs[i]);
        if (sl.cut != Cut::cols) continue;
        const int64_t block = column_block(ck.storage[i]);
        if (sl.size % block != 0)
            return errorf("tensor parallel: '{}' would be split into slices of {} columns, not a multiple of the {} "
                          "block of {} columns", ck.specs[i].hf_name, sl.size, dtype_name(ck.storage[i]), block);
    }
    return ok();
}

struct RankLoadContext {
    const Checkpoint& ck;
    const ModelConfig& local;
    const LoadOptions& opts;
    int threads = 1;
    uint64_t slot_bytes = kLoadSlotBytes;
    ByteProgress& progress;
    const std::function<void()>& on_wait;
};

// One rank: its layout (the specs' order, data then scales of each 256-byte aligned, as load_model
// places a model), one allocation, then every tensor's part through the pipeline.
Result<RankWeights> load_rank(const RankLoadContext& c, const RankShard& shard, Backend& be) {
    const Checkpoint& ck = c.ck;
    const size_t n = ck.specs.size();
    std::vector<TensorSlice> slices(n);
    std::vector<TensorSpec> parts(n);
    std::vector<uint64_t> data_off(n), scale_off(n);
    uint64_t off = 0;
    for (size_t i = 0; i < n; ++i) {
        slices[i] = shard_slice(ck.cfg, shard, ck.specs[i]);
        parts[i] = rank_spec(ck.specs[i], slices[i]);
        const TensorBytes tb = stored_tensor_bytes(parts[i], ck.storage[i]);
        data_off[i] = off;
        scale_off[i] = off + tb.data;
        off += tb.total();
    }
    be.bind_thread();  // this rank's device current for its allocation (CUDA: one GPU per rank)
    RankWeights out;
    out.bytes = off;
    HR_ASSIGN(void* base, be.allocate(off, fmt::format("weights (tensor-parallel rank {})", shard.rank)));
    Backend* bep = &be;
    out.region = std::shared_ptr<void>(base, [bep](void* p) { bep->release(p); });
    auto* region = static_cast<uint8_t*>(base);

    HR_ASSIGN(std::unique_ptr<Uploader> up, be.make_uploader(c.slot_bytes, c.threads + kLoadExtraSlots));
    // Pinned staging on a GPU (none in place on the CPU): counted while the uploader lives.
    CountedBytes staging(c.opts.memory, up->slot_bytes() * static_cast<uint64_t>(c.threads + kLoadExtraSlots));
    std::vector<PipelineTensor> targets(n);
    for (size_t i = 0; i < n; ++i) {
        const int64_t rows = parts[i].rows(), cols = parts[i].cols();
        const DType st = ck.storage[i];
        PipelineTensor& t = targets[i];
        t.data = region + data_off[i];
        t.rows = rows;
        t.data_row_bytes = static_cast<uint64_t>(quant::weight_data_bytes(st, 1, cols));
        t.scale_row_bytes = static_cast<uint64_t>(quant::weight_scale_bytes(st, 1, cols));
        t.scales = t.scale_row_bytes ? region + scale_off[i] : nullptr;
        t.splittable = true;  // every source here fills any row range (GGUF too: GgufCheckpoint::fill_rows)
        // int8 quantize-on-load on the device for whole rows of a safetensors source (a row cut's rows are
        // contiguous in the checkpoint); a column cut needs its whole rows' scales: on the host.
        if (c.opts.device_quantize && !ck.gguf && !ck.prequantized && st == DType::q8 && slices[i].cut != Cut::cols &&
            ck.specs[i].shape.size() == 2) {
            const io::TensorInfo* src = ck.src[i];
            HR_ASSIGN(DType src_dt, io::computable_dtype(*src));
            const uint64_t src_row = static_cast<uint64_t>(cols) * dtype_size(src_dt);
            const int64_t first = slices[i].cut == Cut::rows ? slices[i].begin : 0;
            if (src_dt != st && up->device_q8(cols) && src_row + 256 <= c.slot_bytes) {
                t.q8_src = src->data + static_cast<uint64_t>(first) * src_row;
                t.q8_src_dtype = src_dt;
                t.q8_src_row_bytes = src_row;
                t.cols = cols;
            }
        }
    }
    LoadMemory* memory = c.opts.memory;
    FillRows fill = [&](size_t i, int64_t row0, int64_t n_rows, uint8_t* data, uint8_t* scales) -> Status {
        const TensorSlice& sl = slices[i];
        if (sl.cut == Cut::cols) return fill_column_slice(ck, i, sl.begin, sl.size, row0, n_rows, data, scales, memory);
        const int64_t first = sl.cut == Cut::rows ? sl.begin : 0;
        std::vector<float> f32;  // GGUF: the rows' dequantized values
        const CountedBytes f32_bytes(memory, ck.gguf ? static_cast<uint64_t>(n_rows * ck.specs[i].cols()) * sizeof(float) : 0);
        return ck.fill_rows(i, first + row0, n_rows, data, scales, f32);
    };
    PipelineOptions po;
    po.threads = c.threads;
    po.chunk_bytes = c.slot_bytes;
    po.progress = &c.progress;
    po.injected_delay_s = c.opts.injected_delay_s;
    po.on_wait = c.on_wait;
    po.memory = memory;
    Status st = run_load_pipeline(*up, targets, fill, po);
    const bool device_failed = up->device_q8_failed();
    up.reset();  // the staging buffers are freed as soon as the rank's weights have landed
    staging.release();
    HR_TRY(st);
    if (device_failed) {
        // A row the device could not quantize (a non-finite value): the host reference names it.
        for (size_t i = 0; i < n; ++i) {
            if (!targets[i].q8_src) continue;
            const int64_t first = slices[i].cut == Cut::rows ? slices[i].begin : 0;
            std::vector<uint8_t> d(targets[i].rows * targets[i].data_row_bytes), sc(targets[i].rows * 4);
            HR_TRY(convert_weight_rows(*ck.src[i], ck.specs[i], DType::q8, first, targets[i].rows, d.data(), sc.data()));
        }
        return errorf("{}: the device found a non-finite value while quantizing rank {} to int8, which the host did "
                      "not find again", ck.path, shard.rank);
    }
    be.synchronize();
    init_weights(c.local, out.weights);
    for (size_t i = 0; i < n; ++i) {
        Weight w;
        w.dtype = ck.storage[i];
        w.rows = parts[i].rows();
        w.cols = parts[i].cols();
        w.data = region + data_off[i];
        w.scales = (w.dtype == DType::q8 || w.dtype == DType::q4) ? region + scale_off[i] : nullptr;
        bind_weight(out.weights, ck.specs[i], w);
    }
    HR_TRY(finish_weights(c.local, out.weights));
    return out;
}

}  // namespace

Result<ShardedModel> load_sharded(const std::string& path, std::span<Backend* const> backends, const LoadOptions& opts) {
    const auto t0 = std::chrono::steady_clock::now();
    if (backends.empty()) return errorf("tensor parallel: no backends to load onto");
    if (opts.offload.any())
        return errorf("tensor parallel with experts in host memory (--offload-experts): not implemented");
    DeviceKind kind = DeviceKind::cpu;
    for (Backend* b : backends) {
        if (b->kind() == DeviceKind::cuda) kind = DeviceKind::cuda;
    }
    HR_ASSIGN(Checkpoint ck, Checkpoint::open(path, opts.weights, kind));
    HR_ASSIGN(const ShardPlan plan, plan_shards(ck.cfg, static_cast<int>(backends.size())));
    const ModelConfig local = shard_config(ck.cfg, plan);
    HR_TRY(check_column_blocks(ck, rank_shard(ck.cfg, plan, 0)));  // every rank's slices have rank 0's sizes

    ByteProgress local_progress;
    ByteProgress& progress = opts.progress ? *opts.progress : local_progress;
    // Bytes of every rank's weights (what lands), the progress total.
    uint64_t total = 0;
    for (int r = 0; r < plan.n_ranks; ++r) {
        const RankShard sh = rank_shard(ck.cfg, plan, r);
        for (size_t i = 0; i < ck.specs.size(); ++i)
            total += stored_tensor_bytes(rank_spec(ck.specs[i], shard_slice(ck.cfg, sh, ck.specs[i])), ck.storage[i]).total();
    }
    progress.start(total);
    ProgressPrinter printer(stderr, opts.progress_tty, "loading weights");
    const std::function<void()> on_wait = opts.log_progress ? std::function<void()>([&] { printer.update(progress.snapshot()); })
                                                            : std::function<void()>();
    // The loader's host memory is always counted here, so that the log line tells it (serve, generate).
    LoadMemory local_memory;
    LoadOptions counted = opts;
    if (!counted.memory) counted.memory = &local_memory;
    const RankLoadContext ctx{ck,
                              local,
                              counted,
                              load_threads(opts.threads),
                              opts.staging_bytes ? opts.staging_bytes : kLoadSlotBytes,
                              progress,
                              on_wait};
    ShardedModel out;
    for (int r = 0; r < plan.n_ranks; ++r) {
        HR_ASSIGN(RankWeights w, load_rank(ctx, rank_shard(ck.cfg, plan, r), *backends[static_cast<size_t>(r)]));
        out.ranks.push_back(std::move(w));
    }
    progress.finish();
    const ProgressSnapshot done = progress.snapshot();
    if (opts.log_progress) printer.finish(done);
    log_info("weights: {:.2f} GB in {:.2f} s ({:.2f} GB/s, {} reader threads; {} tensor-parallel ranks, each read "
             "its slices from the checkpoint; rank 0 {:.2f} GB; loader host memory peak {:.1f} MiB)",
             static_cast<double>(done.total) * 1e-9, done.seconds, done.bytes_per_s() * 1e-9, ctx.threads, plan.n_ranks,
             static_cast<double>(out.ranks.front().bytes) * 1e-9,
             static_cast<double>(counted.memory->peak()) / (1 << 20));
    out.model.cfg = ck.cfg;
    out.model.checkpoint_dtype = ck.checkpoint_dtype;
    out.model.weight_format = ck.weight_format;
    out.model.prequantized = ck.prequantized;
    out.model.weight_bytes = out.ranks.front().bytes;
    out.model.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

}  // namespace hr

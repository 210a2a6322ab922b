// Model loading: check the checkpoint against the config's tensor table, then convert/quantize each
// tensor into its storage dtype inside one backend allocation.
#include "loader/load.h"

#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensor_store.h"
#include "loader/checkpoint.h"
#include "loader/load_pipeline.h"
#include "loader/offload_compute_setup.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"
#include "quant/formats.h"

namespace hr {

uint64_t stored_weight_bytes(const ModelConfig& cfg, DType weight_format, DType checkpoint_dtype) {
    uint64_t total = 0;
    for (const TensorSpec& s : expected_tensors(cfg))
        total += stored_tensor_bytes(s, storage_dtype_for(s, weight_format, checkpoint_dtype, cfg.tensor_dtypes.get())).total();
    return total;
}

Result<LoadedModel> load_model(const std::string& dir, Backend& be, const LoadOptions& opts) {
    const auto t0 = std::chrono::steady_clock::now();
    LoadedModel m;
    HR_ASSIGN(Checkpoint ck, Checkpoint::open(dir, opts.weights, be.kind()));
    m.cfg = ck.cfg;
    m.checkpoint_dtype = ck.checkpoint_dtype;
    m.weight_format = ck.weight_format;
    m.prequantized = ck.prequantized;
    const std::vector<TensorSpec>& specs = ck.specs;
    const std::vector<DType>& storage = ck.storage;
    const std::optional<GgufCheckpoint>& gguf = ck.gguf;

    // Offsets in the one weights region, 256-byte aligned per part (as the planner counts them); the
    // offloaded experts (--offload-experts) get offsets in the one host region instead.
    if (opts.offload.any()) {
        if (!m.cfg.is_moe() || opts.offload.n_experts != m.cfg.n_experts ||
            static_cast<int64_t>(opts.offload.host_per_layer.size()) != m.cfg.n_layers)
            return errorf("--offload-experts: the expert placement was made for another model ({} experts per "
                          "layer, {} layers; this model has {} and {})", opts.offload.n_experts,
                          opts.offload.host_per_layer.size(), m.cfg.n_experts, m.cfg.n_layers);
        if (!opts.offload.host_mask.empty() &&
            static_cast<int64_t>(opts.offload.host_mask.size()) != m.cfg.n_layers * m.cfg.n_experts)
            return errorf("--offload-experts: the expert placement names {} experts, this model has {} layers x {}",
                          opts.offload.host_mask.size(), m.cfg.n_layers, m.cfg.n_experts);
    }
    std::vector<uint64_t> data_off(specs.size()), scale_off(specs.size());
    std::vector<bool> on_host(specs.size(), false);
    uint64_t off = 0, host_off = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& s = specs[i];
        const TensorBytes tb = stored_tensor_bytes(s, storage[i]);
        on_host[i] = s.role == TensorRole::expert && opts.offload.any() && opts.offload.is_host(s.layer, s.expert);
        uint64_t& o = on_host[i] ? host_off : off;
        data_off[i] = o;
        scale_off[i] = o + tb.data;
        o += tb.total();
    }
    m.weight_bytes = off;
    HR_ASSIGN(void* base, be.allocate(off, "weights"));
    Backend* bep = &be;
    m.region = std::shared_ptr<void>(base, [bep](void* p) { bep->release(p); });
    auto* region = static_cast<uint8_t*>(base);
    uint8_t* host_region = nullptr;
    if (host_off > 0) {
        HR_ASSIGN(void* hbase, be.allocate_host(host_off, "host experts"));
        m.host_region = std::shared_ptr<void>(hbase, [bep](void* p) { bep->release_host(p); });
        host_region = static_cast<uint8_t*>(hbase);
        m.host_bytes = host_off;
        m.offloaded_experts = opts.offload.n_host;
        // Every expert has the same three shapes: the staging buffers hold one expert's w1, w2, w3 each.
        HR_TRY(be.reserve_expert_staging(host_off / static_cast<uint64_t>(opts.offload.n_host)));
    }
    auto base_of = [&](size_t i) { return on_host[i] ? host_region : region; };

    // Every tensor through the load pipeline (load_pipeline.h): row chunks on reader threads, filled
    // straight into the uploader's staging buffers. The sources are resolved (and checked) here first.
    const int threads = load_threads(opts.threads);
    const uint64_t slot_bytes = opts.staging_bytes ? opts.staging_bytes : kLoadSlotBytes;
    HR_ASSIGN(std::unique_ptr<Uploader> up, be.make_uploader(slot_bytes, threads + kLoadExtraSlots));
    // Pinned staging on a GPU (none in place on the CPU).
    CountedBytes staging(opts.memory, up->slot_bytes() * static_cast<uint64_t>(threads + kLoadExtraSlots));
    std::vector<PipelineTensor> targets(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& s = specs[i];
        const int64_t rows = s.rows(), cols = s.cols();
        PipelineTensor& t = targets[i];
        t.data = base_of(i) + data_off[i];
        t.rows = rows;
        t.data_row_bytes = static_cast<uint64_t>(quant::weight_data_bytes(storage[i], 1, cols));
        t.scale_row_bytes = static_cast<uint64_t>(quant::weight_scale_bytes(storage[i], 1, cols));
        t.scales = t.scale_row_bytes ? base_of(i) + scale_off[i] : nullptr;
        // GGUF block formats are per-tensor conversions (dequantize, reorder): one fill per tensor.
        t.splittable = !gguf && s.shape.size() == 2;
        if (!gguf && !m.prequantized) {
            const io::TensorInfo* src = ck.src[i];
            // int8 quantize-on-load on the device when the uploader can: the link carries the source rows
            // and the host does no arithmetic (bit-identical: tests/parity/load_pipeline_parity_test.cpp).
            HR_ASSIGN(DType src_dt, io::computable_dtype(*src));
            const uint64_t src_row = static_cast<uint64_t>(cols) * dtype_size(src_dt);
            if (opts.device_quantize && !on_host[i] && storage[i] == DType::q8 && t.splittable && src_dt != storage[i] &&
                up->device_q8(cols) && src_row + 256 <= slot_bytes) {
                t.q8_src = src->data;
                t.q8_src_dtype = src_dt;
                t.q8_src_row_bytes = src_row;
                t.cols = cols;
            }
        }
    }
    FillRows fill = [&](size_t i, int64_t row0, int64_t n_rows, uint8_t* data, uint8_t* scales) -> Status {
        thread_local std::vector<float> scratch;
        // GGUF: one fill per tensor (not splittable), as it always was.
        if (gguf) return gguf->fill(i, storage[i], data, scales, scratch);
        return ck.fill_rows(i, row0, n_rows, data, scales, scratch);
    };

    ByteProgress local_progress;
    ByteProgress& progress = opts.progress ? *opts.progress : local_progress;
    uint64_t total = 0;
    for (const PipelineTensor& t : targets) total += t.bytes();
    progress.start(total);
    ProgressPrinter printer(stderr, opts.progress_tty, "loading weights");
    PipelineOptions po;
    po.threads = threads;
    po.chunk_bytes = slot_bytes;
    po.progress = &progress;
    po.injected_delay_s = opts.injected_delay_s;
    po.memory = opts.memory;
    if (opts.log_progress) po.on_wait = [&] { printer.update(progress.snapshot()); };
    Status st = ok();
    if (host_region == nullptr) {
        st = run_load_pipeline(*up, targets, fill, po);
    } else {
        // Offloaded experts are written in place into the host region by the readers (no staging, no
        // copy); the rest go through the backend's uploader as always. Two runs over disjoint tensors.
        std::vector<size_t> dev_idx, host_idx;
        std::vector<PipelineTensor> dev_t, host_t;
        for (size_t i = 0; i < specs.size(); ++i) {
            (on_host[i] ? host_idx : dev_idx).push_back(i);
            (on_host[i] ? host_t : dev_t).push_back(targets[i]);
        }
        auto sub_fill = [&fill](const std::vector<size_t>& idx) -> FillRows {
            return [&fill, &idx](size_t j, int64_t row0, int64_t n_rows, uint8_t* d, uint8_t* sc) {
                return fill(idx[j], row0, n_rows, d, sc);
            };
        };
        st = run_load_pipeline(*up, dev_t, sub_fill(dev_idx), po);
        if (st.ok()) {
            InPlaceUploader in_place;
            st = run_load_pipeline(in_place, host_t, sub_fill(host_idx), po);
        }
    }
    const bool device_failed = up->device_q8_failed();
    up.reset();  // the staging buffers are freed as soon as the weights have landed
    staging.release();
    if (!st.ok()) return st.error();
    if (device_failed) {
        // A row the device could not quantize (a non-finite value): the host reference names it.
        std::vector<uint8_t> d, sc;
        for (size_t i = 0; i < specs.size(); ++i) {
            if (!targets[i].q8_src) continue;
            d.resize(targets[i].rows * targets[i].data_row_bytes);
            sc.resize(targets[i].rows * targets[i].scale_row_bytes);
            HR_TRY(convert_weight(*ck.src[i], specs[i], storage[i], d.data(), sc.data()));
        }
        return errorf("{}: the device found a non-finite value while quantizing to int8, which the host did not "
                      "find again", dir);
    }
    be.synchronize();
    progress.finish();
    const ProgressSnapshot done = progress.snapshot();
    if (opts.log_progress) printer.finish(done);
    size_t on_device = 0;
    for (const PipelineTensor& t : targets) on_device += t.q8_src != nullptr;
    log_info("weights: {:.2f} GB in {:.2f} s ({:.2f} GB/s, {} reader threads, {})", static_cast<double>(done.total) * 1e-9,
             done.seconds, done.bytes_per_s() * 1e-9, threads,
             m.prequantized ? std::string("pre-quantized: copied as stored")
             : on_device    ? fmt::format("{} of {} tensors quantized to int8 on the device", on_device, specs.size())
             : (m.weight_format == DType::q8 || m.weight_format == DType::q4)
                 ? std::string("quantized on load on the host")
                 : std::string("converted on load where the dtype differs"));
    // Each tensor into the member its spec's slot names (by name, never by position in the table).
    init_weights(m.cfg, m.weights);
    for (size_t i = 0; i < specs.size(); ++i) {
        Weight w;
        w.dtype = storage[i];
        w.rows = specs[i].rows();
        w.cols = specs[i].cols();
        w.data = base_of(i) + data_off[i];
        w.scales = (storage[i] == DType::q8 || storage[i] == DType::q4) ? base_of(i) + scale_off[i] : nullptr;
        w.host = on_host[i];
        bind_weight(m.weights, specs[i], w);
    }
    HR_TRY(finish_weights(m.cfg, m.weights));
    if (opts.offload_compute && m.host_bytes > 0) {
        HR_ASSIGN(m.offload_compute, setup_offload_compute(be, m.cfg, m.weights, opts.offload, *opts.offload_compute));
    }
    m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

}  // namespace hr

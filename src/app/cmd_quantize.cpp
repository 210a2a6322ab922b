// `headroom quantize`: a bf16/f16/f32 model directory -> a pre-quantized int8/int4 model directory
// (format version 1, docs/formats.md) that loads without re-quantizing. Exit 0 on success, 1 on error.
// --calibrate: router statistics of calibration prompts recorded in the checkpoint (docs/memory.md,
// "Hot experts").
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "calibration_prompts.h"
#include "commands.h"
#include "loader/load.h"
#include "loader/router_stats.h"
#include "memory/expert_hits.h"
#include "tokenizer/tokenizer.h"
#include "model/gguf_config.h"
#include "quantize_gguf.h"
#include "core/byte_progress.h"
#include "core/log.h"
#include "io/tensor_store.h"
#include "memory/weight_format.h"
#include "model/config.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"

namespace hr::app {

namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
    std::string model;
    std::string weights;
    std::string out;
    bool force = false;
    std::string calibrate;           // FILE | DIR | builtin; empty: no router statistics
    int64_t calibrate_tokens = 20000;
};

// Files of a Hugging Face model directory that travel unchanged; config.json is required.
constexpr const char* kCopiedFiles[] = {"config.json",           "generation_config.json", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"};

int fail(const Error& e) {
    std::fprintf(stderr, "headroom quantize: error: %s\n", e.message.c_str());
    return 1;
}

Status prepare_out_dir(const fs::path& model, const fs::path& out, bool force) {
    std::error_code ec;
    if (fs::exists(out, ec) && fs::equivalent(model, out, ec))
        return errorf("--out '{}' is the model directory itself (expected a different directory)", out.string());
    if (fs::exists(out, ec) && !fs::is_directory(out, ec))
        return errorf("--out '{}' exists and is not a directory", out.string());
    for (const char* f : {"model.safetensors", "model.safetensors.index.json"}) {
        if (fs::exists(out / f, ec) && !force)
            return errorf("--out '{}' already holds {} (pass --force to replace it)", out.string(), f);
    }
    fs::create_directories(out, ec);
    if (ec) return errorf("cannot create --out '{}': {}", out.string(), ec.message());
    return ok();
}

// Calibration tokens done / total, as the load shows bytes: a bar redrawn in place on a terminal, else a
// log line every 10 s.
CalibrationProgress calibration_progress() {
    const bool tty = isatty(STDERR_FILENO) != 0;
    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    return [=](int64_t done, int64_t total) mutable {
        const auto now = std::chrono::steady_clock::now();
        const bool final = done >= total;
        if (!final && now - last < std::chrono::milliseconds(tty ? 100 : 10000)) return;
        last = now;
        const double secs = std::chrono::duration<double>(now - t0).count();
        const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
        const std::string eta =
            rate > 0 ? format_duration(static_cast<double>(total - done) / rate) : std::string("?");
        if (tty) {
            constexpr int kWidth = 30;
            const int filled = total > 0 ? static_cast<int>(kWidth * done / total) : 0;
            std::fprintf(stderr, "\rcalibrating: [%s%s] %lld/%lld tokens, %.0f tokens/s, ETA %s%s",
                         std::string(static_cast<size_t>(filled), '#').c_str(),
                         std::string(static_cast<size_t>(kWidth - filled), '.').c_str(), static_cast<long long>(done),
                         static_cast<long long>(total), rate, eta.c_str(), final ? "\n" : "");
            std::fflush(stderr);
        } else {
            log_info("calibrating: {}/{} tokens, {:.0f} tokens/s, ETA {}", done, total, rate, eta);
        }
    };
}

// Runs the calibration prompts through the model quantized to `format` on the CPU (the routing of the
// weights that will be served) and returns the router statistics as the metadata value.
Result<std::string> calibrate(const QuantizeArgs& a, DType format) {
    HR_ASSIGN(std::vector<std::string> prompts, read_calibration_prompts(a.calibrate));
    HR_ASSIGN(std::unique_ptr<Tokenizer> tok, Tokenizer::from_model_dir(a.model));
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& p : prompts) {
        HR_ASSIGN(std::vector<int32_t> t, tok->encode(p, /*add_special=*/true));
        ids.push_back(std::move(t));
    }
    std::unique_ptr<Backend> be = cpu::make_cpu_backend();
    LoadOptions lo;
    lo.weights = format;
    lo.log_progress = true;
    lo.progress_tty = isatty(STDERR_FILENO) != 0;
    HR_ASSIGN(LoadedModel m, load_model(a.model, *be, lo));
    const auto t0 = std::chrono::steady_clock::now();
    HR_ASSIGN(ExpertHits hits, count_expert_hits(*be, m, ids, a.calibrate_tokens, 2048, calibration_progress()));
    log_info("calibrated: {} tokens of {} prompts routed in {:.1f} s", hits.tokens, prompts.size(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return expert_hits_json(hits);
}

int run_quantize(const QuantizeArgs& a) {
    const auto t0 = std::chrono::steady_clock::now();
    Result<std::optional<DType>> wf = parse_weight_format(a.weights);
    if (!wf.ok()) return fail(wf.error());
    if (!wf->has_value() || (**wf != DType::q8 && **wf != DType::q4))
        return fail(errorf("--weights: expected int8 or int4, found '{}'", a.weights));
    const DType format = **wf;

    const fs::path model(a.model), out(a.out);
    if (!a.calibrate.empty() && a.calibrate_tokens <= 0)
        return fail(errorf("--calibrate-tokens: expected a positive number of tokens, found {}", a.calibrate_tokens));
    if (is_gguf_file(a.model)) {  // GGUF hook (quantize_gguf.h)
        if (!a.calibrate.empty())
            return fail(errorf("--calibrate: router statistics are recorded from a model directory only (found "
                               "the GGUF file '{}')", a.model));
        if (Status st = prepare_out_dir(model, out, a.force); !st.ok()) return fail(st.error());
        Result<QuantizeStats> stats = quantize_gguf(a.model, format, a.out);
        if (!stats.ok()) return fail(stats.error());
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("quantized %s -> %s (%s, format version %s) from its dequantized values: %lld tensors quantized, "
                    "%lld kept in f32; %.1f MiB -> %.1f MiB in %.1f s. The tokenizer stays in the GGUF file "
                    "(`headroom tokenize --model %s`); the directory holds config.json and model.safetensors\n",
                    a.model.c_str(), a.out.c_str(), std::string(dtype_name(format)).c_str(), kFormatVersion,
                    static_cast<long long>(stats->n_quantized), static_cast<long long>(stats->n_kept),
                    static_cast<double>(stats->bytes_in) / (1 << 20), static_cast<double>(stats->bytes_out) / (1 << 20),
                    secs, a.model.c_str());
        return 0;
    }
    Result<ModelConfig> cfg = load_model_config((model / "config.json").string());
    if (!cfg.ok()) return fail(cfg.error());
    Result<io::TensorStore> store = io::TensorStore::open(a.model);
    if (!store.ok()) return fail(store.error());
    Result<std::optional<DType>> pre = prequantized_format(store->metadata(), store->path());
    if (!pre.ok()) return fail(pre.error());
    if (pre->has_value())
        return fail(errorf("{}: the checkpoint is already quantized to {}; quantize the original bf16/f16/f32 "
                           "checkpoint instead",
                           store->path(), dtype_name(**pre)));
    Result<DType> ckpt = checkpoint_dtype(*store);
    if (!ckpt.ok()) return fail(ckpt.error());

    const std::vector<TensorSpec> specs = expected_tensors(*cfg);
    std::vector<DType> storage, as_checkpoint(specs.size(), *ckpt);
    for (const TensorSpec& s : specs) storage.push_back(storage_dtype_for(s, format, *ckpt));
    // Every tensor of the source must be one the model uses: nothing is silently dropped.
    if (Status st = check_stored_names(*store, specs, as_checkpoint); !st.ok()) return fail(st.error());

    if (Status st = prepare_out_dir(model, out, a.force); !st.ok()) return fail(st.error());
    std::map<std::string, std::string> extra;
    if (!a.calibrate.empty()) {
        if (!cfg->is_moe() || cfg->n_moe_layers() == 0)
            return fail(errorf("--calibrate: the model has no MoE layers (router statistics need experts)"));
        Result<std::string> hits = calibrate(a, format);
        if (!hits.ok()) return fail(hits.error());
        extra[kExpertHitsKey] = *hits;
    }
    // A line every 10 s, so that a long run (Mixtral-8x7B: 995 tensors, 93 GB read) shows it is alive.
    auto last = std::chrono::steady_clock::now();
    auto progress = [&](size_t done, size_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::seconds(10) || done == total) return;
        last = now;
        log_info("quantize: {}/{} tensors", done, total);
    };
    Result<QuantizeStats> stats =
        write_quantized_checkpoint(*store, specs, storage, format, (out / "model.safetensors").string(), progress,
                                   extra);
    if (!stats.ok()) return fail(stats.error());
    std::error_code ec;
    fs::remove(out / "model.safetensors.index.json", ec);  // a stale index would shadow the new file (--force)
    for (const char* f : kCopiedFiles) {
        if (!fs::exists(model / f, ec)) continue;
        fs::copy_file(model / f, out / f, fs::copy_options::overwrite_existing, ec);
        if (ec) return fail(errorf("cannot copy '{}' to '{}': {}", (model / f).string(), out.string(), ec.message()));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("quantized %s -> %s (%s, format version %s): %lld tensors quantized, %lld kept in %s; "
                "%.1f MiB -> %.1f MiB in %.1f s\n",
                a.model.c_str(), a.out.c_str(), std::string(dtype_name(format)).c_str(), kFormatVersion,
                static_cast<long long>(stats->n_quantized), static_cast<long long>(stats->n_kept),
                std::string(dtype_name(*ckpt)).c_str(), static_cast<double>(stats->bytes_in) / (1 << 20),
                static_cast<double>(stats->bytes_out) / (1 << 20), secs);
    return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<QuantizeArgs>();
    CLI::App* cmd = app.add_subcommand(
        "quantize", "Quantize a bf16/f16/f32 model directory to int8 or int4 and write a model directory that loads "
                    "without re-quantizing (docs/formats.md)");
    cmd->add_option("--model,-m", args->model, "model directory (config.json + safetensors) or a GGUF file")->required();
    cmd->add_option("--weights", args->weights, "int8 | int4")->required();
    cmd->add_option("--out,-o", args->out, "output directory (created if missing)")->required();
    cmd->add_flag("--force", args->force, "replace the model files of an existing --out directory");
    cmd->add_option("--calibrate", args->calibrate,
                    "record router statistics (MoE): run these prompts on the CPU (prefill) and store how often each "
                    "expert is selected, so that --offload-experts keeps the coldest in host memory; a .txt/.md "
                    "file, a .jsonl file (\"text\"/\"prompt\" per line), a directory of them, or `builtin`");
    cmd->add_option("--calibrate-tokens", args->calibrate_tokens,
                    "at most this many calibration tokens (default 20000; each prompt at most 2048)");
    cmd->callback([args, &exit_code] { exit_code = run_quantize(*args); });
}

}  // namespace hr::app

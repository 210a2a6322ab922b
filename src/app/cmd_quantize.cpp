// `headroom quantize`: a bf16/f16/f32 model directory -> a pre-quantized int8/int4 model directory
// (format version 1, docs/formats.md) that loads without re-quantizing. Exit 0 on success, 1 on error.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "commands.h"
#include "model/gguf_config.h"
#include "quantize_gguf.h"
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

int run_quantize(const QuantizeArgs& a) {
    const auto t0 = std::chrono::steady_clock::now();
    Result<std::optional<DType>> wf = parse_weight_format(a.weights);
    if (!wf.ok()) return fail(wf.error());
    if (!wf->has_value() || (**wf != DType::q8 && **wf != DType::q4))
        return fail(errorf("--weights: expected int8 or int4, found '{}'", a.weights));
    const DType format = **wf;

    const fs::path model(a.model), out(a.out);
    if (is_gguf_file(a.model)) {  // GGUF hook (quantize_gguf.h)
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
    // A line every 10 s, so that a long run (Mixtral-8x7B: 995 tensors, 93 GB read) shows it is alive.
    auto last = std::chrono::steady_clock::now();
    auto progress = [&](size_t done, size_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::seconds(10) || done == total) return;
        last = now;
        log_info("quantize: {}/{} tensors", done, total);
    };
    Result<QuantizeStats> stats =
        write_quantized_checkpoint(*store, specs, storage, format, (out / "model.safetensors").string(), progress);
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
    cmd->callback([args, &exit_code] { exit_code = run_quantize(*args); });
}

}  // namespace hr::app

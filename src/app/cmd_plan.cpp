// `headroom plan`: the memory plan of a model on a device, before anything is loaded.
// Exit 0 when it fits, 3 when it does not, 2 on bad input.
#include <cstdio>
#include <string>

#include "commands.h"
#include "memory/host_memory.h"
#include "memory/plan.h"
#include "memory/plan_report.h"
#include "model_args.h"
#include "memory/weight_format.h"
#include "model/builtin_models.h"

namespace hr::app {

namespace {

struct PlanArgs {
    std::string model;
    std::string weights = "auto";
    std::string kv_dtype;  // empty: f16 on a GPU, f32 on the CPU
    std::string gpu;
    std::string gpu_memory;
    std::string cpu_memory;
    std::string reserve;
    int64_t context = kDefaultContext;
    int64_t sequences = 1;
    int64_t prefill_chunk = kDefaultPrefillChunk;
    int block_size = 16;
    std::string offload_experts;  // empty: never offload
    std::string offload_compute = "auto";
    double cpu_expert_gbps = kDefaultCpuExpertGbps;
    int tensor_parallel = 1;
    bool json = false;
};

constexpr int kExitFits = 0;
constexpr int kExitBadInput = 2;
constexpr int kExitDoesNotFit = 3;

int fail(const Error& e) {
    std::fprintf(stderr, "headroom plan: error: %s\n", e.message.c_str());
    return kExitBadInput;
}

std::string device_list() {
    std::string s;
    for (const DeviceSpec& d : builtin_devices()) s += fmt::format("{}{}", s.empty() ? "" : ", ", d.name);
    return s;
}

int run_plan(const PlanArgs& a) {
    Result<ModelConfig> cfg = resolve_model_config(a.model);
    if (!cfg.ok()) return fail(cfg.error());

    PlanRequest req;
    Result<std::optional<DType>> wf = parse_weight_format(a.weights);
    if (!wf.ok()) return fail(wf.error());
    req.weight_format = *wf;

    if (!a.cpu_memory.empty()) {
        Result<uint64_t> bytes = parse_byte_size(a.cpu_memory, "--cpu-memory");
        if (!bytes.ok()) return fail(bytes.error());
        req.target = PlanTarget::cpu;
        req.budget_bytes = *bytes;
        req.device_name = fmt::format("CPU ({})", format_bytes(*bytes));
    } else if (!a.gpu_memory.empty()) {
        Result<uint64_t> bytes = parse_byte_size(a.gpu_memory, "--gpu-memory");
        if (!bytes.ok()) return fail(bytes.error());
        req.budget_bytes = *bytes;
        req.device_name = fmt::format("{} GPU", format_bytes(*bytes));
    } else {
        const std::string name = a.gpu.empty() ? "h100-80gb" : a.gpu;
        std::optional<DeviceSpec> dev = find_device(name);
        if (!dev) return fail(errorf("--gpu: unknown card '{}' (expected one of {}, or use --gpu-memory)", name, device_list()));
        req.budget_bytes = dev->memory_bytes;
        req.device_name = std::string(dev->name);
        req.host_link_gbps = dev->host_link_gbps;
        req.host_link = std::string(dev->host_link);
        req.device_gbps = dev->device_gbps;
        req.device_tflops = dev->device_tflops;
    }

    if (a.kv_dtype.empty()) {
        req.kv_dtype = req.target == PlanTarget::cpu ? DType::f32 : DType::f16;
    } else {
        Result<DType> kv = parse_kv_dtype(a.kv_dtype);
        if (!kv.ok()) return fail(kv.error());
        req.kv_dtype = *kv;
    }
    if (!a.reserve.empty()) {
        if (a.reserve == "0") {
            req.reserve_bytes = 0;
        } else {
            Result<uint64_t> bytes = parse_byte_size(a.reserve, "--reserve");
            if (!bytes.ok()) return fail(bytes.error());
            req.reserve_bytes = *bytes;
        }
    }
    req.context = a.context;
    req.sequences = a.sequences;
    req.prefill_chunk = a.prefill_chunk;
    req.block_size = a.block_size;
    req.tensor_parallel = a.tensor_parallel;
    if (!a.offload_experts.empty()) {
        Result<OffloadRequest> o = parse_offload_experts(a.offload_experts);
        if (!o.ok()) return fail(o.error());
        req.offload = *o;
    }
    Result<OffloadCompute> oc = parse_offload_compute(a.offload_compute);
    if (!oc.ok()) return fail(oc.error());
    req.offload_compute = *oc;
    req.cpu_expert_gbps = a.cpu_expert_gbps;
    // A checkpoint directory's router statistics choose which experts go to the host, for the flag and for
    // the offload alternatives (model_args.h). Unusable statistics are an error only with the flag.
    Result<std::shared_ptr<const ExpertHits>> hits = checkpoint_expert_hits(a.model, *cfg);
    if (!hits.ok() && req.offload) return fail(hits.error());
    if (hits.ok()) req.expert_hits = *hits;
    // The pinned host.experts region (the flag, or an offload alternative) is checked against this
    // machine's MemAvailable (planning for another machine: HEADROOM_MEM_AVAILABLE=bytes acts out that host).
    req.host_available_bytes = read_mem_available();

    Result<MemoryPlan> plan = plan_memory(*cfg, req);
    if (!plan.ok()) return fail(plan.error());
    const std::string text = a.json ? format_plan_json(*plan, a.model) : format_plan_table(*plan, a.model);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    // GGUF hook: the plan sizes the file's own formats; the CUDA backend cannot run them yet (loader/load.cpp).
    if (req.target == PlanTarget::gpu && cfg->tensor_dtypes && is_ggml_block_dtype(plan->weight_format))
        std::fprintf(stderr, "headroom plan: note: --device cuda does not run GGUF block formats (%s) yet: loading "
                             "this file on a GPU needs --weights int8 or --weights int4 (plan those instead)\n",
                     std::string(dtype_name(plan->weight_format)).c_str());
    return plan->fits ? kExitFits : kExitDoesNotFit;
}

}  // namespace

void add_plan_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<PlanArgs>();
    CLI::App* cmd = app.add_subcommand(
        "plan", "Plan memory for a model on a device before loading it: every region in bytes, whether it fits, and "
                "what would fit instead (exit 0 fits, 3 does not fit, 2 bad input)");
    cmd->add_option("--model,-m", args->model, "built-in name, config.json, model directory or GGUF file")->required();
    cmd->add_option("--weights", args->weights, "bf16 | f16 | int8 | int4 | auto (best quality that fits)")
        ->capture_default_str();
    cmd->add_option("--kv-cache,--kv-dtype", args->kv_dtype,
                    "KV cache: f16 | bf16 | f32 | int8 | fp8 (int8/fp8 with an f32 scale per token and kv head; "
                    "default f16 on a GPU, f32 on CPU)");
    auto* gpu = cmd->add_option("--gpu", args->gpu, "built-in card: " + device_list() + " (default h100-80gb)");
    auto* gpu_mem = cmd->add_option("--gpu-memory", args->gpu_memory, "GPU memory instead of a card: 24GiB, 23.5GB, 24G (G = GiB)");
    auto* cpu_mem = cmd->add_option("--cpu-memory", args->cpu_memory, "plan for the CPU backend with this much host memory");
    gpu->excludes(gpu_mem)->excludes(cpu_mem);
    gpu_mem->excludes(cpu_mem);
    cmd->add_option("--context", args->context, "tokens per sequence (prompt + output)")->capture_default_str();
    cmd->add_option("--sequences", args->sequences, "concurrent sequences")->capture_default_str();
    cmd->add_option("--prefill-chunk", args->prefill_chunk, "prompt tokens per step")->capture_default_str();
    cmd->add_option("--block-size", args->block_size, "tokens per KV block")->capture_default_str();
    cmd->add_option("--reserve", args->reserve,
                    "memory left free for the CUDA context and libraries (default 1.5GiB on a GPU, 0 on CPU)");
    cmd->add_option("--offload-experts", args->offload_experts,
                    "MoE experts kept in pinned host memory: auto (the fewest that fit) or a number of (layer, "
                    "expert) instances, spread evenly over the layers; never without this flag");
    cmd->add_option("--offload-compute", args->offload_compute,
                    "batch-1 decode with --offload-experts: gpu (the GPU reads the host experts over the link), cpu "
                    "(the CPU computes them next to the GPU's work) or auto (the faster by the rates; the plan shows "
                    "both predictions)")
        ->capture_default_str();
    cmd->add_option("--cpu-expert-gbps", args->cpu_expert_gbps,
                    "the host's rate computing an expert for --offload-compute predictions (expert bytes per second, "
                    "GB/s; serve measures its own at start-up)")
        ->capture_default_str();
    cmd->add_option("--tensor-parallel", args->tensor_parallel,
                    "plan one GPU of N that split the model (heads and FFN columns; docs/parallel.md): every "
                    "region per GPU. Not implemented on GPUs yet")
        ->capture_default_str();
    cmd->add_flag("--json", args->json, "print the plan as JSON");
    cmd->callback([args, &exit_code] { exit_code = run_plan(*args); });
}

}  // namespace hr::app

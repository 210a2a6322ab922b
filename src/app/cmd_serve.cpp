// `headroom serve`: plan, load, warm up, then serve the OpenAI-compatible API until SIGTERM/SIGINT,
// which drains requests in flight for a grace period and ends the rest with an explicit error.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <thread>

#include "classify/classify.h"
#include "classify/label_scorer.h"
#include "commands.h"
#include "core/log.h"
#include "io/tensor_store.h"
#include "loader/load.h"
#include "memory/host_memory.h"
#include "memory/plan.h"
#include "memory/units.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "model_args.h"
#include "runtime/engine.h"
#include "runtime/fault_injection.h"
#include "runtime/forward_runner.h"
#include "model/shard.h"
#include "tensor_parallel.h"
#include "server/api_key.h"
#include "server/api_server.h"
#include "model/gguf_config.h"
#include "tokenizer/tokenizer.h"
#ifdef HEADROOM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace hr::app {

namespace {

struct ServeArgs {
    ModelArgs model;
    std::string host = "127.0.0.1";
    int port = 8080;
    int64_t context = 0;  // 0: min(kDefaultContext, max_position_embeddings)
    int64_t sequences = 8;
    int64_t prefill_chunk = kDefaultPrefillChunk;
    int64_t max_queue = 64;
    std::string api_key;
    std::string api_key_file;
    std::string memory;  // budget for the plan; default: host RAM (cpu) or the card's total (cuda)
    std::string served_name;
    double grace_s = 30;
    double stall_timeout_s = 300;
    int64_t max_body = 2 * 1024 * 1024;
    std::string allowed_hosts;    // comma-separated
    std::string allowed_origins;  // comma-separated
    int max_connections = 512;
    int tensor_parallel = 1;  // > 1: N ranks of --device (docs/parallel.md)
    double header_timeout_s = 10;
    double body_timeout_s = 30;
    bool prefix_cache = true;
    bool quantize_on_gpu = false;
};

constexpr int kExitBadInput = 2;
// POST /v1/classify takes at most this many labels of this many tokens each (a request policy: their
// KV blocks come from the engine's pool, reserved when the request is admitted).
constexpr int64_t kServeClassifyLabels = std::min<int64_t>(static_cast<int64_t>(kMaxClassifyLabels), 16);
constexpr int64_t kServeClassifyLabelTokens = 32;
constexpr int kExitEngineDead = 3;

Result<std::string> read_api_key(const ServeArgs& a) {
    if (!a.api_key.empty()) return server::normalize_api_key(a.api_key, "--api-key");
    if (a.api_key_file.empty()) return std::string();
    std::ifstream f(a.api_key_file, std::ios::binary);
    if (!f) return errorf("--api-key-file: cannot read the file");
    std::string text(4097, '\0');
    f.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(f.gcount()));
    if (text.size() > 4096) return errorf("--api-key-file: the file is larger than 4096 bytes (expected one key)");
    return server::normalize_api_key(text, "--api-key-file");
}

std::string dir_name(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    size_t p = dir.find_last_of('/');
    return p == std::string::npos ? dir : dir.substr(p + 1);
}

uint64_t host_memory_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

// Owns everything the engine borrows; declared in dependency order so destruction is safe.
struct Served {
    std::unique_ptr<Backend> be;
    std::unique_ptr<Tokenizer> tok;
    LoadedModel model;
    void* act_base = nullptr;
    void* kv_base = nullptr;
    Activations act;
    KvCache kv;
    std::unique_ptr<ForwardRunner> runner;
    // --tensor-parallel N > 1: the ranks (backends, communicators, runner) instead of be/act/kv/runner;
    // model then holds only the model's description (cfg, formats), its weights are the ranks'.
    std::unique_ptr<TensorParallelSetup> tp;
    ModelRunner* model_runner = nullptr;  // runner or tp->runner: what the engine drives
    std::unique_ptr<Engine> engine;
    std::unique_ptr<LabelScorer> scorer;  // POST /v1/classify: score groups in the engine's scheduler
    server::ClassifierSetup classifier;
    ~Served() {
        // Stopped first, the engine answers every pending score at once, so the scorer's holds end.
        if (engine) engine->stop();
        scorer.reset();
        engine.reset();
        if (be && act_base) be->release(act_base);
        if (be && kv_base) be->release(kv_base);
    }
    // Backends whose memory the warm-up checks for allocations (every rank's with tensor parallel).
    uint64_t allocation_count() const {
        if (!tp) return be->allocation_count();
        uint64_t n = 0;
        for (const auto& b : tp->backends) n += b->allocation_count();
        return n;
    }
    Backend& first_backend() const { return tp ? *tp->backends.front() : *be; }
};

Status load_and_start(const ServeArgs& a, Served& s, server::PlannedBytes& planned, server::StartupStatus& startup) {
    const auto t0 = std::chrono::steady_clock::now();
    HR_ASSIGN(s.tok, Tokenizer::from_model_dir(a.model.model_dir));
    // A broken chat template refuses to start (its own error), instead of failing every chat request.
    HR_TRY(s.tok->check_chat_template());
    HR_ASSIGN(ModelConfig cfg, is_gguf_file(a.model.model_dir) ? load_gguf_model_config(a.model.model_dir)  // GGUF hook
                                                              : load_model_config(a.model.model_dir + "/config.json"));
    const bool cuda = a.model.device == "cuda";
    const int n_ranks = a.tensor_parallel;
    PlanRequest req;
    req.tensor_parallel = n_ranks;  // > 1: the plan is one rank's (every rank's is the same size)
    HR_ASSIGN(req.weight_format, weights_option(a.model.weights));
    if (!req.weight_format && !is_gguf_file(a.model.model_dir)) {
        // auto on a pre-quantized checkpoint (`headroom quantize` output) is its own format: the plan's
        // auto would pick bf16, which the loader refuses to make from int8/int4.
        HR_ASSIGN(io::TensorStore store, io::TensorStore::open(a.model.model_dir));
        HR_ASSIGN(req.weight_format, prequantized_format(store.metadata(), store.path()));
    }
    req.target = cuda ? PlanTarget::gpu : PlanTarget::cpu;
    if (!a.memory.empty()) {
        HR_ASSIGN(req.budget_bytes, parse_byte_size(a.memory, "--memory"));
    } else if (cuda) {
#ifdef HEADROOM_HAVE_CUDA
        HR_ASSIGN(cuda::DeviceMemory dm, cuda::query_device_memory(0));
        req.budget_bytes = dm.total;  // the reserve region covers the context and the driver
#else
        return errorf("--device cuda: this build of headroom has no CUDA backend (built without nvcc)");
#endif
    } else {
        // Every CPU rank lives in this process's memory: each gets its share of the host's.
        req.budget_bytes = host_memory_bytes() / static_cast<uint64_t>(n_ranks);
    }
    req.device_name = cuda ? (n_ranks > 1 ? fmt::format("cuda:0..{} (each)", n_ranks - 1) : "cuda:0")
                           : (n_ranks > 1 ? fmt::format("cpu ({} ranks, each)", n_ranks) : "cpu");
    HR_ASSIGN(req.kv_dtype, kv_cache_option(a.model, cuda ? DType::f16 : DType::f32));
    req.context = a.context > 0 ? a.context : std::min<int64_t>(kDefaultContext, cfg.max_position_embeddings);
    req.sequences = a.sequences;
    req.prefill_chunk = a.prefill_chunk;
    req.suggest = false;
    if (!a.model.offload_experts.empty()) {
        HR_ASSIGN(req.offload, parse_offload_experts(a.model.offload_experts));
        HR_ASSIGN(req.expert_hits, checkpoint_expert_hits(a.model.model_dir, cfg));  // the coldest go to the host
        req.host_available_bytes = read_mem_available();
    }
    HR_ASSIGN(req.offload_compute, offload_compute_option(a.model));
    HR_ASSIGN(MemoryPlan plan, plan_memory(cfg, req));
    if (plan.offload.any() && plan.prediction)
        log_info("--offload-experts: {} experts in pinned host memory ({}, {}); predicted decode (plan's stated rates, "
                 "before the start-up probe) {:.1f} tokens/s with the GPU reading them, {:.1f} with the CPU computing them",
                 plan.offload.n_host, format_bytes(plan.host_bytes),
                 plan.offload.measured() ? "the coldest by the checkpoint's router statistics"
                                         : "uniform routing assumed",
                 1e3 / plan.prediction->decode_gpu_ms, 1e3 / plan.prediction->decode_cpu_ms);
    if (!plan.fits) {
        return errorf("the plan needs {} but the budget is {} (short by {}); try `headroom plan` for alternatives",
                      format_bytes(plan.total_bytes), format_bytes(plan.budget_bytes),
                      format_bytes(plan.shortfall_bytes()));
    }

#ifdef HEADROOM_HAVE_CUDA
    if (cuda) {
        // Another process may hold memory since the card's total was read (RELIABILITY #101): what we
        // allocate ourselves (everything but the reserve) must be free now, or we refuse to start. With
        // tensor parallel on every rank's GPU.
        if (n_ranks > 1 && cuda::cuda_device_count() < n_ranks)
            return errorf("--tensor-parallel {}: {} CUDA devices found", n_ranks, cuda::cuda_device_count());
        const uint64_t ours = plan.total_bytes - plan.kind_bytes(RegionKind::reserve);
        for (int d = 0; d < n_ranks; ++d) {
            HR_ASSIGN(cuda::DeviceMemory dm, cuda::query_device_memory(d));
            if (dm.free < ours)
                return errorf("the plan allocates {} on cuda:{} but only {} is free (short by {}); another process "
                              "holds device memory", format_bytes(ours), d, format_bytes(dm.free),
                              format_bytes(ours - dm.free));
        }
    }
#endif
    LoadOptions lo{.weights = plan.weight_format};
    lo.offload = plan.offload;
    HR_ASSIGN(lo.offload_compute, offload_compute_option(a.model));
    lo.log_progress = true;
    lo.progress_tty = isatty(STDERR_FILENO) != 0;
    lo.progress = &startup.weights();
    lo.device_quantize = a.quantize_on_gpu;
    HR_ASSIGN(lo.injected_delay_s, load_delay_from_env());
    startup.set_phase(server::StartupPhase::loading);
    uint64_t act_bytes = 0, kv_bytes = 0;  // one device's (one rank's)
    if (n_ranks > 1) {
        HR_ASSIGN(s.tp, load_tensor_parallel(a.model.device, n_ranks, a.model.model_dir, lo,
                                             TensorParallelOptions{.limits = plan.limits,
                                                                   .n_kv_blocks = plan.kv_blocks,
                                                                   .block_size = plan.block_size,
                                                                   .kv_dtype = plan.kv_dtype}));
        s.model = s.tp->model;  // the description: cfg and formats (no weights region of its own)
        const ModelConfig& local = s.tp->runner->rank_config();
        act_bytes = activation_bytes(local, plan.limits);
        kv_bytes = kv_cache_bytes(local, plan.kv_blocks, plan.block_size, plan.kv_dtype);
        s.model_runner = s.tp->runner.get();
        log_info("tensor parallel: {} ranks on {}, {} each (weights {})", n_ranks, a.model.device,
                 format_bytes(s.tp->runner->rank_bytes(0)), format_bytes(s.tp->runner->rank_weight_bytes(0)));
    } else {
        HR_ASSIGN(s.be, make_backend(a.model.device));
        HR_ASSIGN(s.model, load_model(a.model.model_dir, *s.be, lo));
    }
    const ModelConfig& mc = s.model.cfg;
    if (s.tok->vocab_size() > mc.vocab_size) {
        return errorf("the tokenizer has {} ids but the model's head has {} rows", s.tok->vocab_size(), mc.vocab_size);
    }
    if (n_ranks == 1) {
        act_bytes = activation_bytes(mc, plan.limits);
        kv_bytes = kv_cache_bytes(mc, plan.kv_blocks, plan.block_size, plan.kv_dtype);
        HR_ASSIGN(s.act_base, s.be->allocate(act_bytes, "activations"));
        HR_ASSIGN(s.kv_base, s.be->allocate(kv_bytes, "kv cache"));
        s.act = carve_activations(mc, plan.limits, s.act_base);
        s.kv = carve_kv_cache(mc, plan.kv_blocks, plan.block_size, plan.kv_dtype, s.kv_base);
#ifdef HEADROOM_HAVE_CUDA
        if (auto* cb = dynamic_cast<cuda::CudaBackend*>(s.be.get())) {
            // Classification runs through the scheduler: its steps are engine steps, within max_tokens.
            HR_TRY(reserve_cuda_workspace(*cb, mc, plan.limits.max_tokens));
        }
#endif
        s.runner = std::make_unique<ForwardRunner>(*s.be, s.model.cfg, s.model.weights, plan.limits, s.act, s.kv);
        // Decode steps as recorded graphs (CUDA): recorded now, before the engine's warm-up step checks that
        // serving allocates nothing. (Not yet on the tensor-parallel path: docs/parallel.md.)
        HR_ASSIGN(const int64_t n_graphs, s.runner->record_decode_graphs(plan.limits.max_seqs));
        if (n_graphs > 0) log_info("decode steps of 1 to {} tokens recorded as graphs", n_graphs);
        s.model_runner = s.runner.get();
    }
    EngineConfig ec;
    ec.limits = {.max_tokens_per_step = plan.limits.max_tokens,
                 .max_seqs = plan.limits.max_seqs,
                 .max_blocks_per_seq = plan.limits.max_blocks_per_seq};
    ec.n_kv_blocks = plan.kv_blocks;
    ec.block_size = plan.block_size;
    ec.max_queue = a.max_queue;
    ec.context = plan.context;
    ec.n_valid_tokens = s.tok->vocab_size();
    ec.prefix_caching = a.prefix_cache;
    s.engine = std::make_unique<Engine>(ec, *s.model_runner);
    HR_TRY(s.engine->start());

    // Classification needs no memory of its own: its sequences live in the engine's KV cache.
    s.scorer = std::make_unique<LabelScorer>(*s.engine);
    s.classifier = {s.scorer.get(), kServeClassifyLabels, kServeClassifyLabelTokens};

    // Warm-up: one real request through the whole path (also measures the step time that deadline
    // admission uses). Nothing may allocate backend memory from here on. Its prompt is long enough for
    // the prefill kernels (tensor-core attention and GEMMs), so the driver loads their code now (CUDA
    // loads a kernel at its first launch), not during a client's request.
    startup.set_phase(server::StartupPhase::warming);
    const uint64_t allocs = s.allocation_count();
    GenerationRequest warm;
    const int64_t warm_len = std::min<int64_t>({64, plan.context - 2, plan.limits.max_tokens});
    warm.prompt.push_back(s.tok->bos_id().value_or(0));
    for (int64_t i = 1; i < warm_len; ++i)
        warm.prompt.push_back(static_cast<int32_t>(
            1 + (i * 7919) % (std::min<int64_t>(s.model.cfg.vocab_size, s.tok->vocab_size()) - 1)));
    warm.max_tokens = 2;
    warm.sampling.temperature = 0;
    SubmitResult sub = s.engine->submit(std::move(warm));
    if (auto* e = std::get_if<SubmitError>(&sub)) return errorf("warm-up refused: {}", e->message);
    auto stream = std::get<std::shared_ptr<RequestStream>>(sub);
    while (true) {
        auto ev = stream->next(std::chrono::milliseconds(1000));
        if (!ev) continue;
        if (ev->kind == StreamEvent::Kind::finished) {
            if (ev->reason != FinishReason::length && ev->reason != FinishReason::stop) {
                return errorf("warm-up failed: {}", ev->error);
            }
            break;
        }
    }
    if (s.allocation_count() != allocs) {
        return errorf("the engine allocated backend memory during warm-up ({} allocations before, {} after{})", allocs,
                      s.allocation_count(), n_ranks > 1 ? ", all ranks" : "");
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log_info("model loaded in {:.2f} s (weights {} {}, KV cache {} {} in {} blocks of {} tokens, activations {}; "
             "context {}, {} sequences, {} tokens per step)",
             secs, dtype_name(s.model.weight_format), format_bytes(s.model.weight_bytes), kv_dtype_name(plan.kv_dtype),
             format_bytes(kv_bytes),
             plan.kv_blocks, plan.block_size, format_bytes(act_bytes), plan.context, plan.limits.max_seqs,
             plan.limits.max_tokens);
    // With tensor parallel every rank's device holds the plan's regions (one rank's plan), shown per rank.
    for (int rank = 0; rank < n_ranks; ++rank)
        for (const PlanRegion& r : plan.regions) planned.push_back({r.name, r.bytes, n_ranks > 1 ? rank : -1});
    return ok();
}

int run_serve(const ServeArgs& a) {
    if (a.tensor_parallel < 1 || a.tensor_parallel > kMaxTensorParallel) {
        std::fprintf(stderr, "headroom serve: --tensor-parallel must be in [1, %d], found %d\n", kMaxTensorParallel,
                     a.tensor_parallel);
        return kExitBadInput;
    }
    if (a.tensor_parallel > 1 && !a.model.offload_experts.empty()) {
        std::fprintf(stderr, "headroom serve: --offload-experts with --tensor-parallel %d: not implemented (expected "
                             "one of the two)\n", a.tensor_parallel);
        return kExitBadInput;
    }
    if (a.port < 0 || a.port > 65535) {
        std::fprintf(stderr, "headroom serve: --port must be in [0, 65535], found %d\n", a.port);
        return kExitBadInput;
    }
    if (!(a.grace_s >= 0) || !(a.stall_timeout_s >= 0) || a.max_queue < 0 || a.max_body <= 0) {
        std::fprintf(stderr, "headroom serve: --grace, --stall-timeout, --max-queue must be >= 0 and --max-body > 0\n");
        return kExitBadInput;
    }
    if (a.max_connections < 1 || !(a.header_timeout_s > 0) || !(a.body_timeout_s > 0)) {
        std::fprintf(stderr, "headroom serve: --max-connections must be >= 1 and --header-timeout, --body-timeout > 0; "
                             "found %d, %g, %g\n", a.max_connections, a.header_timeout_s, a.body_timeout_s);
        return kExitBadInput;
    }
    Result<std::string> key = read_api_key(a);
    if (!key.ok()) {
        std::fprintf(stderr, "headroom serve: %s\n", key.error().message.c_str());
        return kExitBadInput;
    }
    // Signals are taken by sigtimedwait below; block them before any thread starts so none inherits them.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    server::ServerOptions opts;
    opts.host = a.host;
    opts.port = a.port;
    opts.model_name = a.served_name.empty() ? dir_name(a.model.model_dir) : a.served_name;
    opts.api_key = *key;
    opts.max_body_bytes = static_cast<size_t>(a.max_body);
    opts.stall_timeout_s = a.stall_timeout_s;
    opts.max_connections = a.max_connections;
    opts.header_timeout_s = a.header_timeout_s;
    opts.body_timeout_s = a.body_timeout_s;
    opts.allowed_hosts = server::http::split_list(a.allowed_hosts);
    opts.allowed_origins = server::http::split_list(a.allowed_origins);
    // Every request in flight holds an HTTP thread, so the pool covers the running set, the queue
    // and a margin for health checks and refusals.
    opts.threads = static_cast<int>(std::min<int64_t>(1024, a.sequences + a.max_queue + 16));
    auto srv = std::make_unique<server::ApiServer>(opts);
    Result<int> port = srv->start();
    if (!port.ok()) {
        std::fprintf(stderr, "headroom serve: %s\n", port.error().message.c_str());
        return kExitBadInput;
    }
    // note: this exact line is what scripts wait for (the port matters with --port 0).
    std::fprintf(stderr, "headroom serve: listening on http://%s:%d (loading)\n", a.host.c_str(), *port);
    std::fflush(stderr);

    Served s;
    server::PlannedBytes planned;
    Status st = load_and_start(a, s, planned, srv->startup());
    if (!st.ok()) {
        srv->mark_dead();
        std::fprintf(stderr, "headroom serve: %s\n", st.error().message.c_str());
        srv->stop();
        return kExitBadInput;
    }
    std::vector<int32_t> stop_ids;
    if (auto eos = s.tok->eos_id()) stop_ids.push_back(*eos);
    if (s.model.cfg.eos_token_id >= 0 && (stop_ids.empty() || stop_ids[0] != s.model.cfg.eos_token_id)) {
        stop_ids.push_back(static_cast<int32_t>(s.model.cfg.eos_token_id));
    }
    Backend* be = &s.first_backend();
    srv->set_offload(s.model.offloaded_experts, [be] { return be->host_stream_bytes(); });
    if (s.model.offload_compute) {
        const OffloadComputeChoice& c = *s.model.offload_compute;
        srv->set_offload_compute({.requested = std::string(offload_compute_name(c.requested)),
                                  .mode = std::string(c.mode_name()),
                                  .link_gbps = c.rates.link_gbps,
                                  .cpu_gbps = c.rates.cpu_gbps,
                                  .host_call_ms = c.rates.host_call_ms,
                                  .measured = c.rates.measured,
                                  .cpu_experts = [be] { return be->host_computed_experts(); }});
    }
    srv->attach(*s.engine, *s.tok, stop_ids, std::move(planned), s.classifier);
    std::fprintf(stderr, "headroom serve: ready on http://%s:%d (model %s)\n", a.host.c_str(), *port,
                 opts.model_name.c_str());
    std::fflush(stderr);

    int exit_code = 0;
    auto last_trim = std::chrono::steady_clock::now();
    while (true) {
        timespec ts{1, 0};
        int sig = sigtimedwait(&sigs, nullptr, &ts);
#ifdef __GLIBC__
        // Request-sized allocations on many HTTP threads leave free pages inside glibc's per-thread
        // arenas, which it does not return by itself: RSS crept ~7% in 10 minutes of soak and fell below
        // its warm-up value after malloc_trim (docs/reliability.md, "Soak"). Return them every 10 s.
        if (std::chrono::steady_clock::now() - last_trim >= std::chrono::seconds(10)) {
            malloc_trim(0);
            last_trim = std::chrono::steady_clock::now();
        }
#endif
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("received {}: draining (grace {:.1f} s)", sig == SIGTERM ? "SIGTERM" : "SIGINT", a.grace_s);
            break;
        }
        if (srv->engine_stalled()) {
            // The loop is stuck inside a step: nothing can be joined or drained. Exit so that a
            // supervisor restarts the server (the health endpoint already reported 503).
            log_error("the engine made no progress for {:.0f} s; exiting", a.stall_timeout_s);
            std::fflush(stderr);
            std::_Exit(kExitEngineDead);
        }
        if (s.engine->health() == EngineHealth::dead) {
            log_error("the engine failed; exiting so that a supervisor restarts the server");
            exit_code = kExitEngineDead;
            break;
        }
    }
    srv->shutdown(a.grace_s);
    s.engine->stop();
    if (s.tp && s.tp->runner->hung()) {
        // A rank is stuck inside a step (docs/parallel.md, failures): every client was told (the engine failed
        // them), but its thread cannot be joined, so no destructor may run.
        log_error("a tensor-parallel rank is stuck; exiting without cleanup");
        std::fflush(stderr);
        std::_Exit(kExitEngineDead);
    }
    log_info("stopped");
    return exit_code;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<ServeArgs>();
    CLI::App* cmd = app.add_subcommand("serve", "serve the OpenAI-compatible API (completions, chat, streaming)");
    add_model_options(*cmd, a->model);
    cmd->add_option("--host", a->host, "address to bind (default 127.0.0.1: loopback only)");
    cmd->add_option("--tensor-parallel", a->tensor_parallel,
                    "split the model over N ranks of --device (heads and FFN columns, docs/parallel.md): cuda uses "
                    "GPUs 0..N-1 over NCCL (unverified on GPUs yet), cpu runs N in-process ranks")
        ->capture_default_str();
    cmd->add_option("--port", a->port, "port (0: any free port)")->capture_default_str();
    cmd->add_option("--context", a->context, "tokens per sequence, prompt + output (default min(4096, model's))");
    cmd->add_option("--sequences", a->sequences, "concurrent sequences")->capture_default_str();
    cmd->add_option("--prefill-chunk", a->prefill_chunk, "tokens per step (prompt chunks + decodes)")
        ->capture_default_str();
    cmd->add_option("--max-queue", a->max_queue, "requests waiting for memory before 429")->capture_default_str();
    cmd->add_flag("--quantize-on-gpu", a->quantize_on_gpu,
                  "int8 quantize-on-load on the GPU (bit-identical to the host's; off until its parity test has run "
                  "on a GPU: docs/memory.md)");
    cmd->add_flag("--prefix-cache,!--no-prefix-cache", a->prefix_cache,
                  "reuse the KV blocks of prompts that start like earlier ones (default on)");
    auto* k = cmd->add_option("--api-key", a->api_key, "require Authorization: Bearer KEY on every route but /health, /ping");
    auto* kf = cmd->add_option("--api-key-file", a->api_key_file, "read the API key from the first line of a file");
    k->excludes(kf);
    cmd->add_option("--memory", a->memory, "memory budget for the plan (default: host RAM on cpu, the card's total on cuda)");
    cmd->add_option("--served-model-name", a->served_name, "the model id clients send (default: the directory name)");
    cmd->add_option("--grace", a->grace_s, "seconds requests in flight may finish after SIGTERM")->capture_default_str();
    cmd->add_option("--stall-timeout", a->stall_timeout_s,
                    "seconds without engine progress after which /health reports 503 and the process exits (0: never)")
        ->capture_default_str();
    cmd->add_option("--max-body", a->max_body, "largest request body in bytes, chunked or not (413 above)")
        ->capture_default_str();
    cmd->add_option("--allowed-hosts", a->allowed_hosts,
                    "comma-separated Host names accepted besides localhost and --host ('*': any); others get 403")
        ->capture_default_str();
    cmd->add_option("--allowed-origins", a->allowed_origins,
                    "comma-separated Origins (https://app.example) accepted besides those of allowed hosts ('*': any)")
        ->capture_default_str();
    cmd->add_option("--max-connections", a->max_connections,
                    "open client connections; at the cap the oldest idle one is closed, else 503")
        ->capture_default_str();
    cmd->add_option("--header-timeout", a->header_timeout_s,
                    "seconds a request header (or an idle keep-alive gap) may take")->capture_default_str();
    cmd->add_option("--body-timeout", a->body_timeout_s, "seconds a request body may take after its header")
        ->capture_default_str();
    cmd->callback([a, &exit_code] { exit_code = run_serve(*a); });
}

}  // namespace hr::app

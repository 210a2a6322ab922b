// `headroom generate`: a prompt (token ids or text) in, generated tokens out, with load time and tokens/s.
// With --json-schema the output is constrained to the schema (the server's constrained decoding).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>

#include "commands.h"
#include "core/log.h"
#include "loader/session.h"
#include "model_args.h"
#include "runtime/runner_session.h"
#include "runtime/sampler.h"
#include "backend/cpu/cpu_backend.h"
#include "tensor_parallel.h"
#include "structured/constrained_logits.h"
#include "structured/constraint_cache.h"
#include "structured/tokenizer_vocab.h"
#include "tokenizer/tokenizer.h"

namespace hr::app {

namespace {

struct GenerateArgs {
    ModelArgs model;
    std::string token_ids;
    std::string prompt;
    int64_t max_tokens = 32;
    SamplingParams sampling{.temperature = 0.0f};
    int64_t seed = -1;
    bool ignore_eos = false;
    std::string json_schema;  // file holding a JSON schema the output must match
    int tensor_parallel = 1;  // > 1: the model split over this many ranks of --device (docs/parallel.md)
};

// The schema file as JSON with its key order kept (properties come out in the order written).
Result<nlohmann::ordered_json> read_schema_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("--json-schema: cannot read '{}'", path);
    std::stringstream text;
    text << f.rdbuf();
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return errorf("--json-schema: '{}' is not valid JSON", path);
    if (!j.is_object()) return errorf("--json-schema: '{}' holds a JSON {}, expected an object (the schema)", path, j.type_name());
    return j;
}

// The mask for --json-schema, or nullopt without it.
Result<std::optional<ConstrainedLogits>> schema_constraint(const GenerateArgs& a, const Tokenizer& tok, int64_t head_vocab,
                                                           int32_t eos_id) {
    if (a.json_schema.empty()) return std::optional<ConstrainedLogits>();
    if (eos_id < 0) return errorf("--json-schema needs an end-of-sequence token; the model config has none");
    ConstraintSpec spec;
    spec.kind = ConstraintKind::json_schema;
    HR_ASSIGN(spec.schema, read_schema_file(a.json_schema));
    auto c = compile_constraint(spec);
    if (!c.ok()) return errorf("--json-schema: the schema cannot be used: {}", c.error().message);
    HR_ASSIGN(TokenVocab v, build_token_vocab(tok, std::min<int64_t>(head_vocab, tok.vocab_size()), eos_id));
    return std::optional<ConstrainedLogits>(std::in_place, *c, std::make_shared<const TokenVocab>(std::move(v)));
}

Status run_generate(GenerateArgs a) {
    if (a.max_tokens <= 0) return errorf("--max-tokens must be positive, found {}", a.max_tokens);
    if (a.token_ids.empty() == a.prompt.empty()) return errorf("give exactly one of --token-ids and --prompt");
    // note: past a complete answer the constraint allows only EOS, so ignoring it could never end well.
    if (a.ignore_eos && !a.json_schema.empty()) return errorf("--ignore-eos cannot be combined with --json-schema");
    if (a.seed >= 0) {
        a.sampling.seed = static_cast<uint64_t>(a.seed);
        a.sampling.has_seed = true;
    }
    HR_TRY(validate_sampling(a.sampling));
    HR_ASSIGN(auto weights, weights_option(a.model.weights));
    HR_ASSIGN(const DType kv_dtype, kv_cache_option(a.model, DType::f32));
    const bool tp = a.tensor_parallel > 1;
    if (a.tensor_parallel < 1) return errorf("--tensor-parallel: expected 1 or more, found {}", a.tensor_parallel);
    if (tp && !a.model.offload_experts.empty())
        return errorf("--offload-experts with --tensor-parallel {}: not implemented (expected one of the two)",
                      a.tensor_parallel);
    // Tensor parallel: each rank reads its slices from the checkpoint onto its own backend
    // (loader/rank_load.h); one device: the model on --device.
    std::unique_ptr<Backend> be;
    if (!tp) {
        HR_ASSIGN(be, make_backend(a.model.device));
    }

    // The tokenizer is optional with --token-ids (the ids are printed then), required with --prompt and
    // --json-schema (the constraint walks the tokens' bytes).
    std::unique_ptr<Tokenizer> tok;
    auto tr = Tokenizer::from_model_dir(a.model.model_dir);
    if (tr.ok()) tok = std::move(tr.value());
    else if (!a.prompt.empty() || !a.json_schema.empty()) return tr.take_error();

    std::vector<int32_t> ids;
    if (!a.prompt.empty()) {
        HR_ASSIGN(ids, tok->encode(a.prompt, true));
    } else {
        HR_ASSIGN(ids, parse_token_ids(a.token_ids));
    }

    const int64_t context = static_cast<int64_t>(ids.size()) + a.max_tokens;
    constexpr int64_t kChunk = 256;  // prompt tokens per step, as Session's default
    std::unique_ptr<TensorParallelSetup> ranks;
    LoadedModel m;
    if (tp) {
        TensorParallelOptions to;
        to.limits = StepLimits{.max_tokens = std::min(kChunk, context), .max_seqs = 1,
                               .max_blocks_per_seq = (context + 15) / 16};
        to.n_kv_blocks = to.limits.max_blocks_per_seq;
        to.kv_dtype = kv_dtype;
        HR_ASSIGN(ranks, load_tensor_parallel(a.model.device, a.tensor_parallel, a.model.model_dir,
                                              LoadOptions{.weights = weights}, to));
        m = ranks->model;  // the description (cfg, formats); each rank holds its weights
        log_info("tensor parallel: {} ranks on {}, {:.1f} MiB each", a.tensor_parallel, a.model.device,
                 static_cast<double>(ranks->runner->rank_bytes(0)) / (1 << 20));
    } else {
        HR_ASSIGN(ExpertPlacement offload, offload_placement(a.model, context));
        HR_ASSIGN(OffloadCompute offload_compute, offload_compute_option(a.model));
        HR_ASSIGN(m, load_model(a.model.model_dir, *be,
                                LoadOptions{.weights = weights, .offload = offload, .offload_compute = offload_compute}));
    }
    if (m.offloaded_experts > 0)
        log_info("{} experts in pinned host memory ({:.1f} MiB)", m.offloaded_experts,
                 static_cast<double>(m.host_bytes) / (1 << 20));
    log_info("model loaded in {:.2f} s ({} weights, {:.1f} MiB)", m.load_seconds, dtype_name(m.weight_format),
             static_cast<double>(m.weight_bytes) / (1 << 20));
    for (int32_t id : ids) {
        if (id >= m.cfg.vocab_size) return errorf("token id {} is outside the vocabulary [0, {})", id, m.cfg.vocab_size);
    }
    HR_ASSIGN(std::optional<ConstrainedLogits> constraint,
              tok ? schema_constraint(a, *tok, m.cfg.vocab_size, static_cast<int32_t>(m.cfg.eos_token_id)) : std::optional<ConstrainedLogits>());
    // One device: a Session; tensor parallel: a RunnerSession over the ranks' runner.
    std::unique_ptr<Session> session;
    std::unique_ptr<RunnerSession> tp_session;
    if (tp) {
        tp_session = std::make_unique<RunnerSession>(*ranks->runner, context, 16, kChunk);
    } else {
        HR_ASSIGN(session, Session::create(*be, m, {.context = context, .kv_dtype = kv_dtype}));
    }
    const auto append = [&](std::span<const int32_t> t, std::vector<float>& l) {
        return tp ? tp_session->append(t, l) : session->append(t, l, nullptr);
    };

    std::mt19937_64 rng(a.sampling.has_seed ? a.sampling.seed : std::random_device{}());
    std::vector<float> logits;
    const auto t0 = std::chrono::steady_clock::now();
    HR_TRY(append(ids, logits));
    const auto t1 = std::chrono::steady_clock::now();
    std::vector<int32_t> out;
    std::string finish = "length";
    for (int64_t i = 0; i < a.max_tokens; ++i) {
        if (constraint) {
            constraint->apply(logits, out);
            if (constraint->failed()) {
                return errorf("--json-schema: no token can continue the answer after {} tokens", out.size());
            }
            // note: the sampler refuses non-finite logits (as in the engine), so a masked token becomes the
            // lowest finite float: probability 0.
            for (float& v : logits) {
                if (v == -std::numeric_limits<float>::infinity()) v = std::numeric_limits<float>::lowest();
            }
        }
        HR_ASSIGN(int32_t next, sample_token(logits, a.sampling, rng));
        if (!a.ignore_eos && next == m.cfg.eos_token_id) {
            finish = "stop";
            break;
        }
        out.push_back(next);
        if (i + 1 < a.max_tokens) HR_TRY(append(std::span(&next, 1), logits));
    }
    const auto t2 = std::chrono::steady_clock::now();
    const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
    const double decode_s = std::chrono::duration<double>(t2 - t1).count();
    log_info("prompt {} tokens in {:.3f} s ({:.1f} tok/s); generated {} tokens in {:.3f} s ({:.1f} tok/s); finish {}",
             ids.size(), prefill_s, static_cast<double>(ids.size()) / prefill_s, out.size(), decode_s,
             out.empty() ? 0.0 : static_cast<double>(out.size()) / decode_s, finish);

    std::string id_list;
    for (size_t i = 0; i < out.size(); ++i) id_list += (i ? "," : "") + std::to_string(out[i]);
    if (tok) {
        HR_ASSIGN(std::string text, tok->decode(out, true));
        std::printf("%s\n", text.c_str());
        log_info("ids: {}", id_list);
    } else {
        std::printf("%s\n", id_list.c_str());
    }
    if (constraint && !constraint->state().is_complete()) {
        return errorf("--json-schema: --max-tokens {} ended the output before it matched the schema (raise --max-tokens)",
                      a.max_tokens);
    }
    return ok();
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<GenerateArgs>();
    CLI::App* cmd = app.add_subcommand("generate", "generate a continuation of a prompt");
    add_model_options(*cmd, a->model);
    cmd->add_option("--token-ids", a->token_ids, "prompt token ids, comma-separated");
    cmd->add_option("--prompt", a->prompt, "prompt text (tokenized with the model's tokenizer, BOS added)");
    cmd->add_option("--max-tokens", a->max_tokens, "tokens to generate");
    cmd->add_option("--temperature", a->sampling.temperature, "0 = greedy (default)");
    cmd->add_option("--top-p", a->sampling.top_p, "nucleus sampling mass, (0, 1]");
    cmd->add_option("--top-k", a->sampling.top_k, "keep the k most likely tokens (0 = all)");
    cmd->add_option("--seed", a->seed, "random seed (default: random)");
    cmd->add_flag("--ignore-eos", a->ignore_eos, "keep generating after the end-of-sequence token");
    cmd->add_option("--json-schema", a->json_schema,
                    "file holding a JSON schema; the output is constrained to match it (docs/structured-output.md)");
    cmd->add_option("--tensor-parallel", a->tensor_parallel,
                    "split the model over N ranks of --device (heads and FFN columns; docs/parallel.md): cuda uses "
                    "GPUs 0..N-1 over NCCL (unverified on GPUs yet), cpu runs N in-process ranks (for testing)")
        ->capture_default_str();
    cmd->callback([a, &exit_code] {
        Status st = run_generate(*a);
        if (!st.ok()) {
            std::fprintf(stderr, "headroom generate: %s\n", st.error().message.c_str());
            exit_code = 2;
        }
    });
}

}  // namespace hr::app

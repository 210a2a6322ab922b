// `headroom logits`: runs a prompt of token ids and writes the logits of every position (f32 [T, vocab]).
#include <cstdio>

#include "commands.h"
#include "core/log.h"
#include "io/safetensors_writer.h"
#include "loader/activation_dump.h"
#include "loader/session.h"
#include "model_args.h"

namespace hr::app {

namespace {

struct LogitsArgs {
    ModelArgs model;
    std::string token_ids;
    std::string out;
    std::string dump_dir;  // --dump-activations: empty = off
};

Status run_logits(const LogitsArgs& a) {
    HR_ASSIGN(auto ids, parse_token_ids(a.token_ids));
    HR_ASSIGN(auto weights, weights_option(a.model.weights));
    HR_ASSIGN(const DType kv_dtype, kv_cache_option(a.model, DType::f32));
    HR_ASSIGN(auto be, make_backend(a.model.device));
    HR_ASSIGN(ExpertPlacement offload, offload_placement(a.model, static_cast<int64_t>(ids.size())));
    HR_ASSIGN(OffloadCompute offload_compute, offload_compute_option(a.model));
    HR_ASSIGN(LoadedModel m, load_model(a.model.model_dir, *be,
                                        LoadOptions{.weights = weights, .offload = offload, .offload_compute = offload_compute}));
    for (int32_t id : ids) {
        if (id >= m.cfg.vocab_size) return errorf("--token-ids: id {} is outside the vocabulary [0, {})", id, m.cfg.vocab_size);
    }
    const int64_t T = static_cast<int64_t>(ids.size());
    HR_ASSIGN(auto s, Session::create(*be, m, {.context = T, .chunk = 256, .all_logits = true, .kv_dtype = kv_dtype}));
    ActivationDump dump(*be);
    if (!a.dump_dir.empty()) s->set_tap(dump.tap());
    std::vector<float> last, all;
    HR_TRY(s->append(ids, last, &all));
    if (!a.dump_dir.empty()) {
        HR_TRY(dump.write(a.dump_dir));
        log_info("wrote {} named activations to {}/activations.safetensors", dump.entries().size(), a.dump_dir);
    }
    io::TensorToWrite t{"logits", "F32", {T, m.cfg.vocab_size}, all.data(), all.size() * sizeof(float)};
    HR_TRY(io::write_safetensors(a.out, std::span(&t, 1), {}));
    log_info("wrote logits [{}, {}] to {}", T, m.cfg.vocab_size, a.out);
    return ok();
}

}  // namespace

void add_logits_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<LogitsArgs>();
    CLI::App* cmd = app.add_subcommand("logits", "write the logits of every prompt position to a safetensors file");
    add_model_options(*cmd, a->model);
    cmd->add_option("--token-ids", a->token_ids, "prompt token ids, comma-separated (e.g. 1,415,2936)")->required();
    cmd->add_option("--out", a->out, "output .safetensors file (tensor 'logits', f32 [T, vocab])")->required();
    cmd->add_option("--dump-activations", a->dump_dir,
                    "also write every layer's named intermediates (layer<l>.attn_out, .moe_out, ...) to "
                    "DIR/activations.safetensors, f32 [T, width] each");
    cmd->callback([a, &exit_code] {
        Status st = run_logits(*a);
        if (!st.ok()) {
            std::fprintf(stderr, "headroom logits: %s\n", st.error().message.c_str());
            exit_code = 2;
        }
    });
}

}  // namespace hr::app

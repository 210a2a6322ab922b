// headroom: entry point; dispatches to subcommands (one file each, see commands.h).
#include <cstdio>

#include "commands.h"

int main(int argc, char** argv) {
    CLI::App app{"headroom: plan-first LLM inference server (Mixtral, Llama, Mistral)"};
    app.require_subcommand(1);
    int exit_code = 0;
    hr::app::add_inspect_command(app, exit_code);
    hr::app::add_logits_command(app, exit_code);
    hr::app::add_generate_command(app, exit_code);
    hr::app::add_classify_command(app, exit_code);
    hr::app::add_plan_command(app, exit_code);
    hr::app::add_quantize_command(app, exit_code);
    hr::app::add_serve_command(app, exit_code);
    hr::app::add_tokenizer_commands(app, exit_code);
#ifdef HEADROOM_HAVE_CUDA
    hr::app::add_bench_command(app, exit_code);
#endif
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;  // usage errors exit 2
    }
    return exit_code;
}

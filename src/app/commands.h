// Subcommands of the `headroom` binary; each lives in its own cmd_<name>.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace hr::app {

// Each adder registers a subcommand whose callback sets the process exit code through `exit_code`.
void add_inspect_command(CLI::App& app, int& exit_code);
void add_logits_command(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_classify_command(CLI::App& app, int& exit_code);
void add_plan_command(CLI::App& app, int& exit_code);
void add_quantize_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);
void add_tokenizer_commands(CLI::App& app, int& exit_code);  // tokenize, detokenize, chat-template
#ifdef HEADROOM_HAVE_CUDA
void add_bench_command(CLI::App& app, int& exit_code);  // synthetic GPU benchmark
#endif

}  // namespace hr::app

// Each fp8lm subcommand lives in its own file and registers itself on the CLI11 app here.
// A command's callback returns the process exit code through `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace fp8lm::cli {

void add_selfcheck_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_chat_template_command(CLI::App& app, int& exit_code);

}  // namespace fp8lm::cli

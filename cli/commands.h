// Each fp8lm subcommand lives in its own file and registers itself on the CLI11 app here.
// A command's callback returns the process exit code through `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "fp8lm/status.h"

namespace fp8lm::cli {

void add_selfcheck_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_bench_one_batch_command(CLI::App* bench, int& exit_code);  // under `bench` (bench_one_batch.cpp)
void add_generate_command(CLI::App& app, int& exit_code);
void add_compare_reference_command(CLI::App& app, int& exit_code);
void add_write_reference_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_chat_template_command(CLI::App& app, int& exit_code);
void add_make_checkpoint_command(CLI::App& app, int& exit_code);

// `fp8lm info --model DIR` (model_info.cpp).
Status print_model_info(const std::string& dir);
Status print_preset_info(const std::string& preset);

}  // namespace fp8lm::cli

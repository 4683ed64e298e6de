// The `fp8lm` binary: one subcommand per job (see `fp8lm --help`).
#include <cstdio>
#include <exception>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"fp8lm: FP8 blockwise inference engine for Qwen3-FP8 checkpoints"};
  app.require_subcommand(1);
  int exit_code = 0;
  fp8lm::cli::add_selfcheck_command(app, exit_code);
  fp8lm::cli::add_info_command(app, exit_code);
  fp8lm::cli::add_bench_command(app, exit_code);
  fp8lm::cli::add_tokenize_command(app, exit_code);
  fp8lm::cli::add_chat_template_command(app, exit_code);
  fp8lm::cli::add_make_checkpoint_command(app, exit_code);
  fp8lm::cli::add_generate_command(app, exit_code);
  fp8lm::cli::add_compare_reference_command(app, exit_code);
  fp8lm::cli::add_write_reference_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fp8lm: error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}

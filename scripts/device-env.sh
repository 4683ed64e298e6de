# Sourced by the device scripts: makes the Debian packages carried in .deps/ (scripts/device-deps.sh)
# visible to CMake, pkg-config and the dynamic linker on the GPU machine.
if [ -d "$PWD/.deps/root/usr" ]; then
  FP8LM_DEPS=$PWD/.deps/root
  export CMAKE_PREFIX_PATH="$FP8LM_DEPS/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PATH="/usr/local/cuda/bin:$FP8LM_DEPS/usr/bin:$PATH"
  export PKG_CONFIG_LIBDIR="$FP8LM_DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$FP8LM_DEPS/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$FP8LM_DEPS"
  export LD_LIBRARY_PATH="$FP8LM_DEPS/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# What every device script shares: results go to $OUT (the device tool's folder that comes back)
# or ./device-out, and models written on the machine to $FP8LM_MODELS_DIR or /tmp/fp8lm-models.
out="${OUT:-$PWD/device-out}"
mkdir -p "$out"
models=${FP8LM_MODELS_DIR:-/tmp/fp8lm-models}

# CMake arguments for a build with only the sm_90a code (the GPU machines are Hopper; half the
# compile time of the default sm_89 + sm_90a).
SM90A_ONLY=-DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a

# The GPU machine's card into $out/gpu.txt (and the console).
log_gpu() { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"; }

# build/tests/fp8lm_gpu_tests on gtest FILTER, bounded by TIMEOUT seconds (default 600), output in
# $out/LOG; prints the summary, the failures and the time; returns the tests' exit code (124 when
# the timeout hit).
#   run_gpu_tests LOG FILTER [TIMEOUT]
run_gpu_tests() {
  local log=$1 filter=$2 limit=${3:-600} start rc
  start=$(date +%s)
  timeout "$limit" build/tests/fp8lm_gpu_tests --gtest_filter="$filter" >"$out/$log" 2>&1
  rc=$?
  tail -3 "$out/$log"
  grep -E "^\[  FAILED|Failure" -A4 "$out/$log" | head -40
  echo "gpu tests: rc=$rc, $(( $(date +%s) - start )) s"
  return "$rc"
}

# `fp8lm bench one-batch` on dummy weights of PRESET, its output in LOG; prints LABEL, the exit code
# and the seconds taken, then the summary lines (speed of light, errors).
#   run_one_batch LABEL PRESET LOG [bench one-batch arguments...]
run_one_batch() {
  local label=$1 preset=$2 log=$3 start rc
  shift 3
  start=$(date +%s)
  # A hung run (a kernel that never finishes) must not take the whole device call with it.
  timeout "${FP8LM_RUN_TIMEOUT:-300}" build/fp8lm bench one-batch --preset "$preset" --load-format dummy --out "$out" \
    "$@" >"$log" 2>&1
  rc=$?
  echo "$label (rc $rc, $(( $(date +%s) - start )) s):"
  grep -E "speed of light|error|fp8lm bench" "$log" | sed 's/^/  /'
}

# Configures and builds build/ in the current tree: CMake arguments from $FP8LM_CMAKE_ARGS, else
# DEFAULT_CMAKE_ARGS; the rest goes to `cmake --build` (e.g. --target fp8lm). Logs to
# $out/LOG_PREFIX{configure,build}.log; prints the time, or the errors and returns 1.
#   fp8lm_build LOG_PREFIX DEFAULT_CMAKE_ARGS [cmake --build arguments...]
fp8lm_build() {
  local prefix=$1 default_args=$2 start
  shift 2
  start=$(date +%s)
  # shellcheck disable=SC2086  # the CMake arguments are a word list
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${FP8LM_CMAKE_ARGS:-$default_args} \
    >"$out/${prefix}configure.log" 2>&1 || { tail -30 "$out/${prefix}configure.log"; return 1; }
  cmake --build build --parallel "$(nproc)" "$@" >"$out/${prefix}build.log" 2>&1 \
    || { grep -E "error" -A3 "$out/${prefix}build.log" | head -60; return 1; }
  echo "${prefix}build: $(( $(date +%s) - start )) s"
}

# The tokenizer files for dummy models (bench one-batch loads one): .cache/ is ignored, and the
# 11 MB tokenizer.json with .deps/ would pass the device tool's 64 MiB limit, so the caller may
# carry them gzipped in .carry/ (scripts/device-carry-tokenizer.sh makes it); unpacked here into
# .cache/tokenizer/qwen3 unless that is present already.
unpack_carried_tokenizer() {
  local dir=.cache/tokenizer/qwen3
  [ -f "$dir/tokenizer.json" ] || [ ! -f .carry/tokenizer.json.gz ] || {
    mkdir -p "$dir" && gunzip -c .carry/tokenizer.json.gz >"$dir/tokenizer.json" &&
      cp .carry/tokenizer_config.json "$dir/"
  }
}
unpack_carried_tokenizer  # every device script: bench one-batch and the engine need the tokenizer

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

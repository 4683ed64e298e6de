#!/usr/bin/env bash
# Installs the Debian packages fp8lm builds against. Idempotent and quiet when all is present.
# The CUDA 13 toolkit itself is expected at /usr/local/cuda (or wherever CUDACXX / PATH point).
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  nlohmann-json3-dev   # JSON (bench results, configs)
  libcli11-dev         # CLI parsing
  libfmt-dev           # formatting
  libgtest-dev         # tests
  libpcre2-dev         # tokenizer regex (Unicode classes, JIT)
  libicu-dev           # tokenizer NFC normalisation
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fp8lm setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "fp8lm setup: the CUDA 13 toolkit (nvcc) was not found; install it or put it on PATH" >&2
  exit 1
fi

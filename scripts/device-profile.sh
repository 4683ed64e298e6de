#!/usr/bin/env bash
# On the GPU machine, after fp8lm is built (build/fp8lm): where the time of a prefill and of decode
# steps goes, kernel by kernel. Runs `fp8lm bench one-batch --profile-steps` under Nsight Compute
# (GPU time of every kernel, graph nodes included, at the clocks the GPU runs at without the
# profiler: --clock-control none) and sums the times per kernel name. ncu runs kernels one at a
# time, so what overlaps in a real run (programmatic dependent launch) is not visible here.
#   scripts/device-profile.sh PRESET INPUT_LEN [DECODE_STEPS [TAG]]
# writes $OUT/profile-PRESET-INPUT[-TAG].{csv.gz,txt,log} (TAG: keeps profiles of several knob
# settings in one call apart).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
preset=$1 input=$2 steps=${3:-2}
name=profile-$preset-$input${4:+-$4}
csv=$out/$name.csv
ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$csv" \
  build/fp8lm bench one-batch --preset "$preset" --load-format dummy --input-len "$input" --output-len $((steps + 1)) \
  --profile-steps "$steps" --max-context $((input + steps + 64)) --out /tmp/profile-results \
  >"$out/$name.log" 2>&1 || { tail -20 "$out/$name.log"; exit 1; }
# The summary: scripts/profile-summary.py (the CSV stays next to it, gzipped, so the summary can be
# redone without the GPU).
python3 scripts/profile-summary.py "$csv" "$steps" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" \
  > "$out/$name.txt"
gzip -f "$csv"
cat "$out/$name.txt"

#!/usr/bin/env bash
# On the GPU machine, after fp8lm is built (build/fp8lm): where the time of a prefill and of decode
# steps goes, kernel by kernel. Runs `fp8lm bench one-batch --profile-steps` under Nsight Compute
# (GPU time of every kernel, graph nodes included, at the clocks the GPU runs at without the
# profiler: --clock-control none) and sums the times per kernel name. ncu runs kernels one at a
# time, so what overlaps in a real run (programmatic dependent launch) is not visible here.
#   scripts/device-profile.sh PRESET INPUT_LEN [DECODE_STEPS]     (writes $OUT/profile-PRESET-INPUT.{csv,txt})
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
preset=$1 input=$2 steps=${3:-2}
csv=$out/profile-$preset-$input.csv
ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$csv" \
  build/fp8lm bench one-batch --preset "$preset" --load-format dummy --input-len "$input" --output-len $((steps + 1)) \
  --profile-steps "$steps" --max-context $((input + steps + 64)) --out /tmp/profile-results \
  >"$out/profile-$preset-$input.log" 2>&1 || { tail -20 "$out/profile-$preset-$input.log"; exit 1; }
# The range holds the prefill (in chunks when the prompt is longer than a chunk) and then `steps`
# decode steps; each chunk and step starts with the embedding kernel, so launches are split into
# phases at each embed launch: the last `steps` are decode steps, the ones before prefill chunks.
python3 - "$csv" "$steps" <<'EOF' > "$out/profile-$preset-$input.txt"
import csv, re, sys, collections
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if l.startswith('"'))
        if r.get("Metric Name") == "gpu__time_duration.sum"]
phases, cur = [], None
for r in rows:
    name = re.sub(r"\(.*", "", r["Kernel Name"]).strip()
    if "embed_kernel" in name:
        cur = collections.OrderedDict(); phases.append(cur)
    if cur is None:
        continue
    unit = r["Metric Unit"]; v = float(r["Metric Value"].replace(",", ""))
    us = v * {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}[unit]
    t, c = cur.get(name, (0.0, 0)); cur[name] = (t + us, c + 1)
chunks = len(phases) - int(sys.argv[2])
for i, ph in enumerate(phases):
    total = sum(t for t, _ in ph.values())
    label = f"prefill chunk {i + 1} of {chunks}" if i < chunks else f"decode step {i - chunks + 1}"
    print(f"== {label}: {sum(c for _, c in ph.values())} kernels, {total:.1f} us of GPU time")
    for name, (t, c) in sorted(ph.items(), key=lambda kv: -kv[1][0])[:14]:
        print(f"  {t:10.1f} us {100 * t / total:5.1f}%  x{c:<5d} {name[:110]}")
EOF
cat "$out/profile-$preset-$input.txt"

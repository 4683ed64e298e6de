#!/usr/bin/env python3
"""Summarizes an Nsight Compute CSV written by scripts/device-profile.sh: GPU time per kernel name
for each prefill chunk and decode step, the prefill's chunks together, and the first launches of
the first decode step one by one (kernel, grid, time).

The profiled range holds the prefill (in chunks when the prompt is longer than a chunk) and then
`steps` decode steps; each chunk and step starts with the embedding kernel, so launches are split
into phases at each embed launch: the last `steps` are decode steps, the ones before prefill chunks.
Kernels run one at a time under the profiler, so what programmatic dependent launch overlaps in
a real run is counted in full here.

  profile-summary.py CSV[.gz] STEPS GPU_NAME
"""
import collections
import csv
import gzip
import re
import sys

FIRST_LAUNCHES = 12
UNITS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}


def main():
    path, steps, gpu = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [r for r in csv.DictReader(l for l in f if l.startswith('"'))
                if r.get("Metric Name") == "gpu__time_duration.sum"]
    phases = []  # per phase: list of (name, grid, us)
    for r in rows:
        name = re.sub(r"\(.*", "", r["Kernel Name"]).strip()
        if "embed_kernel" in name:
            phases.append([])
        if phases:
            us = float(r["Metric Value"].replace(",", "")) * UNITS[r["Metric Unit"]]
            phases[-1].append((name, r.get("Grid Size", ""), us))
    if len(phases) < steps:
        sys.exit(f"profile-summary: {len(phases)} embeddings in {path}, fewer than the {steps} decode steps asked for")
    chunks = len(phases) - steps
    print(f"# Nsight Compute, kernels one at a time at the GPU's own clocks: {gpu}")

    def summary(label, launches):
        per_name = collections.OrderedDict()
        for name, _, us in launches:
            t, c = per_name.get(name, (0.0, 0))
            per_name[name] = (t + us, c + 1)
        total = sum(us for _, _, us in launches) or 1.0  # an empty phase prints no rows
        print(f"== {label}: {len(launches)} kernels, {total:.1f} us of GPU time")
        for name, (t, c) in sorted(per_name.items(), key=lambda kv: -kv[1][0])[:14]:
            print(f"  {t:10.1f} us {100 * t / total:5.1f}%  x{c:<5d} {name[:110]}")

    for i, launches in enumerate(phases):
        summary(f"prefill chunk {i + 1} of {chunks}" if i < chunks else f"decode step {i - chunks + 1}", launches)
    if chunks > 1:
        summary(f"prefill, all {chunks} chunks", [l for ph in phases[:chunks] for l in ph])
    if steps > 0 and chunks < len(phases):
        print(f"== decode step 1, its first {FIRST_LAUNCHES} launches in order (the embedding, then layer 0)")
        for name, grid, us in phases[chunks][:FIRST_LAUNCHES]:
            print(f"  {us:8.1f} us  grid {grid:<14s} {name[:90]}")

if __name__ == "__main__":
    main()

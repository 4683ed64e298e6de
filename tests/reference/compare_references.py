#!/usr/bin/env python3
"""How far apart two reference files of qwen3_reference.py are (same model, same prompts), with the
measures of `fp8lm compare-reference`: per-position cosine similarity of the logits (over the
fixed vocabulary subset both files hold), top-1 agreement, and the first step where the greedy
continuations part (with the first file's top-2 margin there).

Comparing the fp32 reference with an fp64 one (`--precision fp64`) measures the noise floor of the
comparison: how much a last-bit change of the sums, amplified by every FP8 re-quantization after
it, moves this model's logits. No engine can be expected to agree with the fp32 reference better
than the fp32 reference agrees with exact arithmetic.

Usage: compare_references.py A.safetensors B.safetensors [--json FILE]
"""
import argparse
import json

import torch
from safetensors import safe_open


def load(path):
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--json")
    args = ap.parse_args()
    a, meta_a = load(args.a)
    b, meta_b = load(args.b)
    if not torch.equal(a["subset_ids"], b["subset_ids"]):
        raise SystemExit("the files use different vocabulary subsets (--seed)")
    rows = []
    p = 0
    while f"p{p}.ids" in a:
        if not torch.equal(a[f"p{p}.ids"], b[f"p{p}.ids"]):
            raise SystemExit(f"prompt {p} differs between the files")
        sa, sb = a[f"p{p}.subset_logits"].double(), b[f"p{p}.subset_logits"].double()
        cos = torch.nn.functional.cosine_similarity(sa, sb, dim=-1)
        top1 = (a[f"p{p}.top_ids"][:, 0] == b[f"p{p}.top_ids"][:, 0]).double().mean().item()
        ga, gb = a[f"p{p}.greedy_ids"], b[f"p{p}.greedy_ids"]
        diff = (ga != gb).nonzero()
        first = int(diff[0]) if len(diff) else None
        rows.append({"prompt": p, "tokens": len(a[f"p{p}.ids"]), "min_cosine": cos.min().item(),
                     "mean_cosine": cos.mean().item(), "top1_agreement": top1, "greedy_first_divergence": first,
                     "greedy_margin_there": None if first is None else float(a[f"p{p}.greedy_margins"][first]),
                     "greedy_steps": len(ga)})
        p += 1
    print(f"{args.a} ({meta_a.get('precision', 'fp32')}) vs {args.b} ({meta_b.get('precision', 'fp32')})")
    print("| prompt | tokens | min cosine | mean cosine | top-1 agreement | greedy: first divergence (margin) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        g = (f"identical ({r['greedy_steps']} tokens)" if r["greedy_first_divergence"] is None
             else f"step {r['greedy_first_divergence']} of {r['greedy_steps']} ({r['greedy_margin_there']:.3f})")
        print(f"| {r['prompt']} | {r['tokens']} | {r['min_cosine']:.6f} | {r['mean_cosine']:.6f} | "
              f"{100 * r['top1_agreement']:.2f}% | {g} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"a": args.a, "b": args.b, "meta_a": meta_a, "meta_b": meta_b, "prompts": rows}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Inputs and outputs of every op of every decoder layer, as the transformers reference computes
them (qwen3_reference.py's model: fake-quantized FP8 linears, fp32 attention), for one prompt of
random ordinary tokens. `fp8lm`'s op-by-op test (tests/cpu/transformers_ops_test.cpp) feeds each
op the reference's own input and compares the output, so a difference is pinned to one op instead
of being seen after it has spread through the layers.

Usage: dump_layer_ops.py --model DIR --out FILE [--tokens 64] [--seed 0]
"""
import argparse
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_reference as ref  # noqa: E402


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, config = ref.load_model(args.model)
    ids = np.random.RandomState(args.seed).randint(0, min(config.vocab_size, 151643), size=args.tokens)
    out = {"ids": torch.tensor(ids, dtype=torch.int32)}

    def keep(name, t):
        t = t[0] if isinstance(t, tuple) else t
        out[name] = t.detach().reshape(-1, t.shape[-1]).contiguous().cpu() if t.dim() != 4 else t.detach().cpu()

    def keep_io(name, inp, o):  # a forward hook must return None, or it replaces the module's output
        keep(name + ".in", inp)
        keep(name + ".out", o)

    hooks = []
    for i, layer in enumerate(model.model.layers):
        p = f"layers.{i}."
        for sub in ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                    "self_attn.q_norm", "self_attn.k_norm", "self_attn.o_proj", "post_attention_layernorm",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
            mod = layer.get_submodule(sub)
            hooks.append(mod.register_forward_hook(lambda m, inp, o, name=p + sub: keep_io(name, inp[0], o)))
        hooks.append(layer.register_forward_hook(lambda m, inp, o, name=p + "out": keep(name, o)))

    attention = ref.fp32_attention

    def recording_attention(module, query, key, value, attention_mask, **kw):
        o, w = attention(module, query, key, value, attention_mask, **kw)
        p = f"layers.{module.layer_idx}.attention."
        # [1, heads, tokens, head_dim] -> [tokens, heads * head_dim], as fp8lm's q and cache rows
        for name, t in (("q", query), ("k", key), ("v", value)):
            out[p + name] = t[0].transpose(0, 1).reshape(t.shape[2], -1).contiguous().cpu()
        out[p + "out"] = o[0].reshape(o.shape[1], -1).contiguous().cpu()
        return o, w

    ref.AttentionInterface.register("fp8lm_fp32", recording_attention)
    hooks.append(model.model.norm.register_forward_hook(lambda m, inp, o: keep("norm.out", o)))
    hooks.append(model.model.embed_tokens.register_forward_hook(lambda m, inp, o: keep("embed.out", o)))
    model.model(input_ids=torch.tensor(ids, device="cuda")[None], use_cache=True)
    for h in hooks:
        h.remove()
    save_file(out, args.out, metadata={"transformers": __import__("transformers").__version__,
                                       "torch": torch.__version__, "gpu": torch.cuda.get_device_name()})
    ref.log(f"wrote {len(out)} tensors to {args.out}")


if __name__ == "__main__":
    main()

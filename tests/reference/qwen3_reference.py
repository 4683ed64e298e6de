#!/usr/bin/env python3
"""Reference logits for a Qwen3 checkpoint from Hugging Face transformers (run on the GPU machine).

The reference computes what fp8lm's kernels compute, so that only summation order differs:
 - every linear of the decoder layers fake-quantizes its input per token per 128 channels
   (scale = max(amax, 1e-10) / 448, values rounded to e4m3 and back, kept in fp32) and multiplies
   it in fp32 (no TF32) with the FP8 weights dequantized in fp32 (weight * weight_scale_inv per
   128x128 block); the product is rounded to bf16, as fp8lm's GEMM rounds its fp32 accumulators;
 - attention runs in fp32 (scores, softmax and P.V), output rounded to bf16, as fp8lm's kernel;
 - the lm_head runs in fp32 on the final hidden states (bf16 logits would be coarser than the
   differences being measured).
Everything else (RMSNorm, RoPE, residuals, SiLU) is transformers' own bf16 code. Qwen3-MoE
(model_type qwen3_moe): each expert's linears as above; the router (mlp.gate) stays transformers'
bf16 Linear, and routing and the weighted sum are transformers' own code (modeling_qwen3_moe).
Works with transformers 4.x (one nn.Linear per expert) and >= 5 (experts as 3-D parameters, whose
forward is replaced by an equivalent loop over fake-quantized experts). Rounding
differences matter more than usual here: each FP8 re-quantization turns a last-bit difference of
its input into a whole FP8 step for that element, so small deviations grow layer by layer.
transformers' own FP8 path is not used (it would download kernels).

Writes a safetensors file that `fp8lm compare-reference` reads (its header comment lists the
tensors): per prompt the ids, the top-K logits of every position, the logits of a fixed random
vocabulary subset, and a greedy continuation with the top-2 margin of each step.

Usage: qwen3_reference.py --model DIR --out FILE [--prompts short,1024,8192] [--greedy 256]
                          [--top-k 64] [--subset 16384] [--seed 0]
"""
import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (AttentionInterface, AutoTokenizer, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM)
from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeRotaryEmbedding

FP8_MAX = 448.0
COMPUTE = torch.float32  # --precision
GROUP = 128
SHORT_PROMPT = "<|im_start|>user\nWhat is the capital of France, and why is it famous?<|im_end|>\n<|im_start|>assistant\n"


def log(msg):
    print(f"[reference {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fp32_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal GQA attention in fp32 ([batch, heads, tokens, head_dim] in, [batch, tokens, heads,
    head_dim] bf16 out), the queries being the last `t` positions of the `s` cached ones."""
    n_rep = query.shape[1] // key.shape[1]
    q = query.to(COMPUTE)
    k = key.to(COMPUTE).repeat_interleave(n_rep, dim=1)
    v = value.to(COMPUTE).repeat_interleave(n_rep, dim=1)
    t, s = q.shape[2], k.shape[2]
    mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(diagonal=s - t)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling)
    return out.transpose(1, 2).contiguous().to(query.dtype), None


AttentionInterface.register("fp8lm_fp32", fp32_attention)


def fake_quant(x):
    """Per-token, per-128-channel FP8 quantize-dequantize (fp32 out), as fp8lm's activation
    quantization."""
    shape, k = x.shape, x.shape[-1]
    xf = x.float().reshape(-1, k)
    pad = (-k) % GROUP
    if pad:
        xf = F.pad(xf, (0, pad))
    g = xf.view(xf.shape[0], -1, GROUP)
    amax = g.abs().amax(dim=-1, keepdim=True).clamp(min=1e-10)
    # Divide by a tensor, not by the Python number: PyTorch turns `tensor / 448.0` on CUDA into a
    # multiplication by fp32(1/448), whose rounding gives another scale than amax / 448 for some
    # amax values; then every element of the group near an FP8 rounding boundary (many, when amax
    # is 7 * 2^e) lands on the other side (tests/cpu/transformers_ops_test.cpp found this).
    scale = amax / torch.full_like(amax, FP8_MAX)
    deq = (g / scale).to(torch.float8_e4m3fn).float() * scale
    return deq.view(xf.shape[0], -1)[:, :k].reshape(shape)


def dequantize(w, scale_inv):
    """FP8 weights times their block scales, in fp32 (exact: 4 x 8 significant bits)."""
    n, k = w.shape
    if n % GROUP == 0 and k % GROUP == 0:
        blocks = w.float().view(n // GROUP, GROUP, k // GROUP, GROUP)
        return (blocks * scale_inv.float()[:, None, :, None]).view(n, k)
    s = scale_inv.float().repeat_interleave(GROUP, 0)[:n].repeat_interleave(GROUP, 1)[:, :k]
    return w.float() * s


def fp8_linear(x, w):
    """A linear of the decoder: the input fake-quantized, the product in COMPUTE precision, bf16 out."""
    return F.linear(fake_quant(x).to(COMPUTE), w.to(COMPUTE)).to(torch.bfloat16)


def weight(w, scale_inv):
    """The fp32 matrix of a linear's weight: dequantized at load (`scale_inv` None) or now, from the
    FP8 values kept on the GPU when the fp32 copies would not fit (the 14B and larger presets)."""
    return w if scale_inv is None else dequantize(w, scale_inv)


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("quantization_config", None)
    moe = cfg.get("model_type") == "qwen3_moe"
    config_class, model_class, rotary_class = (
        (Qwen3MoeConfig, Qwen3MoeForCausalLM, Qwen3MoeRotaryEmbedding) if moe
        else (Qwen3Config, Qwen3ForCausalLM, Qwen3RotaryEmbedding))
    config = config_class(**cfg)
    config._attn_implementation = "fp8lm_fp32"
    with torch.device("meta"):
        model = model_class(config)
    model.requires_grad_(False)
    # transformers >= 5 stores a layer's experts as 3-D parameters (experts.gate_up_proj [E, 2I, H],
    # experts.down_proj [E, H, I]); 4.x has one nn.Linear per expert (experts.{e}.gate_proj ...).
    fused_experts = moe and not any(".mlp.experts.0." in name for name in model.state_dict())
    tensors = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "*.safetensors"))):
        with safe_open(path, framework="pt", device="cuda") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    fp8_params = sum(t.numel() for t in tensors.values() if t.dtype == torch.float8_e4m3fn)
    lazy = 4 * fp8_params > 0.6 * torch.cuda.mem_get_info()[0]
    if lazy:
        log(f"{fp8_params / 1e9:.1f} G FP8 parameters: kept in FP8, dequantized at each use")
    state, scales = {}, {}
    for name in model.state_dict().keys():
        if name == "lm_head.weight" and name not in tensors and config.tie_word_embeddings:
            state[name] = tensors["model.embed_tokens.weight"].to(torch.bfloat16)
        elif name + "_scale_inv" in tensors:
            w, s = tensors[name], tensors[name + "_scale_inv"]
            state[name], scales[name] = (w, s) if lazy else (dequantize(w, s), None)
        elif fused_experts and name.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
            state[name], scales[name] = stacked_experts(tensors, name, config.num_experts, lazy)
        else:
            state[name] = tensors[name].to(torch.bfloat16)
    del tensors
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    with torch.device("cuda"):
        model.model.rotary_emb = rotary_class(config=config)
    for name, mod in model.named_modules():
        # The MoE router (mlp.gate) is not FP8 (modules_to_not_convert): it stays a bf16 Linear.
        if isinstance(mod, torch.nn.Linear) and ".layers." in name and not name.endswith(".mlp.gate"):
            # scales has no entry for a linear stored in bf16 (a BF16 checkpoint): no dequantization.
            mod.forward = (lambda m, s: (lambda x: fp8_linear(x, weight(m.weight, s))))(mod, scales.get(name + ".weight"))
        if fused_experts and name.endswith(".mlp.experts"):
            mod.forward = fused_experts_forward(mod, scales[name + ".gate_up_proj"], scales[name + ".down_proj"])
    return model.eval(), config


def stacked_experts(tensors, name, num_experts, lazy):
    """A transformers-5 expert parameter from the checkpoint's per-expert FP8 tensors:
    gate_up_proj [E, 2I, H] (gate rows first, as transformers chunks it) or down_proj [E, H, I],
    dequantized in fp32 (scales None) or kept in FP8 with its stacked scales (lazy)."""
    prefix = name[: -len("gate_up_proj")] if name.endswith("gate_up_proj") else name[: -len("down_proj")]
    parts = ["gate_proj", "up_proj"] if name.endswith("gate_up_proj") else ["down_proj"]
    def stack(suffix):
        return torch.stack([torch.cat([tensors[f"{prefix}{e}.{part}.weight{suffix}"] for part in parts])
                            for e in range(num_experts)])
    w, s = stack(""), stack("_scale_inv")
    if lazy:
        return w, s
    return torch.stack([dequantize(w[e], s[e]) for e in range(num_experts)]), None


def fused_experts_forward(mod, gate_up_scales, down_scales):
    """transformers-5 Qwen3MoeExperts.forward(hidden, top_k_index, top_k_weights) with each expert's
    linears fake-quantized like the dense ones. Experts run in increasing index and each adds
    bf16(output * bf16 weight) into a bf16 sum (index_add_), as modeling_qwen3_moe 4.x does."""
    def forward(hidden_states, top_k_index, top_k_weights):
        final = torch.zeros_like(hidden_states)
        weights = top_k_weights.to(hidden_states.dtype)
        for e in range(mod.gate_up_proj.shape[0]):
            token_idx, slot = torch.where(top_k_index == e)
            if token_idx.numel() == 0:
                continue
            x = hidden_states[token_idx]
            gate_up = weight(mod.gate_up_proj[e], None if gate_up_scales is None else gate_up_scales[e])
            down = weight(mod.down_proj[e], None if down_scales is None else down_scales[e])
            gate, up = fp8_linear(x, gate_up).chunk(2, dim=-1)
            out = fp8_linear(mod.act_fn(gate) * up, down)
            final.index_add_(0, token_idx, out * weights[token_idx, slot, None])
        return final
    return forward


def make_prompts(spec, model_dir, vocab, seed):
    rng = np.random.RandomState(seed)
    prompts = []
    for item in spec.split(","):
        if item == "short":
            tok = AutoTokenizer.from_pretrained(model_dir)
            prompts.append(tok(SHORT_PROMPT, add_special_tokens=False)["input_ids"])
        else:  # random ordinary tokens (below the first special id)
            prompts.append(rng.randint(0, min(vocab, 151643), size=int(item)).tolist())
    return prompts


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompts", default="short,1024,8192")
    ap.add_argument("--greedy", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=64)
    ap.add_argument("--subset", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--precision", choices=["fp32", "fp64"], default="fp32",
                    help="arithmetic of the linears, attention and lm_head; fp64 measures how far the fp32 "
                         "reference itself is from exact sums (compare_references.py)")
    args = ap.parse_args()
    global COMPUTE
    COMPUTE = torch.float64 if args.precision == "fp64" else torch.float32

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    model, config = load_model(args.model)
    log(f"loaded {args.model} in {time.time() - t0:.1f} s")
    head = model.lm_head.weight.to(COMPUTE)  # [vocab, hidden]
    vocab = head.shape[0]
    subset = torch.from_numpy(np.random.RandomState(args.seed + 1).permutation(vocab)[: args.subset].astype(np.int32))
    subset_cuda = subset.long().cuda()
    out = {"subset_ids": subset}
    for p, ids in enumerate(make_prompts(args.prompts, args.model, vocab, args.seed)):
        t1 = time.time()
        ids_t = torch.tensor(ids, dtype=torch.long, device="cuda")[None]
        res = model.model(input_ids=ids_t, use_cache=True)
        hidden = res.last_hidden_state[0]  # [T, hidden] bf16, after the final norm
        tops_i, tops_v, subs = [], [], []
        for b in range(0, hidden.shape[0], args.chunk):
            logits = (hidden[b : b + args.chunk].to(COMPUTE) @ head.T).float()
            v, i = torch.topk(logits, args.top_k, dim=-1)
            tops_i.append(i.int().cpu())
            tops_v.append(v.cpu())
            subs.append(logits[:, subset_cuda].cpu())
        greedy, margins = [], []
        cache, h = res.past_key_values, hidden[-1]
        for _ in range(args.greedy):
            logits = (h.to(COMPUTE) @ head.T).float()
            v, i = torch.topk(logits, 2)
            greedy.append(int(i[0]))
            margins.append(float(v[0] - v[1]))
            step = model.model(input_ids=i[:1].view(1, 1), past_key_values=cache, use_cache=True)
            cache, h = step.past_key_values, step.last_hidden_state[0, -1]
        out[f"p{p}.ids"] = torch.tensor(ids, dtype=torch.int32)
        out[f"p{p}.top_ids"] = torch.cat(tops_i).contiguous()
        out[f"p{p}.top_logits"] = torch.cat(tops_v).contiguous()
        out[f"p{p}.subset_logits"] = torch.cat(subs).contiguous()
        out[f"p{p}.greedy_ids"] = torch.tensor(greedy, dtype=torch.int32)
        out[f"p{p}.greedy_margins"] = torch.tensor(margins, dtype=torch.float32)
        log(f"prompt {p}: {len(ids)} tokens, {args.greedy} greedy steps in {time.time() - t1:.1f} s")
        del res, cache
    meta = {"model": os.path.abspath(args.model), "transformers": __import__("transformers").__version__,
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "prompts": args.prompts,
            "method": "linears: activations fake-quantized 1x128 x FP8 weights dequantized, matmul in the precision, "
                      "bf16 out; attention and lm_head in the precision", "precision": args.precision}
    save_file(out, args.out, metadata={k: str(v) for k, v in meta.items()})
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()

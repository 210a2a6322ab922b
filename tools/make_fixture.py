#!/usr/bin/env python3
"""Makes the tiny random-weight Qwen fixtures in tests/fixtures/models/ with Hugging Face transformers.

Each fixture: config.json and model.safetensors (bf16) as save_pretrained writes them (Hugging Face
layout), generation_config.json, and the reference outputs in the format of tiny-mixtral
(tests/fixtures/README.md):
  expected.safetensors  tokens_i int32 [T], logits_i float32 [T, vocab] at every position, greedy_i
                        int32 [24]; for prompt 0 also act0.<name> float32 [T, width]: transformers
                        forward-hook outputs under headroom's --dump-activations names
                        (layer<l>.attn_out, .mlp_out / .moe_out, .out)
  expected.json         prompts (token ids only: these fixtures have no tokenizer), greedy ids.
Logits are computed by transformers in float32 (eager attention) from the bf16-stored weights.

Weights are drawn here (not by transformers' initialiser) so that every tensor matters: norm weights
around 1, q/k/v biases and q/k norms far from their identity values, a router wide enough that top-k
choices are not near-ties (the script reseeds until the k-th and (k+1)-th router logits and the
greedy top-2 logits are separated by a margin, so that f32 reordering cannot flip a choice).

usage: python3 tools/make_fixture.py [NAME ...]   (default: every fixture below)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
GREEDY = 24
VOCAB = 512
PROMPTS = [
    [5, 17, 300, 41, 9],
    [1, 22, 333, 444, 55, 66, 7, 88, 99, 100, 211, 312],
    [400, 3, 3, 3, 150, 250, 350, 450, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 500, 2],
]

COMMON = dict(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=256, rms_norm_eps=1e-6, hidden_act="silu", bos_token_id=None,
              eos_token_id=None, pad_token_id=None)

FIXTURES = {
    # Qwen2: q/k/v bias, tied embeddings (as Qwen2-0.5B), top-level rope_theta.
    "tiny-qwen2": dict(cls="Qwen2", cfg=dict(COMMON, intermediate_size=96, num_hidden_layers=2,
                                              tie_word_embeddings=True, rope_theta=1e6), hub_style=True),
    # Qwen3: per-head q/k norm, head_dim 32 != hidden / heads (16), tied, rope_parameters style.
    "tiny-qwen3": dict(cls="Qwen3", cfg=dict(COMMON, intermediate_size=96, num_hidden_layers=2, head_dim=32,
                                              tie_word_embeddings=True, rope_theta=1e6), hub_style=False),
    # Qwen3-MoE: 8 experts top-2 without renormalisation; layer 0 dense (mlp_only_layers), layers 1-2 MoE;
    # moe_intermediate_size 48 != intermediate_size 96; config as transformers 5 writes it.
    "tiny-qwen3-moe": dict(cls="Qwen3Moe", cfg=dict(COMMON, intermediate_size=96, moe_intermediate_size=48,
                                                     num_hidden_layers=3, head_dim=16, num_experts=8,
                                                     num_experts_per_tok=2, norm_topk_prob=False,
                                                     decoder_sparse_step=1, mlp_only_layers=[0],
                                                     tie_word_embeddings=False, rope_theta=1e6),
                           hub_style=False),
    # Qwen3-MoE with norm_topk_prob and decoder_sparse_step 2 (layers 1 and 3 MoE, 0 and 2 dense); the
    # config rewritten as the hub writes Qwen3-30B-A3B's (num_experts, top-level rope_theta, torch_dtype).
    "tiny-qwen3-moe-renorm": dict(cls="Qwen3Moe", cfg=dict(COMMON, intermediate_size=80, moe_intermediate_size=32,
                                                            num_hidden_layers=4, head_dim=16, num_experts=8,
                                                            num_experts_per_tok=2, norm_topk_prob=True,
                                                            decoder_sparse_step=2, mlp_only_layers=[],
                                                            tie_word_embeddings=False, rope_theta=1e4),
                                  hub_style=True),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("gate.weight") and p.shape[0] <= 64:  # MoE router
                p.copy_(0.6 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(1.0 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[-1] if p.dim() >= 2 else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def to_hub_style(cfg_path):
    """config.json as the hub's Qwen checkpoints write it (older transformers)."""
    c = json.load(open(cfg_path))
    rp = c.pop("rope_parameters", None) or {}
    c["rope_theta"] = rp.get("rope_theta", c.get("rope_theta", 10000.0))
    c["rope_scaling"] = None
    if "num_local_experts" in c:
        c["num_experts"] = c.pop("num_local_experts")
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    c["use_sliding_window"] = False
    json.dump(c, open(cfg_path, "w"), indent=2, sort_keys=True)


def load_f32(d):
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(d, experts_implementation="eager", **kw).eval()
    except (TypeError, ValueError):
        return transformers.AutoModelForCausalLM.from_pretrained(d, **kw).eval()


def layer_hooks(model, acts):
    """Forward hooks under headroom's --dump-activations names."""
    hooks = []
    for l, layer in enumerate(model.model.layers):
        def attn_hook(_m, _i, out, l=l):
            acts[f"layer{l}.attn_out"] = out[0][0].detach().clone()
        def mlp_hook(_m, _i, out, l=l, moe=hasattr(layer.mlp, "experts")):
            acts[f"layer{l}.{'moe_out' if moe else 'mlp_out'}"] = out[0].detach().clone()
        def layer_hook(_m, _i, out, l=l):
            o = out[0] if isinstance(out, tuple) else out
            acts[f"layer{l}.out"] = o[0].detach().clone()
        hooks += [layer.self_attn.register_forward_hook(attn_hook), layer.mlp.register_forward_hook(mlp_hook),
                  layer.register_forward_hook(layer_hook)]
        if hasattr(layer.mlp, "gate") and hasattr(layer.mlp, "experts"):
            def gate_hook(_m, _i, out, l=l):
                acts[f"router.{l}"] = out[0].detach().clone()
            hooks.append(layer.mlp.gate.register_forward_hook(gate_hook))
    return hooks


def margins(model, cfg, seq, n_prompt):
    """On the whole sequence (prompt + greedy tokens; causal, so position i's logits are those greedy
    decoding saw): the smallest top-1/top-2 logit gap over the greedy decision positions, relative to
    that row's max |logit|, and the smallest gap between the k-th and (k+1)-th router logit."""
    acts = {}
    hooks = layer_hooks(model, acts)
    with torch.no_grad():
        logits = model(torch.tensor([seq])).logits[0].float()
    for h in hooks:
        h.remove()
    rows = logits[n_prompt - 1:-1]
    top2 = torch.topk(rows, 2, dim=-1).values
    logit_gap = float(((top2[:, 0] - top2[:, 1]) / rows.abs().max(dim=-1).values).min())
    router_gap = 1.0
    k = cfg.get("num_experts_per_tok", 0)
    for name, rl in acts.items():
        if name.startswith("router."):
            # softmax is monotonic: the choice flips only if the k-th and (k+1)-th logits swap.
            v = torch.topk(rl.float(), k + 1, dim=-1).values
            router_gap = min(router_gap, float((v[:, k - 1] - v[:, k]).min()))
    return logit_gap, router_gap


def make(name, spec):
    out = os.path.join(ROOT, name)
    cfg_cls = getattr(transformers, spec["cls"] + "Config")
    model_cls = getattr(transformers, spec["cls"] + "ForCausalLM")
    for seed in range(100):
        gen = torch.Generator().manual_seed(1000 + seed)
        model = model_cls(cfg_cls(**spec["cfg"]))
        randomize(model, gen)
        model = model.to(torch.bfloat16)
        if os.path.isdir(out):
            shutil.rmtree(out)
        model.save_pretrained(out, safe_serialization=True)
        if spec["hub_style"]:
            to_hub_style(os.path.join(out, "config.json"))
        ref = load_f32(out)
        prompts, worst_logit, worst_router = [], 1.0, 1.0
        for ids in PROMPTS:
            seq = list(ids)
            with torch.no_grad():
                logits = ref(torch.tensor([ids])).logits[0].float()
                for i in range(GREEDY):
                    seq.append(int(ref(torch.tensor([seq])).logits[0, -1].argmax()))
            lg, rg = margins(ref, spec["cfg"], seq, len(ids))
            worst_logit, worst_router = min(worst_logit, lg), min(worst_router, rg)
            prompts.append((ids, logits, seq[len(ids):]))
        if worst_logit > 1e-3 and worst_router > 1e-3:
            break
        print(f"{name}: seed {seed} has a near-tie (logit gap {worst_logit:.2e}, router gap {worst_router:.2e}); reseeding")
    else:
        raise SystemExit(f"{name}: no seed without near-ties")

    tensors, meta = {}, {"model": name, "transformers": transformers.__version__, "seed": 1000 + seed,
                         "min_top2_logit_gap_rel": worst_logit, "min_router_topk_gap": worst_router, "prompts": []}
    for i, (ids, logits, greedy) in enumerate(prompts):
        tensors[f"tokens_{i}"] = torch.tensor(ids, dtype=torch.int32)
        tensors[f"logits_{i}"] = logits.contiguous()
        tensors[f"greedy_{i}"] = torch.tensor(greedy, dtype=torch.int32)
        meta["prompts"].append({"ids": ids, "greedy_ids": greedy})
    acts = {}
    hooks = layer_hooks(ref, acts)
    with torch.no_grad():
        ref(torch.tensor([PROMPTS[0]]))
    for h in hooks:
        h.remove()
    for k, v in acts.items():
        if not k.startswith("router."):
            tensors[f"act0.{k}"] = v.float().contiguous()
    save_file(tensors, os.path.join(out, "expected.safetensors"))
    json.dump(meta, open(os.path.join(out, "expected.json"), "w"), indent=1)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: seed {1000 + seed}, {size / 1e6:.2f} MB, logit gap {worst_logit:.2e}, router gap {worst_router:.2e}")


def main():
    torch.set_num_threads(1)  # tiny models: threads only contend
    names = sys.argv[1:] or list(FIXTURES)
    for n in names:
        if n not in FIXTURES:
            raise SystemExit(f"unknown fixture {n} (known: {', '.join(FIXTURES)})")
        make(n, FIXTURES[n])


if __name__ == "__main__":
    main()

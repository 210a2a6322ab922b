#!/usr/bin/env python3
"""Writes a Hugging Face Mixtral directory with random bf16 weights of Mixtral-8x7B's shapes (for
benchmarks only: speed is proven on real shapes, correctness on the fixtures).

  python3 bench/server/make_random_model.py --out /tmp/mixtral-rand --layers 4 \
      --tokenizer-dir tests/fixtures/models/tiny-mixtral

--layers trims the layer count (32 in the real model) so the checkpoint fits a disk and loads fast; every
layer keeps the real shapes. Values: bf16 of magnitude 2^-10..2^-7 with random signs (never zeros,
NaN or Inf); norms are 1. Needs numpy.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

SHAPES = dict(vocab=32000, dim=4096, ffn=14336, heads=32, kv_heads=8, head_dim=128, experts=8, top_k=2)


def tensors(layers, s):
    d, f, e = s["dim"], s["ffn"], s["experts"]
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    yield "model.embed_tokens.weight", (s["vocab"], d), False
    for i in range(layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (d,), True
        yield p + "self_attn.q_proj.weight", (q, d), False
        yield p + "self_attn.k_proj.weight", (kv, d), False
        yield p + "self_attn.v_proj.weight", (kv, d), False
        yield p + "self_attn.o_proj.weight", (d, q), False
        yield p + "post_attention_layernorm.weight", (d,), True
        yield p + "block_sparse_moe.gate.weight", (e, d), False
        for x in range(e):
            yield p + f"block_sparse_moe.experts.{x}.w1.weight", (f, d), False
            yield p + f"block_sparse_moe.experts.{x}.w2.weight", (d, f), False
            yield p + f"block_sparse_moe.experts.{x}.w3.weight", (f, d), False
    yield "model.norm.weight", (d,), True
    yield "lm_head.weight", (s["vocab"], d), False


def random_bf16(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    exp = 117 + ((bits >> 7) & 3)  # 2^-10 .. 2^-7
    return ((bits & 0x807F) | (exp << 7)).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tokenizer-dir", required=True, help="a Mistral-tokenizer model dir to copy tokenizer files from")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    s = SHAPES
    cfg = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "bos_token_id": 1, "eos_token_id": 2,
           "hidden_act": "silu", "hidden_size": s["dim"], "intermediate_size": s["ffn"],
           "max_position_embeddings": 32768, "num_attention_heads": s["heads"], "num_experts_per_tok": s["top_k"],
           "num_hidden_layers": a.layers, "num_key_value_heads": s["kv_heads"], "num_local_experts": s["experts"],
           "rms_norm_eps": 1e-5, "rope_theta": 1e6, "sliding_window": None, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16", "vocab_size": s["vocab"]}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        src = os.path.join(a.tokenizer_dir, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    header, off = {}, 0
    specs = list(tensors(a.layers, s))
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    rng = np.random.default_rng(a.seed)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape, is_norm in specs:
            n = int(np.prod(shape))
            if is_norm:
                f.write(np.full(n, 0x3F80, dtype=np.uint16).tobytes())
                continue
            step = 1 << 26
            for i in range(0, n, step):
                f.write(random_bf16(rng, min(step, n - i)).tobytes())
    print(f"wrote {a.out}: {a.layers} layers, {off / 2**30:.1f} GiB of bf16 weights")


if __name__ == "__main__":
    main()

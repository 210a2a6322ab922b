"""Pre-measurement with Hugging Face transformers (NOT headroom) of the embedding method (docs/classify.md,
src/classify/embedding.h) on SmolLM2-135M-Instruct Q4_1 GGUF as transformers loads it (dequantized to f32):
each document and few-shot example (examples/fewshot) is run on its own; its representation at a layer is
the mean hidden state over positions 1.. (or all positions, or the last token); a label's score is the
layer-averaged cosine similarity to its nearest example (or to its examples' centroid), optionally after
subtracting the examples' mean. Prints accuracy on the tune and held-out splits for each variant, and the
combination with the plain label-scoring prompt (premeasure_transformers.py's prompt, no options) at several
temperatures. Choices are made on the tune split only. Not a test (pytest does not collect it). Usage:
    python3 tests/python/classify/premeasure_embedding.py [--model FILE.gguf] [--examples DIR]"""
import argparse
import copy
import json
import math
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
LABELS_PROMPT = "Classify the document below into exactly one of the given labels."


def read_labels(path):
    out = []
    for line in open(path, encoding="utf-8"):
        t = line.strip()
        if t and not t.startswith("#"):
            out.append(t.partition(": ")[0].strip())
    return out


def unit(x):
    return x / (np.linalg.norm(x) + 1e-12)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--examples", default=os.path.join(ROOT, "examples", "fewshot"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    d, f = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    labels = read_labels(os.path.join(ROOT, "examples", "labels.txt"))
    docs_dir = os.path.join(ROOT, "examples", "documents")
    docs = [json.loads(x) for x in open(os.path.join(docs_dir, "manifest.jsonl"))]
    for m in docs:
        m["text"] = open(os.path.join(docs_dir, m["file"]), encoding="utf-8").read()
    exs = [json.loads(x) for x in open(os.path.join(args.examples, "manifest.jsonl"))]
    for m in exs:
        m["text"] = open(os.path.join(args.examples, m["file"]), encoding="utf-8").read().strip()

    @torch.no_grad()
    def pooled(text):
        # hidden_states[l + 1] is layer l's output (headroom's "layer<l>.out"); the last one is after the
        # final norm in transformers, and is not used by the default range.
        ids = tok.encode(text, add_special_tokens=False)
        hs = torch.stack(model(torch.tensor([ids]), output_hidden_states=True).hidden_states)[:, 0]
        return {"mean1": hs[:, 1:].mean(1).numpy(), "mean": hs.mean(1).numpy(), "last": hs[:, -1].numpy()}

    @torch.no_grad()
    def label_logprobs(text):
        msgs = [{"role": "user", "content": f"{LABELS_PROMPT}\n\nLabels: {', '.join(labels)}\n\nDocument:\n{text}\n\n"
                 "Answer with exactly one of the labels."}]
        ids = tok.encode(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), add_special_tokens=False)
        out = model(torch.tensor([ids]), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)
        res = []
        for lab in labels:
            c = tok.encode(lab, add_special_tokens=False) + [tok.eos_token_id]
            lp = first[c[0]].item()
            o = model(torch.tensor([c[:-1]]), past_key_values=copy.deepcopy(out.past_key_values), use_cache=True)
            rows = torch.log_softmax(o.logits[0].float(), -1)
            res.append(lp + sum(rows[k, t].item() for k, t in enumerate(c[1:])))
        return np.array(res)

    for m in docs + exs:
        m["h"] = pooled(m["text"])
        print(".", end="", file=sys.stderr, flush=True)
    n_layers = model.config.num_hidden_layers

    def scores(kind, lo, hi, center, nearest):
        out = []
        for m in docs:
            per_layer = []
            for layer in range(lo, hi):
                h = layer + 1
                mu = np.mean([e["h"][kind][h] for e in exs], 0) if center else 0.0
                x = unit(m["h"][kind][h] - mu)
                ev = [(e["label"], unit(e["h"][kind][h] - mu)) for e in exs]
                if nearest:
                    per_layer.append([max(float(v @ x) for lab, v in ev if lab == want) for want in labels])
                else:
                    per_layer.append([float(unit(np.mean([v for lab, v in ev if lab == want], 0)) @ x) for want in labels])
            out.append(np.mean(per_layer, 0))
        return out

    def accuracy(score_rows):
        r = {"tune": 0, "heldout": 0}
        for m, s in zip(docs, score_rows):
            r[m["split"]] += labels[int(np.argmax(s))] == m["label"]
        return f"tune {r['tune']}/18, held out {r['heldout']}/12"

    print(f"\n{len(exs)} examples from {args.examples}; {n_layers} layers")
    for kind in ("mean1", "mean", "last"):
        for center in (True, False):
            for nearest in (True, False):
                for a, b in [(0.3, 0.9), (0.2, 0.9), (0.3, 0.8), (0.4, 0.9), (0.5, 0.9), (0.25, 0.75), (0.0, 1.0)]:
                    lo, hi = int(math.floor(a * n_layers)), int(math.floor(b * n_layers))
                    print(f"{kind} center={center:d} nearest={nearest:d} layers [{a}, {b}) = [{lo}, {hi}): "
                          f"{accuracy(scores(kind, lo, hi, center, nearest))}", flush=True)
    emb = scores("mean1", int(0.3 * n_layers), int(0.9 * n_layers), True, True)
    lm = [label_logprobs(m["text"]) for m in docs]
    print(f"label scoring alone: {accuracy(lm)}")
    for t in (0.005, 0.01, 0.02, 0.03, 0.05, 0.1):
        comb = []
        for s, l in zip(emb, lm):
            pe = np.exp((s - s.max()) / t)
            pl = np.exp(l - l.max())
            comb.append(np.log(pe / pe.sum() + 1e-300) + np.log(pl / pl.sum() + 1e-300))
        print(f"combined (temperature {t}): {accuracy(comb)}")


if __name__ == "__main__":
    sys.exit(main())

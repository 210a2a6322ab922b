"""Pre-measurement with Hugging Face transformers (NOT headroom): the same prompts, labels and scoring rules
as src/classify/classify.cpp, applied to SmolLM2-135M-Instruct Q4_1 GGUF as transformers loads it
(dequantized to f32), to see which accuracy options help before headroom can load GGUF files. Not a test
(pytest does not collect it). Usage:
    python3 tests/python/classify/premeasure_transformers.py [--model FILE.gguf] [--split tune|heldout|all]
Prints accuracy per configuration (calibrate, length normalisation, descriptions, few-shot examples)."""
import argparse
import copy
import itertools
import json
import math
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
DEFAULT_INSTRUCTIONS = "Classify the document below into exactly one of the given labels."
CONTENT_FREE = ["N/A", "", "[MASK]"]


def read_labels(path):
    labels, descs = [], []
    for line in open(path, encoding="utf-8"):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        lab, _, desc = t.partition(": ")
        labels.append(lab.strip())
        descs.append(desc.strip())
    return labels, descs


def header(labels, descs, use_desc):
    s = DEFAULT_INSTRUCTIONS + "\n\nLabels:"
    if use_desc:
        for lab, d in zip(labels, descs):
            s += "\n- " + lab + (": " + d if d else "")
    else:
        s += " " + ", ".join(labels)
    return s


def doc_turn(doc):
    return "Document:\n" + doc + "\n\nAnswer with exactly one of the labels."


def render(tok, labels, descs, use_desc, examples, doc):
    head = header(labels, descs, use_desc) + "\n\n"
    msgs = []
    for i, (text, lab) in enumerate(examples):
        msgs.append({"role": "user", "content": ("" if i else head) + doc_turn(text)})
        msgs.append({"role": "assistant", "content": lab})
    msgs.append({"role": "user", "content": ("" if examples else head) + doc_turn(doc)})
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return tok.encode(text, add_special_tokens=False)


@torch.no_grad()
def label_logprobs(model, prompt, label_ids):
    """Sum of log p(label token | prompt, earlier label tokens) per label; the prompt runs once and each
    label continues from a copy of its KV cache."""
    out = model(torch.tensor([prompt]), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    res = []
    for ids in label_ids:
        lp = first[ids[0]].item()
        if len(ids) > 1:
            o = model(torch.tensor([ids[:-1]]), past_key_values=copy.deepcopy(out.past_key_values), use_cache=True)
            rows = torch.log_softmax(o.logits[0].float(), dim=-1)
            lp += sum(rows[k, t].item() for k, t in enumerate(ids[1:]))
        res.append(lp)
    return res


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    s = sum(e)
    return [x / s for x in e]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--split", default="tune")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread: on a shared machine two spin-waiting threads are slower
    d, f = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    labels, descs = read_labels(os.path.join(ROOT, "examples", "labels.txt"))
    eos = tok.eos_token_id
    label_ids = [tok.encode(lab, add_special_tokens=False) + [eos] for lab in labels]
    docs_dir = os.path.join(ROOT, "examples", "documents")
    man = [json.loads(x) for x in open(os.path.join(docs_dir, "manifest.jsonl"))]
    man = [m for m in man if args.split == "all" or m["split"] == args.split]
    ex_dir = os.path.join(ROOT, "examples", "fewshot")
    examples = [(open(os.path.join(ex_dir, m["file"])).read().strip(), m["label"])
                for m in map(json.loads, open(os.path.join(ex_dir, "manifest.jsonl")))]
    print(f"transformers {__import__('transformers').__version__}, model {args.model}, split {args.split}, "
          f"{len(man)} documents, eos id {eos}", flush=True)
    # Raw log-probabilities per (descriptions, examples) prompt variant; calibration and length
    # normalisation are applied afterwards (they do not change the prompt).
    for use_desc, use_ex in itertools.product([False, True], [False, True]):
        ex = examples if use_ex else []
        t0 = time.time()
        cf = [label_logprobs(model, render(tok, labels, descs, use_desc, ex, c), label_ids) for c in CONTENT_FREE]
        rows = []
        for m in man:
            doc = open(os.path.join(docs_dir, m["file"]), encoding="utf-8").read()
            rows.append((m, label_logprobs(model, render(tok, labels, descs, use_desc, ex, doc), label_ids)))
            print(".", end="", file=sys.stderr, flush=True)
        secs = time.time() - t0
        for cal, norm in itertools.product([False, True], [False, True]):
            def scores(lp):
                return [x / len(ids) if norm else x for x, ids in zip(lp, label_ids)]
            prior = [sum(p) / len(cf) for p in zip(*[softmax(scores(c)) for c in cf])]
            right, wrong = 0, []
            for m, lp in rows:
                p = softmax(scores(lp))
                if cal:
                    p = [a / b for a, b in zip(p, prior)]
                best = labels[max(range(len(p)), key=lambda i: p[i])]
                right += best == m["label"]
                if best != m["label"]:
                    wrong.append(f"{m['file']}->{best}")
            print(f"descriptions={use_desc:d} examples={use_ex:d} calibrate={cal:d} length_normalize={norm:d}: "
                  f"{right}/{len(rows)}  wrong: {' '.join(wrong)}", flush=True)
        print(f"  ({secs:.1f} s for this prompt variant)", flush=True)


if __name__ == "__main__":
    sys.exit(main())

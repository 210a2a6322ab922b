"""Pre-measurement with Hugging Face transformers (NOT headroom) of other label-scoring prompts for the labels
method (docs/classify.md) on SmolLM2-135M-Instruct Q4_1 GGUF as transformers loads it (dequantized to f32).
Each variant is a prompt and the continuation scored for each label (its tokens plus the end token, summed
log-probabilities); no few-shot examples, no calibration. Prints tune and held-out accuracy per variant.
Not a test (pytest does not collect it). Usage:
    python3 tests/python/classify/premeasure_prompts.py [--model FILE.gguf] [--variants base,docfirst,...]"""
import argparse
import copy
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
INSTR = "Classify the document below into exactly one of the given labels."


def read_labels(path):
    return [t.partition(": ")[0].strip() for t in (x.strip() for x in open(path, encoding="utf-8")) if t and not t.startswith("#")]


def variants(tok, labels):
    names = ", ".join(labels)

    def chat(msgs):
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    letters = "\n".join(f"{chr(65 + i)}. {lab}" for i, lab in enumerate(labels))
    return {
        # the built-in template (classify.cpp): instructions, labels, document
        "base": lambda d: (chat([{"role": "user", "content": f"{INSTR}\n\nLabels: {names}\n\nDocument:\n{d}\n\n"
                                  "Answer with exactly one of the labels."}]), labels),
        # the document first, the question and the labels last
        "docfirst": lambda d: (chat([{"role": "user", "content": f"Document:\n{d}\n\nWhich of these labels fits the "
                                      f"document above: {names}? Answer with exactly one of the labels."}]), labels),
        # the labels before and after the document
        "both": lambda d: (chat([{"role": "user", "content": f"{INSTR}\n\nLabels: {names}\n\nDocument:\n{d}\n\n"
                                  f"Labels: {names}\nAnswer with exactly one of the labels."}]), labels),
        # lettered multiple choice, the letter scored
        "letters": lambda d: (chat([{"role": "user", "content": f"Document:\n{d}\n\nWhat kind of document is this?\n"
                                     f"{letters}\nAnswer with the letter only."}]), [chr(65 + i) for i in range(len(labels))]),
        # the instructions as a system turn, the document alone as the user turn
        "system": lambda d: (chat([{"role": "system", "content": f"{INSTR}\nLabels: {names}\nAnswer with exactly one "
                                    "of the labels."}, {"role": "user", "content": d}]), labels),
        # a plain completion without the chat template
        "completion": lambda d: (f"{d}\n\nDocument type ({names}):", [" " + lab for lab in labels]),
        # the answer turn pre-filled, the label continuing it
        "prefill": lambda d: (chat([{"role": "user", "content": f"Document:\n{d}\n\nWhat kind of document is this: "
                                     f"{names}?"}]) + "This document is a", [" " + lab for lab in labels]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--variants", default="base,docfirst,both,letters,system,completion,prefill")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d, f = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    labels = read_labels(os.path.join(ROOT, "examples", "labels.txt"))
    docs_dir = os.path.join(ROOT, "examples", "documents")
    docs = [json.loads(x) for x in open(os.path.join(docs_dir, "manifest.jsonl"))]
    table = variants(tok, labels)

    @torch.no_grad()
    def score(prompt, conts):
        out = model(torch.tensor([tok.encode(prompt, add_special_tokens=False)]), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)
        res = []
        for c in conts:
            ids = tok.encode(c, add_special_tokens=False) + [tok.eos_token_id]
            lp = first[ids[0]].item()
            o = model(torch.tensor([ids[:-1]]), past_key_values=copy.deepcopy(out.past_key_values), use_cache=True)
            rows = torch.log_softmax(o.logits[0].float(), -1)
            res.append(lp + sum(rows[k, t].item() for k, t in enumerate(ids[1:])))
        return res

    for name in args.variants.split(","):
        t0 = time.time()
        right = {"tune": 0, "heldout": 0}
        for m in docs:
            text = open(os.path.join(docs_dir, m["file"]), encoding="utf-8").read()
            s = score(*table[name](text))
            right[m["split"]] += labels[max(range(len(s)), key=lambda i: s[i])] == m["label"]
        print(f"{name}: tune {right['tune']}/18, held out {right['heldout']}/12 ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())

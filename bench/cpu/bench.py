#!/usr/bin/env python3
"""headroom vs llama.cpp on the CPU: same GGUF file, same prompt, same thread count, in one run.

Measures, for each engine, prompt (prefill) tokens/s of a ~250-token classification prompt and of a
~2,000-token prompt, and decode tokens/s after the short prompt; prints a table with the ratios and writes
bench/results/cpu-<date>-<commit>.{md,json}. Engines alternate round by round (best of --rounds each), so
that a machine shared with other work treats both alike.

  pip install llama-cpp-python   # builds llama.cpp from source (CPU), once
  cmake --build build --target cpu_forward_bench
  python3 bench/cpu/bench.py [--model M.gguf] [--threads 2] [--rounds 3]

headroom side: build/bench/cpu_forward_bench (the CPU backend's forward pass on the file's tensors; it
feeds token ids of the same count, the speed does not depend on their values) with OMP_WAIT_POLICY=passive
(threads that sleep instead of spinning; see bench/cpu/README.md for why).
llama.cpp side: llama_cpp.Llama with n_threads = n_threads_batch = --threads, the whole prompt in one
batch (n_batch = n_ubatch = prompt length), timings from llama.cpp's own perf counters.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DOCUMENT = """INVOICE No. 2024-0117
Northwind Office Supplies Ltd., 14 Harbour Road, Leeds LS1 4DY, VAT GB 284 1190 37
Bill to: Calder & Finch Architects, 9 Mill Street, York YO1 6AB
Invoice date: 12 March 2024    Due date: 11 April 2024    Customer ref: PO-55821
Description                          Qty   Unit price    Amount
A4 copier paper, 80 g, box of 5       12      24.50       294.00
Toner cartridge, black, HL-L5100       3      68.90       206.70
Desk organiser, bamboo                 4      15.25        61.00
Delivery                               1       9.95         9.95
Subtotal 571.65   VAT 20% 114.33   Total due GBP 685.98
Payment by bank transfer to Northwind Office Supplies Ltd., sort code 20-45-77, account 40718293,
quoting the invoice number. Late payments incur interest at 8% above base rate.
"""

INSTRUCTION = ("Classify the business document below into exactly one of these categories: invoice, receipt, "
               "contract, bank statement, purchase order, payslip, other. Answer with the category only.\n\n")


def prompt_text(target_tokens, count_tokens):
    """A classification prompt of about target_tokens tokens: the instruction, then documents."""
    body = DOCUMENT
    text = INSTRUCTION + "Document:\n" + body + "\nCategory:"
    while count_tokens(text) < target_tokens:
        body += "\n" + DOCUMENT
        text = INSTRUCTION + "Document:\n" + body + "\nCategory:"
    return text


def git_commit():
    try:
        return subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class LlamaCpp:
    def __init__(self, model, threads, max_tokens):
        import llama_cpp
        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(model_path=model, n_ctx=max_tokens + 256, n_batch=max_tokens + 256,
                                   n_ubatch=max_tokens + 256, n_threads=threads, n_threads_batch=threads,
                                   verbose=False)
        self.version = getattr(llama_cpp, "__version__", "?")

    def tokenize(self, text):
        return self.llm.tokenize(text.encode(), add_bos=True, special=False)

    def _perf(self):
        return self.llama_cpp.llama_perf_context(self.llm.ctx)

    def run(self, tokens, n_decode):
        """(prefill seconds, decode tokens/s): prompt in one batch, then n_decode single-token steps."""
        self.llm.reset()
        self.llama_cpp.llama_perf_context_reset(self.llm.ctx)
        t0 = time.perf_counter()
        self.llm.eval(tokens)
        prefill_wall = time.perf_counter() - t0
        p = self._perf()
        prefill = p.t_p_eval_ms / 1e3 if p.n_p_eval == len(tokens) and p.t_p_eval_ms > 0 else prefill_wall
        decode = 0.0
        if n_decode:
            self.llama_cpp.llama_perf_context_reset(self.llm.ctx)
            t0 = time.perf_counter()
            tok = tokens[-1]
            for _ in range(n_decode):
                self.llm.eval([tok])
            wall = time.perf_counter() - t0
            p = self._perf()
            secs = p.t_eval_ms / 1e3 if p.n_eval == n_decode and p.t_eval_ms > 0 else wall
            decode = n_decode / secs
        return prefill, decode


def run_headroom(binary, model, threads, n_prompt, n_decode):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive")
    out = subprocess.check_output([binary, model, "--prompt", str(n_prompt), "--decode", str(n_decode),
                                   "--reps", "1"], env=env, text=True)
    r = json.loads(out.strip().splitlines()[-1])
    return r["prefill_s"], r["decode_tok_s"], r.get("isa", "?")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decode", type=int, default=64, help="decode steps after the short prompt")
    ap.add_argument("--prompts", default="250,2000", help="target prompt lengths in tokens")
    ap.add_argument("--headroom-bin", default=os.path.join(ROOT, "build", "bench", "cpu_forward_bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"model not found: {args.model} (bash scripts/fetch-model.sh)")
    if not os.path.exists(args.headroom_bin):
        sys.exit(f"{args.headroom_bin} not built: cmake --build build --target cpu_forward_bench")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("llama_cpp not importable: pip install llama-cpp-python")

    targets = [int(x) for x in args.prompts.split(",")]
    llm = LlamaCpp(args.model, args.threads, max(targets) + 64)
    prompts = []
    for target in targets:
        toks = llm.tokenize(prompt_text(target, lambda t: len(llm.tokenize(t))))
        prompts.append(toks)

    rows = []
    isa = "?"
    for toks in prompts:
        n = len(toks)
        n_decode = args.decode if toks is prompts[0] else 0
        best = {"llama.cpp": [1e30, 0.0], "headroom": [1e30, 0.0]}
        for _ in range(args.rounds):
            p, d = llm.run(toks, n_decode)
            best["llama.cpp"] = [min(best["llama.cpp"][0], p), max(best["llama.cpp"][1], d)]
            p, d, isa = run_headroom(args.headroom_bin, args.model, args.threads, n, n_decode)
            best["headroom"] = [min(best["headroom"][0], p), max(best["headroom"][1], d)]
        row = {"prompt_tokens": n, "decode_tokens": n_decode}
        for eng, (p, d) in best.items():
            row[eng] = {"prefill_s": round(p, 4), "prefill_tok_s": round(n / p, 1), "decode_tok_s": round(d, 1)}
        row["ratio_prefill"] = round(row["headroom"]["prefill_tok_s"] / row["llama.cpp"]["prefill_tok_s"], 2)
        if n_decode:
            row["ratio_decode"] = round(row["headroom"]["decode_tok_s"] / row["llama.cpp"]["decode_tok_s"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    load = os.getloadavg()
    meta = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(),
            "machine": f"{cpu_model()}, {os.cpu_count()} cpus", "threads": args.threads, "rounds": args.rounds,
            "model": os.path.basename(args.model), "llama_cpp_python": llm.version, "headroom_isa": isa,
            "loadavg_1_5_15": [round(x, 1) for x in load]}
    lines = [f"# CPU: headroom vs llama.cpp, {meta['model']}, {args.threads} threads",
             "", "| " + " | ".join(f"{k}: {v}" for k, v in meta.items()) + " |", "",
             "| prompt tokens | llama.cpp prefill tok/s | headroom prefill tok/s | ratio | llama.cpp decode tok/s "
             "| headroom decode tok/s | ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        dec_l = r["llama.cpp"]["decode_tok_s"] if r["decode_tokens"] else "-"
        dec_h = r["headroom"]["decode_tok_s"] if r["decode_tokens"] else "-"
        lines.append(f"| {r['prompt_tokens']} | {r['llama.cpp']['prefill_tok_s']} | {r['headroom']['prefill_tok_s']} | "
                     f"{r['ratio_prefill']}x | {dec_l} | {dec_h} | {str(r.get('ratio_decode', '-')) + 'x' if r['decode_tokens'] else '-'} |")
    print("\n".join(lines))
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"cpu-{datetime.datetime.utcnow():%Y-%m-%d-%H%M}-{meta['commit']}")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()

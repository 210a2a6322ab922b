"""Tokenizer encode throughput: headroom vs the `tokenizers` package, single-threaded, same run, same
~1 MB of mixed English, code and CJK text (built deterministically here; no download). Checks that both
produce the same ids, then appends a Markdown table to bench/results/tokenizer.md.

Usage: python3 bench/tokenizer/bench_tokenizer.py --bin build/src/headroom [--mb 1.0] [--repeat 5]
(needs: pip install tokenizers==0.23.3)"""
import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # the Rust pool must be single-threaded (set before import)
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizers")

ENGLISH = ("The committee reviewed the quarterly invoice totals and found that the shipping costs had risen "
           "by nearly twelve percent since March. Nobody could explain why the warehouse in Rotterdam kept "
           "ordering pallets it didn't need, so they've asked for a full audit before the board meeting. ")
CODE = ('def fnv1a(data: bytes) -> int:\n    h = 0xcbf29ce484222325\n    for b in data:\n        h ^= b\n'
        '        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF\n    return h\n\n'
        'for (size_t i = 0; i < n; ++i) {\n    acc += weights[i] * inputs[i];  // fp32 accumulate\n}\n')
CJK = ("東京の天気は晴れで、気温は二十度です。会議は午後三時に始まります。"
       "这个模型的推理速度很快，但是内存占用比较大。我们需要优化批处理。"
       "서울의 날씨는 맑고 기온은 이십 도입니다. ")


def make_text(mb):
    rng = random.Random(1234)
    parts, size = [], 0
    while size < mb * 1e6:
        k = rng.random()
        chunk = ENGLISH if k < 0.5 else CODE if k < 0.8 else CJK
        words = chunk.split(" ")
        rng.shuffle(words)  # vary the text so caches do not see the same words in the same order
        piece = " ".join(words) + "\n"
        parts.append(piece)
        size += len(piece.encode("utf-8"))
    return "".join(parts)


def fnv(ids):
    h = 1469598103934665603
    for i in ids:
        h = ((h ^ (i & 0xFFFFFFFF)) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return str(h)


def bench_hf(path, text, repeat):
    tok = tokenizers.Tokenizer.from_file(path)
    best, ids = 1e30, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - t0)
    return best, ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "tokenizer.md"))
    args = ap.parse_args()
    text = make_text(args.mb)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(text)
        text_path = f.name
    nbytes = len(text.encode("utf-8"))
    rows = []
    for name in ("mistral", "deepseek"):
        path = os.path.join(FIX, name, "tokenizer.json")
        hf_s, hf_ids = bench_hf(path, text, args.repeat)
        r = subprocess.run([args.bin, "tokenize", "--tokenizer", path, "--bench", text_path, "--repeat", str(args.repeat)],
                           capture_output=True, text=True, check=True)
        ours = json.loads(r.stdout)
        same = ours["ids_hash"] == fnv(hf_ids) and ours["n_ids"] == len(hf_ids)
        rows.append((name, nbytes, len(hf_ids), ours["mb_per_s"], nbytes / 1e6 / hf_s, same))
    os.unlink(text_path)
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    lines = [f"\n## {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}",
             f"machine: {cpu}, {os.cpu_count()} cores; tokenizers {tokenizers.__version__}, Python {sys.version.split()[0]}; "
             f"best of {args.repeat}, one {nbytes / 1e6:.2f} MB string (English/code/CJK), single-threaded",
             "", "| tokenizer | bytes | ids | headroom MB/s | tokenizers MB/s | ratio | same ids |",
             "|---|---|---|---|---|---|---|"]
    for name, nb, n, ours, hf, same in rows:
        lines.append(f"| {name} | {nb} | {n} | {ours:.2f} | {hf:.2f} | {ours / hf:.2f}x | {'yes' if same else 'NO'} |")
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(report)
    if not all(r[5] for r in rows):
        sys.exit("ids differ between headroom and tokenizers")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Load benchmark for `headroom serve` (not a test): many concurrent streaming completions.

Reports request throughput, generated tokens/s, time-to-first-token and inter-chunk latency
percentiles, and writes a markdown + JSON record to bench/results/.

  # against a running server
  python3 bench/server/load_bench.py --url http://127.0.0.1:8080 --model tiny-mixtral
  # or start one (arguments after --server-args go to `headroom serve`)
  python3 bench/server/load_bench.py --bin build/src/headroom --model-dir tests/fixtures/models/tiny-mixtral \
      --concurrency 16 --requests 64 --server-args --sequences 16 --context 1024

Needs: pip install requests. Prompts are random token ids (never zeros), and every request asks for
exactly --max-tokens tokens (ignore_eos), so runs are comparable.
"""
import argparse
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import requests


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(url, model, prompt_ids, max_tokens, timeout_s, headers):
    body = {"model": model, "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "ignore_eos": True}
    t0 = time.perf_counter()
    chunk_times, usage, error = [], None, None
    try:
        with requests.post(url + "/v1/completions", json=body, stream=True, timeout=timeout_s,
                           headers=headers) as r:
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}", "t0": t0}
            for line in r.iter_lines():
                if not line or not line.startswith(b"data: "):
                    continue
                payload = line[6:]
                if payload == b"[DONE]":
                    break
                j = json.loads(payload)
                if "error" in j:
                    error = j["error"].get("code") or "error"
                    continue
                if j.get("usage"):
                    usage = j["usage"]
                if j.get("choices") and j["choices"][0].get("text"):
                    chunk_times.append(time.perf_counter())
    except requests.RequestException as e:
        return {"error": type(e).__name__, "t0": t0}
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "chunks": chunk_times, "usage": usage, "error": error}


def run(args):
    headers = {"Authorization": "Bearer " + args.api_key} if args.api_key else {}
    rng = random.Random(args.seed)
    prompts = [[rng.randrange(100, args.vocab) for _ in range(args.prompt_tokens)] for _ in range(args.requests)]
    results = [None] * args.requests
    next_i = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next_i[0]
                if i >= args.requests:
                    return
                next_i[0] += 1
            results[i] = one_request(args.url, args.model, prompts[i], args.max_tokens, args.timeout, headers)

    # Warm-up request (not counted).
    one_request(args.url, args.model, prompts[0][:8], 4, args.timeout, headers)
    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start

    ok = [r for r in results if r and not r.get("error") and r.get("usage")]
    ttft = [r["chunks"][0] - r["t0"] for r in ok if r["chunks"]]
    itl = [b - a for r in ok for a, b in zip(r["chunks"], r["chunks"][1:])]
    gen = sum(r["usage"]["completion_tokens"] for r in ok)
    prompt = sum(r["usage"]["prompt_tokens"] for r in ok)
    errors = {}
    for r in results:
        if r and r.get("error"):
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return {
        "requests": args.requests, "ok": len(ok), "errors": errors, "concurrency": args.concurrency,
        "prompt_tokens_each": args.prompt_tokens, "max_tokens_each": args.max_tokens, "wall_s": wall,
        "requests_per_s": len(ok) / wall, "generated_tokens_per_s": gen / wall, "prompt_tokens_per_s": prompt / wall,
        "ttft_s": {p: percentile(ttft, p) for p in (50, 90, 99)},
        "itl_s": {p: percentile(itl, p) for p in (50, 90, 99)},
    }


def commit_id():
    """The checkout's short commit, else $HEADROOM_COMMIT (a copied tree without .git), else "unknown"."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = ""
    return commit or os.environ.get("HEADROOM_COMMIT", "unknown")


def write_results(out_dir, name, table, res):
    """out_dir/name.md (the table) and out_dir/name.json (every number)."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, name)
    with open(stem + ".md", "w") as f:
        f.write(table)
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", stem + ".md", file=sys.stderr)


def start_server(args):
    cmd = [args.bin, "serve", "--model", args.model_dir, "--host", "127.0.0.1", "--port", "0"] + args.server_args
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    lines = []
    port = [None]
    ready = threading.Event()

    def reader():
        for line in proc.stderr:
            lines.append(line.rstrip())
            if args.verbose:
                print(line.rstrip(), file=sys.stderr)
            m = re.search(r"ready on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port[0] = int(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(args.start_timeout) or port[0] is None:
        proc.kill()
        sys.exit("server did not become ready:\n" + "\n".join(lines[-20:]))
    return proc, f"http://127.0.0.1:{port[0]}", lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--bin")
    ap.add_argument("--model-dir")
    ap.add_argument("--model", help="model id to request (default: directory name of --model-dir)")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--start-timeout", type=float, default=1800)
    ap.add_argument("--device-label", default="", help="e.g. 'NVIDIA H100 80GB HBM3' or 'CPU, 2 cores'")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results"))
    ap.add_argument("--tag", default="server")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--server-args", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args()
    proc = None
    if not args.url:
        if not (args.bin and args.model_dir):
            ap.error("give --url, or --bin and --model-dir")
        proc, args.url, _ = start_server(args)
    if not args.model:
        args.model = os.path.basename(os.path.normpath(args.model_dir)) if args.model_dir else \
            requests.get(args.url + "/v1/models", timeout=30).json()["data"][0]["id"]
    try:
        res = run(args)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    commit = commit_id()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    res.update({"date": date, "commit": commit, "device": args.device_label, "model": args.model,
                "server_args": " ".join(args.server_args)})
    ms = lambda s: f"{s * 1000:.1f}"
    table = "\n".join([
        f"## {args.tag}: {args.model} on {args.device_label or 'unknown device'} ({date}, commit {commit})",
        "",
        f"server args: `{res['server_args']}`; {args.requests} requests, {args.concurrency} concurrent streams, "
        f"{args.prompt_tokens} prompt tokens and {args.max_tokens} generated tokens each (ignore_eos, greedy)",
        "",
        "| metric | value |", "|---|---|",
        f"| requests ok / sent | {res['ok']} / {args.requests} {res['errors'] or ''} |",
        f"| wall time | {res['wall_s']:.2f} s |",
        f"| requests/s | {res['requests_per_s']:.2f} |",
        f"| generated tokens/s | {res['generated_tokens_per_s']:.1f} |",
        f"| prompt tokens/s | {res['prompt_tokens_per_s']:.1f} |",
        f"| TTFT p50 / p90 / p99 | {ms(res['ttft_s'][50])} / {ms(res['ttft_s'][90])} / {ms(res['ttft_s'][99])} ms |",
        f"| inter-chunk latency p50 / p90 / p99 | {ms(res['itl_s'][50])} / {ms(res['itl_s'][90])} / "
        f"{ms(res['itl_s'][99])} ms |",
        "",
    ])
    print(table)
    write_results(args.out_dir, f"{args.tag}_{datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d_%H%M%S')}",
                  table, res)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Classification next to generation on one `headroom serve` (issue #16's measurements; not a test).

Measures, in one run against one server:
  1. the prefill-bound rate: tokens/s of a DOC-token prompt prefilled alone (/v1/completions, max_tokens 1,
     best of 3), and from it the prefill-bound documents/s = prefill tokens/s / document tokens;
  2. documents/s for DOC-token documents scored against LABELS labels at each concurrency in --concurrency
     (single-document /v1/classify requests, one per client thread; documents finished in --seconds after
     --warmup seconds of load), as a fraction of the prefill bound;
  3. the inter-token latency (p50, p99) of STREAMS concurrent streaming generations alone, then while a
     classification load runs next to them (the ratio of the two p99s: issue #16's target is <= 2);
  2b. with --batch N ...: documents/s of one client sending `documents` requests of N documents each
     (back to back for --seconds after one warm-up request; the server runs a request's documents side by
     side, docs/classify.md), and the most requests the scheduler ran in one step (headroom_step_requests_max);
  4. the prefix-cache hit rate with a shared instruction block of --instruction-tokens tokens: hit tokens /
     prompt tokens of /metrics over a run of classifications that share the instruction, the cached blocks
     after it, and every other prefix-cache and KV-copy counter before and after (the server's own counters;
     absent on a server without prefix caching).

Every document sent is a new text (--seed, a counter), never one sent before: the prefix cache would
otherwise hold its blocks and a repeated document would measure cache hits, not prefill.

Prints a markdown table and writes bench/results/classify_<tag>_<date>.{md,json}.

  # on the CPU with a tiny fixture (smoke run; numbers say nothing about a GPU)
  python3 bench/server/classify_bench.py --bin build/src/headroom \
      --model-dir tests/fixtures/models/tiny-mixtral --doc-tokens 500 --concurrency 1 4 --device-label "CPU" \
      --server-args --context 2048 --sequences 16
  # on the GPU (synthetic Mixtral-8x7B checkpoint from bench/server/make_random_model.py)
  python3 bench/server/classify_bench.py --bin build-gpu/src/headroom --model-dir /tmp/mixtral-rand \
      --concurrency 1 8 32 --device-label "H100" --server-args --device cuda --weights int8 --sequences 64 \
      --context 4096 --prefill-chunk 2048

Documents are built from a fixed vocabulary of business words and sized with the server's own token count
(usage.prompt_tokens of a first request), so that every engine sees the same text.
"""
import argparse
import datetime
import json
import os
import random
import re
import signal
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_bench import commit_id, percentile, start_server, write_results  # noqa: E402  (same folder)

WORDS = ("invoice total amount due payment account balance order quantity delivery supplier customer contract "
         "clause party agreement salary deduction tax net gross receipt cash card change statement opening "
         "closing transfer reference date period signature terms conditions price unit item description").split()
LABELS = ["invoice", "receipt", "contract", "bank statement", "purchase order", "payslip", "other"]


def text_of(n_words, rng):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


class Client:
    def __init__(self, url, model, api_key, timeout):
        self.url, self.model, self.timeout = url, model, timeout
        self.headers = {"Authorization": "Bearer " + api_key} if api_key else {}

    def post(self, path, body, **kw):
        return requests.post(self.url + path, json=dict(body, model=self.model), headers=self.headers,
                             timeout=self.timeout, **kw)

    def classify(self, document, labels, instructions=None):
        body = {"document": document, "labels": labels}
        if instructions:
            body["instructions"] = instructions
        r = self.post("/v1/classify", body)
        r.raise_for_status()
        return r.json()

    def classify_many(self, documents, labels):
        r = self.post("/v1/classify", {"documents": documents, "labels": labels})
        r.raise_for_status()
        return r.json()

    def metric(self, name):
        r = requests.get(self.url + "/metrics", headers=self.headers, timeout=self.timeout)
        r.raise_for_status()
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", r.text, re.M)
        return float(m.group(1)) if m else None

    def prefill_ms(self, prompt):
        t0 = time.perf_counter()
        r = self.post("/v1/completions", {"prompt": prompt, "max_tokens": 1, "temperature": 0})
        r.raise_for_status()
        return (time.perf_counter() - t0) * 1000.0, r.json()["usage"]["prompt_tokens"]

    def stream(self, prompt, max_tokens):
        """Times of the chunks of one streamed completion."""
        times = []
        with self.post("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                                           "stream": True, "ignore_eos": True}, stream=True) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    if json.loads(line[6:]).get("choices"):
                        times.append(time.perf_counter())
        return times

    def metrics(self):
        """The prefix-cache and KV-block metrics of /metrics (name -> value)."""
        r = requests.get(self.url + "/metrics", headers=self.headers, timeout=self.timeout)
        r.raise_for_status()
        out = {}
        for line in r.text.splitlines():
            m = re.match(r"^(\w*(?:prefix_cache|kv_block|prompt_tokens_total)\w*)(\{[^}]*\})? (\S+)$", line)
            if m:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out


def words_for(client, tokens, rng):
    """Words of WORDS that make about `tokens` tokens as the server counts them (one measurement, scaled)."""
    _, n = client.prefill_ms(text_of(400, rng))
    return max(1, int(400 * tokens / max(n, 1)))


class Documents:
    """Fresh documents of `words` words: the i-th call's text is new (seeded by a shared counter)."""

    def __init__(self, words, seed):
        self.words, self.seed, self.n, self.lock = words, seed, 0, threading.Lock()

    def next(self):
        with self.lock:
            self.n += 1
            i = self.n
        return text_of(self.words, random.Random(self.seed * 1000003 + i))


def run_parallel(n_threads, fn, stop):
    """Runs fn(i) repeatedly on n_threads threads until stop is set; returns per-call (t0, t1, ok)."""
    out, lock = [], threading.Lock()

    def loop(i):
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                fn(i)
                ok = True
            except requests.RequestException:
                ok = False
            with lock:
                out.append((t0, time.perf_counter(), ok))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    return threads, out


def docs_per_s(client, docs, labels, concurrency, seconds, warmup):
    """Documents finished in a window of `seconds` that starts `warmup` seconds after the clients (the
    first documents of `concurrency` clients all end about one latency after the start: not a rate)."""
    stop = threading.Event()
    threads, calls = run_parallel(concurrency, lambda i: client.classify(docs.next(), labels), stop)
    time.sleep(warmup)
    t0 = time.perf_counter()
    time.sleep(seconds)
    t_end = time.perf_counter()
    stop.set()
    for t in threads:
        t.join()
    wall = t_end - t0
    done = [c for c in calls if c[2] and t0 < c[1] <= t_end]  # documents finished inside the window
    return {"concurrency": concurrency, "documents": len(done), "failed": sum(1 for c in calls if not c[2]),
            "warmup_s": warmup,
            "seconds": wall, "documents_per_s": len(done) / wall,
            "latency_p50_s": percentile([c[1] - c[0] for c in done], 50)}


def batch_docs_per_s(client, docs, labels, n, seconds):
    """Documents/s of `documents` requests of n documents sent back to back by one client for at least
    `seconds` (after one warm-up request), each request timed whole."""
    client.classify_many([docs.next() for _ in range(n)], labels)
    t0 = time.perf_counter()
    done = failed = requests_sent = 0
    while requests_sent == 0 or time.perf_counter() - t0 < seconds:
        out = client.classify_many([docs.next() for _ in range(n)], labels)
        requests_sent += 1
        failed += sum(1 for d in out["data"] if "error" in d)
        done += sum(1 for d in out["data"] if "error" not in d)
    wall = time.perf_counter() - t0
    return {"batch": n, "requests": requests_sent, "documents": done, "failed": failed, "seconds": wall,
            "documents_per_s": done / wall, "step_requests_max": client.metric("headroom_step_requests_max")}


def itl(client, streams, max_tokens, rng, background=None):
    """p50/p99 inter-token latency of `streams` concurrent streamed completions (optionally while
    `background` runs)."""
    stop = threading.Event()
    bg_threads, bg_calls = (run_parallel(*background, stop) if background else ([], []))
    time.sleep(0.5 if background else 0)
    gaps, lock = [], threading.Lock()

    def one(i):
        t = client.stream(text_of(20, random.Random(i)), max_tokens)
        with lock:
            gaps.extend(b - a for a, b in zip(t, t[1:]))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    for t in bg_threads:
        t.join()
    return {"p50_ms": percentile(gaps, 50) * 1000, "p99_ms": percentile(gaps, 99) * 1000, "gaps": len(gaps),
            "background_calls": len(bg_calls)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--bin")
    ap.add_argument("--model-dir")
    ap.add_argument("--model")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--doc-tokens", type=int, default=2000)
    ap.add_argument("--labels", type=int, default=5)
    ap.add_argument("--instruction-tokens", type=int, default=500)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--batch", type=int, nargs="*", default=[],
                    help="also measure `documents` requests of these sizes (one client), e.g. --batch 32 128")
    ap.add_argument("--seconds", type=float, default=20, help="length of each documents/s measurement")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of load before each documents/s window")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated documents")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--stream-tokens", type=int, default=128)
    ap.add_argument("--background-concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--start-timeout", type=float, default=1800)
    ap.add_argument("--device-label", default="")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results"))
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
    rng = random.Random(0)
    client = Client(args.url, args.model, args.api_key, args.timeout)
    labels = LABELS[:args.labels]
    res = {}
    try:
        docs = Documents(words_for(client, args.doc_tokens, rng), args.seed)
        # Best of 3 prefills, each of a new document (a repeated one would be a prefix-cache hit).
        runs = [client.prefill_ms(docs.next()) for _ in range(3)]
        best, doc_tokens = min(runs)
        res["prefill"] = {"tokens": doc_tokens, "ms": best, "tokens_per_s": doc_tokens / best * 1000}
        bound = res["prefill"]["tokens_per_s"] / doc_tokens
        # Batches first: headroom_step_requests_max counts since start, so it is theirs here.
        res["batches"] = []
        for n in args.batch:
            d = batch_docs_per_s(client, docs, labels, n, args.seconds)
            d["fraction_of_prefill_bound"] = d["documents_per_s"] / bound
            res["batches"].append(d)
        res["documents"] = []
        for c in args.concurrency:
            d = docs_per_s(client, docs, labels, c, args.seconds, args.warmup)
            d["fraction_of_prefill_bound"] = d["documents_per_s"] / bound
            res["documents"].append(d)
        res["prefill_bound_documents_per_s"] = bound
        res["itl_alone"] = itl(client, args.streams, args.stream_tokens, rng)
        res["itl_with_classification"] = itl(
            client, args.streams, args.stream_tokens, rng,
            background=(args.background_concurrency, lambda i: client.classify(docs.next(), labels)))
        # Prefix cache: documents that share one instruction block (the head of every prompt).
        instruction = "Read the document carefully. " + text_of(words_for(client, args.instruction_tokens, rng), rng)
        before = client.metrics()
        for i in range(8):
            client.classify(text_of(60, random.Random(100 + i)), labels, instructions=instruction)
        after = client.metrics()
        res["prefix_cache_metrics"] = {k: {"before": before.get(k), "after": v} for k, v in after.items()}
        d_prompt = after.get("headroom_prompt_tokens_total", 0) - before.get("headroom_prompt_tokens_total", 0)
        d_hits = after.get("headroom_prefix_cache_hit_tokens_total", 0) - \
            before.get("headroom_prefix_cache_hit_tokens_total", 0)
        res["prefix_cache_run"] = {"documents": 8, "prompt_tokens": d_prompt, "hit_tokens": d_hits,
                                   "hit_rate": d_hits / d_prompt if d_prompt > 0 else None,
                                   "cached_blocks": after.get("headroom_kv_blocks_cached")}
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    commit = commit_id()
    now = datetime.datetime.now(datetime.timezone.utc)
    res.update({"date": now.strftime("%Y-%m-%d %H:%M UTC"), "commit": commit, "device": args.device_label,
                "model": args.model, "server_args": " ".join(args.server_args), "labels": labels})
    p = res["prefill"]
    lines = [f"## Classification next to generation: {args.model} on {args.device_label or 'unknown device'} "
             f"({res['date']}, commit {commit})", "",
             f"server args: `{res['server_args']}`; documents of {p['tokens']} prompt tokens, {len(labels)} labels",
             "",
             f"Prefill alone: {p['tokens']} tokens in {p['ms']:.1f} ms = {p['tokens_per_s']:.0f} tokens/s, so the "
             f"prefill-bound rate is {bound:.3f} documents/s.", "",
             "| concurrency | documents | failed | documents/s | fraction of prefill bound | p50 latency |",
             "|---|---|---|---|---|---|"]
    for d in res["documents"]:
        lines.append(f"| {d['concurrency']} | {d['documents']} | {d['failed']} | {d['documents_per_s']:.3f} | "
                     f"{d['fraction_of_prefill_bound']:.0%} | {d['latency_p50_s']:.2f} s |")
    if res["batches"]:
        lines += ["", "One client, `documents` requests (a batch's documents side by side on the scheduler):", "",
                  "| documents per request | requests | documents | failed | documents/s | fraction of prefill bound "
                  "| most requests in one step (since start) |", "|---|---|---|---|---|---|---|"]
        for d in res["batches"]:
            lines.append(f"| {d['batch']} | {d['requests']} | {d['documents']} | {d['failed']} | "
                         f"{d['documents_per_s']:.3f} | {d['fraction_of_prefill_bound']:.0%} | "
                         f"{d['step_requests_max']} |")
    a, w = res["itl_alone"], res["itl_with_classification"]
    lines += ["", f"Inter-token latency of {args.streams} streams of {args.stream_tokens} tokens:", "",
              "| | p50 | p99 | gaps |", "|---|---|---|---|",
              f"| alone | {a['p50_ms']:.1f} ms | {a['p99_ms']:.1f} ms | {a['gaps']} |",
              f"| with {args.background_concurrency} classifying clients ({w['background_calls']} documents) | "
              f"{w['p50_ms']:.1f} ms | {w['p99_ms']:.1f} ms | {w['gaps']} |",
              "", f"p99 ratio: {w['p99_ms'] / a['p99_ms']:.2f} (target <= 2)", ""]
    pc = res["prefix_cache_run"]
    if pc["hit_rate"] is not None and "headroom_prefix_cache_hit_tokens_total" in res["prefix_cache_metrics"]:
        lines += [f"Prefix cache over 8 documents sharing a {args.instruction_tokens}-token instruction: hit rate "
                  f"{pc['hit_rate']:.1%} ({pc['hit_tokens']:.0f} of {pc['prompt_tokens']:.0f} prompt tokens), "
                  f"{pc['cached_blocks']:.0f} cached blocks after.", "",
                  "| metric (/metrics) | before | after |", "|---|---|---|"]
        lines += [f"| {k} | {v['before']} | {v['after']} |" for k, v in res["prefix_cache_metrics"].items()]
    else:
        lines.append("Prefix cache: the server exports no prefix_cache metric (no prefix caching).")
    table = "\n".join(lines) + "\n"
    print(table)
    write_results(args.out_dir, f"classify_{args.tag + '_' if args.tag else ''}{now.strftime('%Y%m%d_%H%M%S')}", table, res)


if __name__ == "__main__":
    main()

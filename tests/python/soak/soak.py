#!/usr/bin/env python3
# Soak: N concurrent clients send a mix of requests (streaming and plain completions and chats,
# structured output, classify, clients that disconnect mid-stream or mid-request, a few invalid ones)
# to one `headroom serve` for a fixed time. Passes when there is no 5xx, every request the clients sent
# is counted once in /metrics (headroom_requests_total, all outcomes), and the server's RSS at the end is
# within --rss-tolerance of its RSS after the warm-up.
#
#   python3 tests/python/soak/soak.py --minutes 10            # starts its own server (fixture model, CPU)
#   python3 tests/python/soak/soak.py --url http://127.0.0.1:8080 --pid 1234 --minutes 10
# Needs HEADROOM_BIN and HR_FIXTURES_DIR when it starts the server. Prints one JSON summary line.
import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))

SCHEMA = {"type": "object", "properties": {"kind": {"enum": ["invoice", "receipt", "letter"]},
                                           "pages": {"type": "integer", "minimum": 1, "maximum": 99}},
          "required": ["kind", "pages"], "additionalProperties": False}
LABELS = ["finance", "sports", "weather"]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def requests_total(url):
    text = requests.get(url + "/metrics", timeout=30).text
    total = 0
    for line in text.splitlines():
        if line.startswith("headroom_requests_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


class Client:
    """One client thread's request mix; every request it sends is tallied by what came back."""

    KINDS = ["stream", "plain", "chat", "chat_stream", "schema", "choice", "classify", "disconnect_stream",
             "disconnect_plain", "invalid"]

    def __init__(self, url, model, seed, stats, lock):
        self.url, self.model = url, model
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.stats, self.lock = stats, lock
        host, port = url.replace("http://", "").split(":")
        self.addr = (host, int(port))

    def tally(self, key):
        with self.lock:
            self.stats[key] += 1

    def one(self):
        kind = self.rng.choice(self.KINDS)
        n = self.rng.randint(4, 24)
        prompt = "soak " + " ".join(str(self.rng.randint(0, 999)) for _ in range(self.rng.randint(1, 30)))
        msgs = [{"role": "user", "content": prompt}]
        if kind in ("disconnect_stream", "disconnect_plain"):
            return self.disconnect(kind == "disconnect_stream", prompt)
        if kind == "stream":
            body, path, stream = {"prompt": prompt, "max_tokens": n, "stream": True}, "/v1/completions", True
        elif kind == "plain":
            body, path, stream = {"prompt": prompt, "max_tokens": n}, "/v1/completions", False
        elif kind == "chat":
            body, path, stream = {"messages": msgs, "max_tokens": n}, "/v1/chat/completions", False
        elif kind == "chat_stream":
            body, path, stream = {"messages": msgs, "max_tokens": n, "stream": True}, "/v1/chat/completions", True
        elif kind == "schema":
            body = {"messages": msgs, "max_tokens": 32,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": SCHEMA}}}
            path, stream = "/v1/chat/completions", False
        elif kind == "choice":
            body, path, stream = {"prompt": prompt, "choice": LABELS, "max_tokens": 8}, "/v1/completions", False
        elif kind == "classify":
            body, path, stream = {"document": prompt, "labels": LABELS}, "/v1/classify", False
        else:  # invalid: a 400 that must be counted too
            body, path, stream = {"prompt": prompt, "max_tokens": -1}, "/v1/completions", False
        body["model"] = self.model
        body.setdefault("temperature", self.rng.choice([0, 0.7]))
        if kind == "classify":
            body.pop("temperature")
        try:
            r = self.session.post(self.url + path, json=body, stream=stream, timeout=120)
            if stream and r.status_code == 200:
                done = any(line == b"data: [DONE]" for line in r.iter_lines())
                self.tally("stream_complete" if done else "stream_incomplete")
            else:
                r.content
            self.tally(f"status_{r.status_code}")
        except requests.RequestException as e:
            self.tally("client_error:" + type(e).__name__)
        self.tally("sent")

    def disconnect(self, stream, prompt):
        body = json.dumps({"model": self.model, "prompt": prompt, "max_tokens": 64, "stream": stream}).encode()
        s = socket.create_connection(self.addr, timeout=30)
        try:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            if stream:
                s.recv(256)  # the status line and first bytes, then vanish
            else:
                time.sleep(self.rng.uniform(0, 0.05))
        except OSError as e:
            self.tally("client_error:" + type(e).__name__)
        finally:
            s.close()
        self.tally("disconnected")
        self.tally("sent")


def rss_after_malloc_trim(pid):
    """Diagnosis only (--probe-trim): asks the server's allocator to return free pages (gdb calls
    malloc_trim(0) in it) and reads RSS again. RSS that falls back was free memory the allocator kept
    (fragmentation), not live data."""
    import shutil
    import subprocess
    if not shutil.which("gdb"):
        return None
    subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "call (int) malloc_trim(0)"], capture_output=True,
                   timeout=120)
    return rss_bytes(pid)


def run(url, pid, model, concurrency, warmup_s, duration_s, rss_tolerance, seed=1, probe_trim=False):
    stats, lock = Counter(), threading.Lock()
    stop = threading.Event()

    def loop(i):
        c = Client(url, model, seed * 1000 + i, stats, lock)
        while not stop.is_set():
            c.one()

    counted0 = requests_total(url)
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    t0 = time.time()
    for t in threads:
        t.start()
    time.sleep(warmup_s)
    rss_warm = rss_bytes(pid)
    samples = [(round(time.time() - t0, 1), rss_warm)]
    end = time.time() + duration_s
    while time.time() < end:
        time.sleep(min(10, max(0.1, end - time.time())))
        samples.append((round(time.time() - t0, 1), rss_bytes(pid)))
    stop.set()
    for t in threads:
        t.join(180)
    elapsed = time.time() - t0
    # Disconnects are counted when the server notices them (within a poll interval).
    deadline = time.time() + 15
    counted = requests_total(url) - counted0
    while counted != stats["sent"] and time.time() < deadline:
        time.sleep(0.2)
        counted = requests_total(url) - counted0
    rss_end = rss_bytes(pid)
    five_xx = sum(v for k, v in stats.items() if k.startswith("status_5"))
    client_errors = sum(v for k, v in stats.items() if k.startswith("client_error"))
    growth = (rss_end - rss_warm) / rss_warm
    summary = {
        "concurrency": concurrency, "warmup_s": warmup_s, "duration_s": duration_s, "elapsed_s": round(elapsed, 1),
        "sent": stats["sent"], "counted_in_metrics": counted, "five_xx": five_xx, "client_errors": client_errors,
        "by_result": dict(sorted(stats.items())), "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1), "rss_growth_pct": round(100 * growth, 2),
        "rss_samples_mb": [(t, round(r / 2**20, 1)) for t, r in samples],
    }
    problems = []
    if five_xx:
        problems.append(f"{five_xx} responses were 5xx")
    if client_errors:
        problems.append(f"{client_errors} requests failed at the client")
    if counted != stats["sent"]:
        problems.append(f"{stats['sent']} requests sent but {counted} counted in /metrics")
    if abs(growth) > rss_tolerance:
        problems.append(f"RSS moved {100 * growth:.1f}% after warm-up (tolerance {100 * rss_tolerance:.0f}%)")
    if stats["status_200"] == 0:
        problems.append("no request succeeded")
    summary["problems"] = problems
    if probe_trim:
        trimmed = rss_after_malloc_trim(pid)
        summary["rss_after_malloc_trim_mb"] = round(trimmed / 2**20, 1) if trimmed else None
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--model", default="tiny-mixtral")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=30, help="seconds of load before the RSS baseline")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rss-tolerance", type=float, default=0.05)
    ap.add_argument("--probe-trim", action="store_true", help="at the end, RSS after malloc_trim(0) (needs gdb)")
    a = ap.parse_args()
    server = None
    if a.url is None:
        from conftest import Server
        server = Server(["--max-queue", "64"], model=a.model)
        url, pid = server.url, server.proc.pid
    else:
        url, pid = a.url, a.pid
    try:
        s = run(url, pid, a.model, a.concurrency, a.warmup, a.minutes * 60 - a.warmup, a.rss_tolerance,
                probe_trim=a.probe_trim)
    finally:
        if server:
            server.terminate()
    print(json.dumps(s))
    return 1 if s["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

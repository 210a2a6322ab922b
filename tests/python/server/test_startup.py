# Cold start (issue #19): the listener answers from the first second. /ping is 204 while initialising
# and 200 when ready (the serverless convention); /health is 503 {"status": "starting" | "loading"} with
# the weights' progress, then 200 {"status": "ready"} only after the warm-up step. The tiny fixture loads
# in milliseconds, so HEADROOM_LOAD_DELAY_MS (test only) stretches the weights' load to a few seconds.
import os
import re
import subprocess
import threading
import time

import requests

from conftest import MODEL

DELAY_MS = 3000


def start(env_extra, model_dir=None):
    bin_ = os.environ["HEADROOM_BIN"]
    model_dir = model_dir or os.path.join(os.environ["HR_FIXTURES_DIR"], "models", MODEL)
    args = [bin_, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", "0", "--context", "256",
            "--sequences", "4", "--prefill-chunk", "128"]
    env = dict(os.environ, OMP_NUM_THREADS="1", **env_extra)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
                            env=env)
    lines, port = [], []
    got_port = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m and not port:
                port.append(int(m.group(1)))
                got_port.set()
        got_port.set()

    threading.Thread(target=read, daemon=True).start()
    assert got_port.wait(60) and port, "no port reported:\n" + "\n".join(lines)
    return proc, f"http://127.0.0.1:{port[0]}", lines


def test_ping_and_health_during_startup():
    proc, url, lines = start({"HEADROOM_LOAD_DELAY_MS": str(DELAY_MS)})
    seen = []  # (seconds, ping status, health status, health json)
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            assert proc.poll() is None, "server exited during start-up:\n" + "\n".join(lines[-30:])
            p = requests.get(url + "/ping", timeout=5)
            h = requests.get(url + "/health", timeout=5)
            seen.append((time.time() - t0, p.status_code, h.status_code, h.json()))
            if p.status_code == 200 and h.status_code == 200:
                break
            time.sleep(0.05)
        ping = [s[1] for s in seen]
        health = [s[3]["status"] for s in seen]
        assert ping[-1] == 200 and seen[-1][2] == 200 and health[-1] == "ready", seen[-5:]
        # Answers from the start, 204 while initialising, never 503 on a healthy start.
        assert ping[0] == 204 and set(ping) <= {204, 200}, ping
        # 200 only at the end: once ready it stays ready.
        first_ready = ping.index(200)
        assert all(p == 200 for p in ping[first_ready:])
        # /ping and /health are two requests: readiness may fall between them, once.
        health_ready = [i for i, s in enumerate(seen) if s[2] == 200]
        assert health_ready[0] >= first_ready - 1 and health_ready == list(range(health_ready[0], len(seen)))
        before = seen[:min(first_ready, health_ready[0])]
        assert all(s[2] == 503 and s[3]["status"] in ("starting", "loading") for s in before), before[:3]
        # The load lasted at least the injected delay and /health showed it moving.
        loading = [s[3] for s in before if s[3]["status"] == "loading" and "weights" in s[3]]
        assert len(loading) >= 5, before
        fractions = [w["weights"]["fraction"] for w in loading]
        assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions), fractions
        assert any(0.0 < f < 1.0 for f in fractions), fractions
        total = loading[-1]["weights"]["total_bytes"]
        assert total > 0 and all(w["weights"]["total_bytes"] == total for w in loading)
        assert seen[first_ready][0] >= DELAY_MS / 1000 * 0.9
        # Not a terminal: periodic log lines with bytes, rate and ETA, then the summary.
        text = "\n".join(lines)
        assert re.search(r"loading weights: [0-9.]+/[0-9.]+ GB, [0-9.]+ GB/s, ETA", text), text[-2000:]
        assert re.search(r"weights: [0-9.]+ GB in [0-9.]+ s", text), text[-2000:]
        # Ready means served.
        r = requests.post(url + "/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 2}, timeout=30)
        assert r.status_code == 200
    finally:
        proc.kill()
        proc.wait(30)


def test_malformed_load_delay_is_a_clear_error():
    proc, url, lines = start({"HEADROOM_LOAD_DELAY_MS": "soon"})
    try:
        assert proc.wait(60) == 2
        time.sleep(0.5)  # the reader thread drains stderr
        assert any("HEADROOM_LOAD_DELAY_MS: expected milliseconds" in line for line in lines), lines
    finally:
        if proc.poll() is None:
            proc.kill()


def test_prequantized_checkpoint_serves_without_weights_flag(tmp_path):
    # `headroom quantize` output is what a serverless image should ship; `serve` takes its format by itself.
    out = tmp_path / "mixtral-int8"
    src = os.path.join(os.environ["HR_FIXTURES_DIR"], "models", MODEL)
    r = subprocess.run([os.environ["HEADROOM_BIN"], "quantize", "--model", src, "--weights", "int8", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(src, name)) and not (out / name).exists():
            (out / name).write_bytes(open(os.path.join(src, name), "rb").read())
    proc, url, lines = start({}, str(out))
    try:
        t0 = time.time()
        while time.time() - t0 < 60:
            assert proc.poll() is None, "server exited:\n" + "\n".join(lines[-20:])
            if requests.get(url + "/ping", timeout=5).status_code == 200:
                break
            time.sleep(0.05)
        assert requests.get(url + "/health", timeout=5).json() == {"status": "ready"}
        assert any("pre-quantized: copied as stored" in line for line in lines), lines[-10:]
    finally:
        proc.kill()
        proc.wait(30)

# Failover behind a real load balancer: two `headroom serve` replicas behind HAProxy on loopback, with
# health checks on /health. A steady stream of requests (plain and streamed) runs throughout:
#   1. replica A gets SIGTERM: it drains (its requests in flight finish, /health says 503 at once) and
#      no request is lost: HAProxy retries the few that reach A while it drains (503) or after it closed;
#   2. A is started again and HAProxy takes it back;
#   3. replica B is killed with SIGKILL mid-stream: the requests in flight on B fail at the client with
#      a clear error (502 from HAProxy, or a stream cut before its [DONE]); every request sent after the
#      kill succeeds on A.
# Needs: haproxy (Debian package), HEADROOM_BIN, HR_FIXTURES_DIR. Bounded: about 30 s on 2 cores.
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

MODEL = "tiny-mixtral"
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    def __init__(self, port):
        self.port = port
        model_dir = os.path.join(os.environ["HR_FIXTURES_DIR"], "models", MODEL)
        args = [os.environ["HEADROOM_BIN"], "serve", "--model", model_dir, "--host", "127.0.0.1", "--port",
                str(port), "--context", "2048", "--sequences", "8", "--prefill-chunk", "128", "--grace", "20"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.lines = []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     errors="replace", env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("replica exited:\n" + "\n".join(self.lines[-20:]))
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("replica not ready:\n" + "\n".join(self.lines[-20:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


HAPROXY_CFG = """
global
    maxconn 512
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout queue 10s
    # A request that reaches a draining replica (503) or one that is gone (refused, closed before any
    # answer) is sent to the other; one already answered or streaming is never replayed.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
    option http-buffer-request
frontend fe
    bind 127.0.0.1:{fe}
    default_backend replicas
backend replicas
    # leastconn: long streams hold their connections, so new ones spread over both replicas.
    balance leastconn
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
    server a 127.0.0.1:{a} check
    server b 127.0.0.1:{b} check
"""


class Load:
    """Client threads sending requests through the balancer; each result is (start, end, kind, outcome)."""

    def __init__(self, url, n=4):
        self.url, self.stop, self.results, self.lock = url, threading.Event(), [], threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def loop(self, i):
        k = 0
        while not self.stop.is_set():
            stream = (k + i) % 2 == 0
            k += 1
            # Streams are long (about 2 s each, so that one is mid-stream on each replica at almost any
            # time), plain ones short.
            body = {"model": MODEL, "prompt": f"failover {i} {k}", "max_tokens": 1500 if stream else 16,
                    "temperature": 0, "stream": stream, "ignore_eos": True}
            t0 = time.time()
            try:
                r = requests.post(self.url + "/v1/completions", json=body, stream=stream, timeout=30)
                if r.status_code != 200:
                    outcome = f"http_{r.status_code}"
                elif stream:
                    lines = [ln for ln in r.iter_lines() if ln]
                    outcome = "ok" if lines and lines[-1] == b"data: [DONE]" else "stream_cut"
                else:
                    outcome = "ok" if r.json()["choices"][0]["text"] is not None else "bad_body"
            except requests.exceptions.ChunkedEncodingError:
                outcome = "stream_cut"
            except requests.RequestException as e:
                outcome = "error:" + type(e).__name__
            with self.lock:
                self.results.append((t0, time.time(), "stream" if stream else "plain", outcome))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(40)
        return sorted(self.results)


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (scripts/install-deps.sh installs it)")
def test_haproxy_failover_drain_and_kill(tmp_path):
    t_start = time.time()
    pa, pb, fe = free_port(), free_port(), free_port()
    a, b = Replica(pa), Replica(pb)
    reps = [a, b]
    ha = None
    load = None
    try:
        a.wait_ready()
        b.wait_ready()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(fe=fe, a=pa, b=pb))
        ha = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{fe}"
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        time.sleep(0.6)  # both replicas seen up (rise 2 x 200 ms)

        load = Load(url)
        time.sleep(2)
        # 1. graceful: SIGTERM to A; it drains and exits 0.
        t_term = time.time()
        a.proc.send_signal(signal.SIGTERM)
        assert a.proc.wait(30) == 0, "\n".join(a.lines[-20:])
        time.sleep(1)
        # 2. A comes back on the same port; HAProxy takes it back.
        a = Replica(pa)
        reps.append(a)
        a.wait_ready()
        time.sleep(1.0)
        t_back = time.time()
        # 3. SIGKILL to B while requests are in flight on it: kill right after the scrape that saw one
        #    (a second scrape in between gave short requests time to finish: a flaky test).
        running = {"a": None, "b": 0.0}
        in_flight_deadline = time.time() + 10
        while time.time() < in_flight_deadline:
            text = requests.get(f"http://127.0.0.1:{pb}/metrics", timeout=5).text
            m = re.search(r"^headroom_running_sequences (\S+)", text, re.M)
            running["b"] = float(m.group(1)) if m else 0.0
            if running["b"] >= 1:
                break
            time.sleep(0.02)
        t_kill = time.time()
        b.proc.kill()
        b.proc.wait(10)
        time.sleep(3)
        results = load.finish()
        load = None
    finally:
        if load:
            load.finish()
        if ha and ha.poll() is None:
            ha.terminate()
            ha.wait(10)
        for r in reps:
            r.stop()

    before_kill = [r for r in results if r[0] < t_kill and r[1] < t_kill]
    lost = [r for r in before_kill if r[3] != "ok"]
    assert not lost, f"requests lost around the graceful drain (SIGTERM at {t_term - t_start:.1f} s): {lost}"
    assert sum(1 for r in results if t_term <= r[0] < t_back) >= 4, "too few requests during the drain"
    # In flight when B died: either finished on A, or failed with a clear error.
    spanning = [r for r in results if r[0] < t_kill <= r[1]]
    for r in spanning:
        assert r[3] in ("ok", "stream_cut", "http_502", "http_503", "http_504"), r
    # Something ran on B when it was killed (scraped just before). Which outcome it gets depends on its
    # kind: a stream already answering is cut (stream_cut / 502 above), a plain request not yet answered is
    # retried on A by HAProxy (retry-on empty-response) and ends "ok". Requiring a failure here made the
    # test flaky: round-robin can settle into streams on A and plain requests on B.
    assert running["b"] >= 1, "no request ever ran on replica B"
    after = [r for r in results if r[0] >= t_kill]
    assert len(after) >= 4, "too few requests after the kill"
    failed_after = [r for r in after if r[3] != "ok"]
    assert not failed_after, f"requests sent after the kill failed: {failed_after}"
    summary = {"requests": len(results), "during_drain": sum(1 for r in results if t_term <= r[0] < t_back),
               "in_flight_at_kill": [r[3] for r in spanning], "running_at_kill": running, "after_kill": len(after),
               "seconds": round(time.time() - t_start, 1)}
    print(json.dumps(summary))
    assert time.time() - t_start < 60

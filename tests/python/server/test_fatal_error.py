# A fatal error inside a model step (what a sticky CUDA error is; injected here with the test-only
# HEADROOM_FAULT_INJECT) fails every request in flight with an explicit error, reports 503, and ends the
# process with a non-zero status within seconds (RELIABILITY #99).
import json
import os
import subprocess
import threading
import time

import requests

from conftest import Server

# Fire in the third step that runs both requests, so that both are in flight whatever the warm-up did.
FAULT = "fatal_after_steps=3,min_seqs=2"
EXIT_WITHIN_S = 10


def test_fatal_in_a_step_fails_requests_in_flight_and_exits_non_zero(monkeypatch):
    monkeypatch.setenv("HEADROOM_FAULT_INJECT", FAULT)
    # A long context and ignore_eos: neither request can finish before the fault fires.
    s = Server(context=4096)
    try:
        body = {"model": s.model, "prompt": "a fatal error is coming", "max_tokens": 4000, "temperature": 0,
                "ignore_eos": True}
        events = []
        out = {}
        first_chunk = threading.Event()

        def stream():
            try:
                with requests.post(s.url + "/v1/completions", json=dict(body, stream=True), stream=True,
                                   timeout=60) as r:
                    out["stream_status"] = r.status_code
                    for line in r.iter_lines():
                        if line:
                            events.append(line.decode())
                            first_chunk.set()
            except requests.RequestException as e:
                out["stream_exception"] = repr(e)
            finally:
                first_chunk.set()

        def plain():
            try:
                r = requests.post(s.url + "/v1/completions", json=body, timeout=60)
                out["plain_status"], out["plain_body"] = r.status_code, r.json()
            except (requests.RequestException, ValueError) as e:
                out["plain_exception"] = repr(e)
            out["plain_done_at"] = time.monotonic()

        health = []  # (sent at, status or None when refused)

        def poll_health():
            while s.proc.poll() is None:
                sent = time.monotonic()
                try:
                    health.append((sent, requests.get(s.url + "/health", timeout=5).status_code))
                except requests.RequestException:
                    health.append((sent, None))
                time.sleep(0.005)

        ts = threading.Thread(target=stream)
        tp = threading.Thread(target=plain)
        th = threading.Thread(target=poll_health, daemon=True)
        th.start()
        ts.start()
        assert first_chunk.wait(60)
        tp.start()
        tp.join(60)
        ts.join(60)

        # The non-streaming request: an OpenAI-style error object, not a cut connection.
        assert "plain_exception" not in out, out
        assert out["plain_status"] == 503, out
        err = out["plain_body"]["error"]
        assert err["type"] == "server_error", err
        assert err["code"] == "engine_dead", err
        assert "fatal device error" in err["message"] and "restarting" in err["message"], err

        # The streaming request: 200 with some tokens, then an SSE error event, then [DONE].
        assert "stream_exception" not in out, (out, events)
        assert out["stream_status"] == 200
        assert len(events) >= 3, events
        assert events[-1] == "data: [DONE]", events
        last = json.loads(events[-2][len("data: "):])
        assert last["error"]["code"] == "engine_dead", last
        assert last["error"]["type"] == "server_error", last
        assert all("error" not in json.loads(e[len("data: "):]) for e in events[:-2]), events

        # The process ends by itself, non-zero, within seconds.
        code = s.proc.wait(EXIT_WITHIN_S)
        assert code != 0, code
        s._reader.join(10)
        log = s.log_text()
        assert "injected fault (HEADROOM_FAULT_INJECT)" in log, log[-3000:]
        assert "2 HTTP requests were in flight; 0 still were" in log, log[-3000:]
        assert "headroom: fatal: ending the process" in log, log[-3000:]

        # Health never said ready once the error was out: every probe sent after the non-streaming
        # error came back was answered 503 or refused (the process may already be gone).
        th.join(10)
        late = [st for sent, st in health if sent > out["plain_done_at"]]
        assert all(st in (503, None) for st in late), late
    finally:
        s.kill()


def test_fault_injection_is_refused_when_malformed():
    env = dict(os.environ, HEADROOM_FAULT_INJECT="fatal_after_steps=soon", OMP_NUM_THREADS="1")
    model_dir = os.path.join(os.environ["HR_FIXTURES_DIR"], "models", "tiny-mixtral")
    r = subprocess.run([os.environ["HEADROOM_BIN"], "serve", "--model", model_dir, "--host", "127.0.0.1", "--port",
                        "0", "--context", "256"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert r.returncode != 0
    assert "HEADROOM_FAULT_INJECT: 'fatal_after_steps' must be an integer >= 0, found 'soon'" in r.stderr, r.stderr

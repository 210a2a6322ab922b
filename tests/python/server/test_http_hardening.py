# The HTTP layer holds against hostile and careless clients (issue 17 rows 2, 3, 5, 9, 10): chunked
# bodies held to --max-body, no port sharing, slowloris and connection caps, header caps, early 413,
# Host / Origin / Content-Type policy, in-order answers to pipelined requests. Raw sockets on
# 127.0.0.1 only; every loop is bounded and every read has a deadline.
import json
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Server, wait_for
from rawhttp import Reader, connect, exchange, request_bytes, rss_bytes

MB = 1024 * 1024


def comp_body(server, prompt="hi", max_tokens=2):
    return json.dumps({"model": server.model, "prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0}).encode()


def health_latency(server):
    t0 = time.time()
    r = requests.get(server.url + "/health", timeout=5)
    assert r.status_code == 200
    return time.time() - t0


# --- row 2: chunked bodies are held to --max-body ------------------------------------------------

def send_chunked(server, total, chunk=64 * 1024):
    """Streams a chunked JSON body of `total` bytes; stops when the server answers or closes.
    Returns (status or None, bytes sent)."""
    s = connect(server.url, timeout=30)
    sent = 0
    try:
        s.sendall(request_bytes("POST", "/v1/completions", headers={
            "Content-Length": None, "Transfer-Encoding": "chunked"}))
        head = b'{"model": "%s", "prompt": "' % server.model.encode()
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        piece = b"%x\r\n%s\r\n" % (chunk, b"a" * chunk)
        s.setblocking(False)
        deadline = time.time() + 60
        while sent < total and time.time() < deadline:
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break  # an answer arrived before the body was complete
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            try:
                sent += s.send(piece)
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        s.setblocking(True)
        s.settimeout(30)
        try:
            r = Reader(s, 30).response()
        except (ConnectionError, TimeoutError):
            r = None
        return (r[0] if r else None), sent
    finally:
        s.close()


def test_chunked_body_over_max_body_is_413_without_reading_it_all(server):
    status, sent = send_chunked(server, 20 * MB)
    assert status == 413, f"expected 413 for a 20 MB chunked body, got {status} after {sent} bytes"
    # The server stopped reading near the 2 MB limit (socket buffers hold a few MB more at most).
    assert sent < 12 * MB, f"the client could send {sent} bytes: the server read the body past its limit"


def test_one_huge_chunk_is_413_at_its_size_line(server):
    raw = request_bytes("POST", "/v1/completions", headers={"Content-Length": None, "Transfer-Encoding": "chunked"})
    t0 = time.time()
    r = exchange(server.url, raw + b"1400000\r\n" + b"a" * 1000, timeout=10)
    assert r is not None and r[0] == 413, r
    assert time.time() - t0 < 2


def test_chunked_bodies_leave_no_rss_behind(server):
    pid = server.proc.pid
    send_chunked(server, 20 * MB)
    before = rss_bytes(pid)
    for _ in range(3):
        status, _ = send_chunked(server, 20 * MB)
        assert status == 413
    grown = rss_bytes(pid) - before
    assert grown < 32 * MB, f"RSS grew by {grown / MB:.0f} MB over three refused chunked bodies"


def test_chunked_body_within_limit_is_served(server):
    body = comp_body(server, "hello there")
    raw = request_bytes("POST", "/v1/completions", headers={"Content-Length": None, "Transfer-Encoding": "chunked"})
    half = len(body) // 2
    raw += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    r = exchange(server.url, raw)
    assert r[0] == 200, r
    assert json.loads(r[2])["choices"][0]["finish_reason"] in ("length", "stop")


# --- row 5: large Content-Length, header caps, slowloris, connection cap ------------------------

def test_large_content_length_is_413_before_any_body(server):
    raw = request_bytes("POST", "/v1/completions", headers={"Content-Length": str(10 ** 9)})
    t0 = time.time()
    r = exchange(server.url, raw, timeout=10)  # no body is sent at all
    assert r is not None and r[0] == 413, r
    assert r[1].get("connection", "").lower() == "close"
    assert time.time() - t0 < 2


def test_header_count_and_size_caps(server):
    many = {f"X-F{i}": "v" for i in range(300)}
    r = exchange(server.url, request_bytes("GET", "/v1/models", headers=many), timeout=10)
    assert r is not None and r[0] == 431, r
    big = {"X-Big": "v" * (64 * 1024)}
    r = exchange(server.url, request_bytes("GET", "/v1/models", headers=big), timeout=10)
    assert r is not None and r[0] == 431, r
    assert requests.get(server.url + "/health", timeout=5).status_code == 200


def test_slowloris_does_not_block_health(server):
    # 100 connections, each sending one header byte every 2 s (for ~8 s); /health answers within 1 s.
    socks = []
    for _ in range(100):
        s = connect(server.url, timeout=5)
        s.sendall(b"G")
        socks.append(s)
    try:
        worst = 0.0
        payload = b"ET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for step in range(4):
            for s in socks:
                try:
                    s.sendall(payload[step:step + 1])
                except OSError:
                    pass
            for _ in range(4):
                worst = max(worst, health_latency(server))
                time.sleep(0.5)
        assert worst < 1.0, f"/health took {worst:.2f} s under slowloris"
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def strict_server():
    s = Server(["--max-connections", "8", "--header-timeout", "2", "--allowed-hosts", "api.example",
                "--allowed-origins", "https://app.example"])
    yield s
    s.terminate()


def test_header_deadline_closes_a_trickling_connection(strict_server):
    s = connect(strict_server.url, timeout=10)
    try:
        t0 = time.time()
        closed = False
        for ch in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 20:
            try:
                s.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            s.settimeout(0.5)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
            if time.time() - t0 > 8:
                break
        assert closed, "the connection was still open after 8 s of a trickled header (deadline 2 s)"
        assert time.time() - t0 < 5
    finally:
        s.close()


def test_connection_cap_keeps_health_reachable(strict_server):
    # Twice the cap of connections that never finish their header: the oldest are closed to admit new
    # ones, so /health stays reachable and the open count stays at the cap.
    socks = []
    try:
        for _ in range(16):
            s = connect(strict_server.url, timeout=5)
            s.sendall(b"GET /v1/models HTTP/1.1\r\n")
            socks.append(s)
        for _ in range(5):
            assert health_latency(strict_server) < 1.0
        assert strict_server.metric("headroom_http_connections_open") <= 8
        assert strict_server.metric('headroom_http_connections_closed_total{reason="evicted"}') >= 8
    finally:
        for s in socks:
            s.close()


# --- row 3: no port sharing ---------------------------------------------------------------------

def test_second_server_on_the_same_port_fails_to_start(server):
    port = server.url.rsplit(":", 1)[1]
    args = [server.bin, "serve", "--model", server.model_dir, "--host", "127.0.0.1", "--port", port]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "in use" in p.stderr and port in p.stderr, p.stderr
    # The first one still serves every request.
    for _ in range(5):
        assert requests.get(server.url + "/v1/models", timeout=5).json()["data"][0]["id"] == server.model


# --- row 9: Host / Origin / Content-Type ---------------------------------------------------------

def test_post_must_be_json(server):
    body = comp_body(server)
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        r = exchange(server.url, request_bytes("POST", "/v1/completions", body, headers={"Content-Type": ct}))
        assert r[0] == 415, (ct, r)
        assert json.loads(r[2])["error"]["code"] == "unsupported_media_type"
    r = exchange(server.url, request_bytes("POST", "/v1/completions", body,
                                           headers={"Content-Type": "application/json; charset=utf-8"}))
    assert r[0] == 200, r


def test_foreign_host_and_origin_are_refused(server):
    port = server.url.rsplit(":", 1)[1]
    body = comp_body(server)
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io"):
        r = exchange(server.url, request_bytes("POST", "/v1/completions", body, host=host))
        assert r[0] == 403, (host, r)
        assert json.loads(r[2])["error"]["code"] == "host_not_allowed"
        r = exchange(server.url, request_bytes("GET", "/v1/models", host=host))
        assert r[0] == 403, (host, r)
    for origin in ("http://evil.example", "null", f"http://evil.example:{port}"):
        r = exchange(server.url, request_bytes("POST", "/v1/completions", body, headers={"Origin": origin}))
        assert r[0] == 403, (origin, r)
        assert json.loads(r[2])["error"]["code"] == "origin_not_allowed"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        r = exchange(server.url, request_bytes("GET", "/v1/models", host=host))
        assert r[0] == 200, (host, r)
    r = exchange(server.url, request_bytes("POST", "/v1/completions", body,
                                           headers={"Origin": f"http://localhost:{port}"}))
    assert r[0] == 200, r
    # Health checks answer whatever name a load balancer or probe uses.
    r = exchange(server.url, request_bytes("GET", "/health", host="10.0.0.7:8080"))
    assert r[0] == 200, r
    assert (server.metric('headroom_requests_total{outcome="http_403"}') or 0) >= 7


def test_allow_lists_are_configurable(strict_server):
    s = strict_server
    body = comp_body(s)
    r = exchange(s.url, request_bytes("GET", "/v1/models", host="api.example:443"))
    assert r[0] == 200, r
    r = exchange(s.url, request_bytes("POST", "/v1/completions", body, headers={"Origin": "https://app.example"}))
    assert r[0] == 200, r
    r = exchange(s.url, request_bytes("POST", "/v1/completions", body, headers={"Origin": "http://app.example"}))
    assert r[0] == 403, r
    r = exchange(s.url, request_bytes("GET", "/v1/models", host="other.example"))
    assert r[0] == 403, r


# --- row 10: pipelining --------------------------------------------------------------------------

def test_pipelined_requests_are_answered_in_order(server):
    body = lambda p: comp_body(server, p, 3)
    reqs = [request_bytes("GET", "/v1/models"),
            request_bytes("POST", "/v1/completions", body("one")),
            request_bytes("GET", "/health"),
            request_bytes("POST", "/v1/completions", json.dumps({"model": server.model, "prompt": "two",
                                                                  "max_tokens": 3, "stream": True}).encode()),
            request_bytes("POST", "/v1/completions", b"{not json"),
            request_bytes("GET", "/nothing-here"),
            request_bytes("POST", "/v1/completions", body("three"))]
    s = connect(server.url, timeout=60)
    try:
        s.sendall(b"".join(reqs))
        rd = Reader(s, 60)
        got = [rd.response() for _ in reqs]
    finally:
        s.close()
    assert all(g is not None for g in got), f"{sum(g is None for g in got)} of {len(reqs)} answers missing"
    assert [g[0] for g in got] == [200, 200, 200, 200, 400, 404, 200]
    assert json.loads(got[0][2])["object"] == "list"
    assert json.loads(got[1][2])["object"] == "text_completion"
    assert json.loads(got[2][2])["status"] == "ready"
    assert got[3][2].rstrip().endswith(b"data: [DONE]")
    assert json.loads(got[6][2])["object"] == "text_completion"


def test_pipelined_request_after_connection_close_is_not_read(server):
    # Connection: close ends the exchange after the first answer; the close is explicit, never silent.
    raw = request_bytes("GET", "/health", headers={"Connection": "close"}) + request_bytes("GET", "/health")
    s = connect(server.url, timeout=10)
    try:
        s.sendall(raw)
        rd = Reader(s, 10)
        first = rd.response()
        assert first[0] == 200 and first[1].get("connection") == "close"
        assert rd.response() is None
    finally:
        s.close()

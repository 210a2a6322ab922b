# Raw-socket HTTP/1.1 helpers for the transport tests (127.0.0.1 only; every read has a timeout).
import socket
import time


def connect(url, timeout=10):
    host, port = url.replace("http://", "").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def request_bytes(method, path, body=b"", headers=None, host="127.0.0.1"):
    h = {"Host": host}
    if body or method == "POST":
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Reader:
    """Reads HTTP responses from a socket, one at a time, with an overall deadline."""

    def __init__(self, sock, timeout=30):
        self.sock = sock
        self.buf = b""
        self.deadline = time.time() + timeout
        self.closed = False

    def _more(self):
        left = self.deadline - time.time()
        if left <= 0:
            raise TimeoutError("no complete response before the deadline")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._more():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            if not self._more():
                raise ConnectionError("connection closed inside a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """(status, headers dict lower-case, body bytes), or None when the server closed first."""
        line = self._line()
        if line is None or line == b"":
            return None
        status = int(line.split(b" ")[1])
        headers = {}
        while True:
            line = self._line()
            if line is None:
                raise ConnectionError("connection closed inside a header")
            if line == b"":
                break
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    break
                body += self._exactly(size)
                self._exactly(2)
        else:
            while self._more():
                pass
            body, self.buf = self.buf, b""
        return status, headers, body


def exchange(url, raw, timeout=30):
    """Sends raw bytes on a fresh connection and returns the first response (or None)."""
    s = connect(url, timeout)
    try:
        s.sendall(raw)
        return Reader(s, timeout).response()
    finally:
        s.close()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

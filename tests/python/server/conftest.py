# Starts the real `headroom serve` binary on 127.0.0.1 (a port the OS picks) with a fixture model.
# Needs: HEADROOM_BIN, HR_FIXTURES_DIR (set by ctest); pip: openai, pytest, requests.
import os
import re
import shlex
import signal
import subprocess
import threading
import time

import pytest
import requests

MODEL = "tiny-mixtral"
START_TIMEOUT_S = 120
# Extra serve flags for every server these tests start: ctest's python_server_tp2 runs a subset of them
# with "--tensor-parallel 2" (tests/python/CMakeLists.txt); tiny-mixtral's heads and experts divide by 2.
EXTRA_ARGS = shlex.split(os.environ.get("HR_SERVE_EXTRA_ARGS", ""))


class Server:
    def __init__(self, extra_args=(), model=MODEL, context=256):
        self.bin = os.environ["HEADROOM_BIN"]
        self.model_dir = os.path.join(os.environ["HR_FIXTURES_DIR"], "models", model)
        self.model = model
        args = [self.bin, "serve", "--model", self.model_dir, "--host", "127.0.0.1", "--port", "0",
                "--context", str(context), "--sequences", "16", "--prefill-chunk", "128"] + EXTRA_ARGS + list(extra_args)
        # One OpenMP thread: CI machines are shared, and spinning worker threads only add noise here.
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     errors="replace", env=env)
        self.lines = []
        self._port = None
        self._port_ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._port_ready.wait(START_TIMEOUT_S) or self._port is None:
            self.kill()
            raise RuntimeError("server did not report its port:\n" + "\n".join(self.lines[-30:]))
        self.url = f"http://127.0.0.1:{self._port}"
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited during start-up:\n" + "\n".join(self.lines[-30:]))
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not become ready:\n" + "\n".join(self.lines[-30:]))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m and self._port is None:
                self._port = int(m.group(1))
                self._port_ready.set()
        self._port_ready.set()

    def log_text(self):
        return "\n".join(self.lines)

    def metric(self, name, headers=None):
        text = requests.get(self.url + "/metrics", headers=headers or {}, timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split(" ")[-1])
        return None

    def terminate(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def wait_for(pred, timeout_s=30.0, interval_s=0.05):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval_s)
    return pred()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.terminate()

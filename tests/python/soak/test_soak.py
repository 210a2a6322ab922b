# The one-minute soak (the ten-minute run is `python3 tests/python/soak/soak.py --minutes 10`; its
# figures are in docs/reliability.md): 64 concurrent mixed requests, zero 5xx, every request counted in
# /metrics, RSS at the end within 5% of RSS after the warm-up.
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import Server  # noqa: E402
from soak import run  # noqa: E402


def test_one_minute_soak():
    server = Server(["--max-queue", "64"])
    try:
        s = run(server.url, server.proc.pid, server.model, concurrency=64, warmup_s=10, duration_s=40,
                rss_tolerance=0.05)
    finally:
        server.terminate()
    print(json.dumps(s))
    assert not s["problems"], json.dumps(s, indent=1)

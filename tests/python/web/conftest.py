# The web page's browser test reuses tests/python/server's Server (the real `headroom serve` on a fixture
# model), loaded under its own module name so that pytest's conftest handling never sees it twice.
import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "hr_server_harness", os.path.join(os.path.dirname(__file__), "..", "server", "conftest.py"))
server_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(server_harness)

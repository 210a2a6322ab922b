"""Regression: classify the held-out sample documents (examples/documents, split "heldout") with the real
SmolLM2-135M-Instruct Q4_1 GGUF through `headroom classify` as scripts/demo.sh does (examples/labels.txt,
few-shot examples from examples/fewshot, default options: the embedding method), and require at least the
accuracy docs/classify.md reports. The held-out part only (12 documents) keeps the test near a minute on one core;
the tune part's number is in docs/classify.md. Skips with a message when the model file is absent
(`bash scripts/fetch-model.sh` fetches it; scripts/test.sh does). Needs: HEADROOM_BIN, HR_SOURCE_DIR."""
import os
import re
import subprocess

import pytest

BIN = os.environ.get("HEADROOM_BIN", "headroom")
ROOT = os.environ.get("HR_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODEL = os.environ.get("HR_SMOLLM2_GGUF", os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))

# What docs/classify.md reports for the demo's options (measured through headroom on this model).
MIN_HELDOUT_RIGHT = 10


def test_heldout_accuracy():
    if not os.path.exists(MODEL):
        pytest.skip(f"SmolLM2 GGUF not found at {MODEL} (bash scripts/fetch-model.sh fetches it)")
    # One thread, as measured: another thread count changes float summation order, which can flip a
    # close call.
    env = dict(os.environ, OMP_WAIT_POLICY="passive", OMP_NUM_THREADS="1")
    docs = os.path.join(ROOT, "examples", "documents")
    r = subprocess.run([BIN, "classify", "--model", MODEL, "--labels-file", os.path.join(ROOT, "examples", "labels.txt"),
                        "--examples", os.path.join(ROOT, "examples", "fewshot"),
                        "--manifest", os.path.join(docs, "manifest.jsonl"), "--split", "heldout", docs],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    m = re.search(r"^accuracy: (\d+)/(\d+) ", r.stdout, re.M)
    assert m, r.stdout
    right, n = int(m.group(1)), int(m.group(2))
    assert n == 12, r.stdout
    assert right >= MIN_HELDOUT_RIGHT, r.stdout
    assert len([line for line in r.stdout.splitlines() if "true:" in line]) == 12
    assert "method embedding" in r.stdout, r.stdout

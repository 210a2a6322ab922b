"""Regression: classify the sample documents (examples/documents) with the real SmolLM2-135M-Instruct Q4_1
GGUF through `headroom classify` with the default options and examples/labels.txt, and require at least
the accuracy docs/classify.md reports. Skips with a message when the model file is absent
(`bash scripts/fetch-model.sh` fetches it; scripts/test.sh does). Needs: HEADROOM_BIN, HR_SOURCE_DIR."""
import os
import re
import subprocess

import pytest

BIN = os.environ.get("HEADROOM_BIN", "headroom")
ROOT = os.environ.get("HR_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODEL = os.environ.get("HR_SMOLLM2_GGUF", os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))

# What docs/classify.md reports for the defaults (measured through headroom on this model).
MIN_RIGHT = {"all": 11, "heldout": 4}


def run(*extra):
    if not os.path.exists(MODEL):
        pytest.skip(f"SmolLM2 GGUF not found at {MODEL} (bash scripts/fetch-model.sh fetches it)")
    # One thread, as measured: another thread count changes float summation order, which can flip a
    # close call.
    env = dict(os.environ, OMP_WAIT_POLICY="passive", OMP_NUM_THREADS="1")
    docs = os.path.join(ROOT, "examples", "documents")
    r = subprocess.run([BIN, "classify", "--model", MODEL, "--labels-file", os.path.join(ROOT, "examples", "labels.txt"),
                        "--manifest", os.path.join(docs, "manifest.jsonl"), *extra, docs],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    m = re.search(r"^accuracy: (\d+)/(\d+) = [\d.]+%(.*)$", r.stdout, re.M)
    assert m, r.stdout
    splits = dict((k, (int(a), int(b))) for k, a, b in re.findall(r"(\w+) (\d+)/(\d+)", m.group(3)))
    return (int(m.group(1)), int(m.group(2))), splits, r.stdout


def test_sample_documents_accuracy():
    (right, n), splits, out = run()
    assert n == 30, out
    assert right >= MIN_RIGHT["all"], out
    assert splits["heldout"][1] == 12 and splits["heldout"][0] >= MIN_RIGHT["heldout"], out

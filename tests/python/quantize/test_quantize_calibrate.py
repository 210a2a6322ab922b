"""`headroom quantize --calibrate`: router statistics of calibration prompts recorded in the checkpoint
(headroom.expert_hits), shown by `inspect`, used by `plan --offload-experts` (the coldest experts go to
host memory), and bad inputs as errors that name the flag (docs/memory.md, "Hot experts")."""
import json
import os
import struct
import subprocess

import pytest

BIN = os.environ.get("HEADROOM_BIN", "headroom")
FIXTURES = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
MIXTRAL = os.path.join(FIXTURES, "models", "tiny-mixtral")
LLAMA = os.path.join(FIXTURES, "models", "tiny-llama")


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)


def metadata(out):
    with open(out / "model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))["__metadata__"]


def check_hits(hits, tokens=None):
    assert len(hits["layers"]) == 2 and all(len(row) == 4 for row in hits["layers"])  # tiny-mixtral: 2 x 4
    for row in hits["layers"]:
        assert sum(row) == 2 * hits["tokens"]  # k = 2 experts per token
    if tokens is not None:
        assert hits["tokens"] == tokens


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "tiny-mixtral-int8"
    r = run("quantize", "--model", MIXTRAL, "--weights", "int8", "--out", str(out), "--calibrate", "builtin")
    assert r.returncode == 0, r.stderr
    assert "calibrat" in r.stderr
    return out


def test_builtin_prompts_are_counted_into_the_metadata(calibrated):
    meta = metadata(calibrated)
    assert meta["headroom.format"] == "int8" and meta["headroom.format_version"] == "1"
    hits = json.loads(meta["headroom.expert_hits"])
    assert set(hits) == {"tokens", "layers"}
    assert hits["tokens"] > 500
    check_hits(hits)


def test_jsonl_text_files_and_the_token_budget(tmp_path):
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "a.jsonl").write_text(
        json.dumps({"text": "Invoice 17: two chairs, EUR 240, due in 30 days. " * 10}) + "\n\n"
        + json.dumps({"prompt": "Summarise the meeting notes below in three bullet points."}) + "\n"
        + json.dumps("Plain string prompt about a shipping delay.") + "\n")
    (d / "b.txt").write_text("Dear customer, your order has shipped and will arrive on Monday. " * 20)
    (d / "ignored.bin").write_text("not a prompt")
    out = tmp_path / "out"
    r = run("quantize", "--model", MIXTRAL, "--weights", "int4", "--out", str(out), "--calibrate", str(d),
            "--calibrate-tokens", "150")
    assert r.returncode == 0, r.stderr
    check_hits(json.loads(metadata(out)["headroom.expert_hits"]), tokens=150)
    # One file by itself.
    out2 = tmp_path / "out2"
    r = run("quantize", "--model", MIXTRAL, "--weights", "int8", "--out", str(out2), "--calibrate", str(d / "b.txt"))
    assert r.returncode == 0, r.stderr
    check_hits(json.loads(metadata(out2)["headroom.expert_hits"]))


def test_inspect_shows_the_statistics(calibrated):
    r = run("inspect", str(calibrated))
    assert r.returncode == 0, r.stderr
    assert "router statistics (headroom.expert_hits)" in r.stdout and "coldest: layer" in r.stdout
    r = run("inspect", str(calibrated), "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)["expert_hits"]
    check_hits(j)
    assert abs(sum(j["frequency"][0]) - 2.0) < 1e-9


def coldest(hits, n):
    inst = [(c, -e, -l) for l, row in enumerate(hits["layers"]) for e, c in enumerate(row)]
    return sorted((-l, -e) for c, e, l in sorted(inst)[:n])


def test_plan_offloads_the_coldest_and_predicts_from_the_frequencies(calibrated, tmp_path):
    hits = json.loads(metadata(calibrated)["headroom.expert_hits"])
    r = run("plan", "--model", str(calibrated), "--weights", "int8", "--gpu-memory", "1GiB", "--offload-experts", "3",
            "--json")
    assert r.returncode in (0, 3), r.stderr
    o = json.loads(r.stdout)["offload"]
    assert o["routing"] == "measured" and o["calibration_tokens"] == hits["tokens"]
    got = sorted((l, e) for l, es in enumerate(o["host_experts_by_layer"]) for e in es)
    assert got == coldest(hits, 3)
    p = [[c / hits["tokens"] for c in row] for row in hits["layers"]]
    want = sum(p[l][e] for l, e in got)  # expected offloaded experts read per token
    one_expert = o["host_bytes"] / 3
    assert abs(o["prediction"]["host_bytes_per_token"] - want * one_expert) < 1e-6 * one_expert
    r = run("plan", "--model", str(calibrated), "--weights", "int8", "--gpu-memory", "1GiB", "--offload-experts", "3")
    assert "router statistics" in r.stdout and "uniform routing assumed" not in r.stdout
    # Without statistics: uniform routing, the highest-numbered experts.
    plain = tmp_path / "plain"
    assert run("quantize", "--model", MIXTRAL, "--weights", "int8", "--out", str(plain)).returncode == 0
    r = run("plan", "--model", str(plain), "--weights", "int8", "--gpu-memory", "1GiB", "--offload-experts", "3")
    assert "uniform routing assumed" in r.stdout
    o = json.loads(run("plan", "--model", str(plain), "--weights", "int8", "--gpu-memory", "1GiB",
                       "--offload-experts", "3", "--json").stdout)["offload"]
    assert o["routing"] == "uniform" and o["host_experts_by_layer"] == [[3], [2, 3]]


def test_offloaded_coldest_experts_give_the_same_logits(calibrated, tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    ids = "1,415,2936,9060,285"
    assert run("logits", "--model", str(calibrated), "--token-ids", ids, "--out", str(a)).returncode == 0
    r = run("logits", "--model", str(calibrated), "--token-ids", ids, "--out", str(b), "--offload-experts", "3")
    assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("extra, message", [
    (["--calibrate", "/nonexistent/prompts"], "--calibrate"),
    (["--calibrate", "builtin", "--calibrate-tokens", "0"], "--calibrate-tokens"),
])
def test_bad_calibration_inputs_are_errors(tmp_path, extra, message):
    r = run("quantize", "--model", MIXTRAL, "--weights", "int8", "--out", str(tmp_path / "o"), *extra)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_bad_jsonl_line_and_dense_model(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"nope": 1}\n')
    r = run("quantize", "--model", MIXTRAL, "--weights", "int8", "--out", str(tmp_path / "o"), "--calibrate", str(bad))
    assert r.returncode == 1 and "bad.jsonl:2" in r.stderr, r.stderr
    r = run("quantize", "--model", LLAMA, "--weights", "int8", "--out", str(tmp_path / "l"), "--calibrate", "builtin")
    assert r.returncode == 1 and "no MoE layers" in r.stderr, r.stderr

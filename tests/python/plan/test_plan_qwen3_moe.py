"""`headroom plan` for Qwen3-30B-A3B (built-in qwen3-30b-a3b, and the real config.json): int4 on a
24 GB card fits, bf16 does not. Expected bytes from the architecture, computed here independently:
48 layers x 128 experts x 3 matrices of 768 x 2048 values, int4 = half a byte per value plus one f16
scale per group of 128 (quant/formats.h): 1/64 more; the bf16 embedding is 151936 x 2048 x 2 bytes."""
import json
import os
import subprocess

BIN = os.environ.get("HEADROOM_BIN", "headroom")
FIXTURES = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))


def plan(*args):
    return subprocess.run([BIN, "plan", *args], capture_output=True, text=True, timeout=60)


def regions(j):
    return {r["name"]: r["bytes"] for r in j["regions"]}


def test_qwen3_30b_a3b_int4_fits_a_4090():
    r = plan("--model", "qwen3-30b-a3b", "--weights", "int4", "--gpu", "rtx4090", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    j = json.loads(r.stdout)
    assert j["fits"] is True
    g = regions(j)
    expert_values = 48 * 128 * 3 * 768 * 2048
    assert expert_values / 2 <= g["weights.experts"] <= expert_values / 2 * 1.04
    assert g["weights.embedding"] == 151936 * 2048 * 2
    assert "weights.mlp" not in g  # every layer is MoE
    assert g["weights.router"] == 48 * 128 * 2048 * 2
    weights = sum(v for k, v in g.items() if k.startswith("weights."))
    assert 15 * 2**30 < weights < 17.5 * 2**30
    # KV cache: 48 layers x k, v x 4 kv heads x 128 x context tokens, at most the card.
    assert 0 < g["kv_cache"] <= j["budget_bytes"]


def test_qwen3_30b_a3b_text_report_and_real_config_agree():
    r = plan("--model", "qwen3-30b-a3b", "--weights", "int4", "--gpu", "rtx4090")
    assert r.returncode == 0, r.stderr
    assert "FITS" in r.stdout and "weights.experts" in r.stdout
    cfg = os.path.join(FIXTURES, "configs", "qwen3-30b-a3b.config.json")
    a = json.loads(plan("--model", "qwen3-30b-a3b", "--weights", "int4", "--gpu", "rtx4090", "--json").stdout)
    b = json.loads(plan("--model", cfg, "--weights", "int4", "--gpu", "rtx4090", "--json").stdout)
    assert regions(a) == regions(b)


def test_qwen3_30b_a3b_bf16_does_not_fit_a_4090():
    r = plan("--model", "qwen3-30b-a3b", "--weights", "bf16", "--gpu", "rtx4090", "--json")
    assert r.returncode == 3, r.stderr
    j = json.loads(r.stdout)
    assert j["fits"] is False and j["suggestions"]

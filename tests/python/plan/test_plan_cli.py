"""`headroom plan` end to end: exit codes (0 fits, 3 does not fit, 2 bad input), the JSON fields
programs rely on, and the origin story (Mixtral-8x7B in int8 on a 24 GB card)."""
import json
import os
import subprocess

import pytest

BIN = os.environ.get("HEADROOM_BIN", "headroom")
FIXTURES = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))


def plan(*args):
    return subprocess.run([BIN, "plan", *args], capture_output=True, text=True, timeout=60)


def test_origin_story_does_not_fit_and_says_what_would():
    r = plan("--model", "mixtral-8x7b", "--weights", "int8", "--gpu", "rtx4090")
    assert r.returncode == 3, r.stderr
    assert "DOES NOT FIT" in r.stdout
    assert "weights.experts" in r.stdout
    assert "experts in host memory" in r.stdout


def test_json_fields_and_numbers_agree():
    r = plan("--model", "mixtral-8x7b", "--weights", "int8", "--gpu", "rtx4090", "--json")
    assert r.returncode == 3, r.stderr
    j = json.loads(r.stdout)
    assert j["fits"] is False
    assert j["budget_bytes"] == 24564 * 2**20
    assert j["total_bytes"] == sum(x["bytes"] for x in j["regions"])
    weights = sum(x["bytes"] for x in j["regions"] if x["name"].startswith("weights."))
    assert 43 * 2**30 < weights < 44 * 2**30  # about 44 GiB of weights alone
    # Nothing headroom runs today fits (int4 alone is over 24 GiB): no alternative is offered; offload
    # and tensor parallel, which would fit, are listed apart as not implemented.
    assert j["suggestions"] == [] and j["alternatives"] == []
    kinds = {a["kind"] for a in j["not_implemented"]}
    assert kinds == {"more_gpus", "host_experts"}, kinds
    assert all(a["total_bytes"] <= a["budget_bytes"] and a["text"] for a in j["not_implemented"])


def test_text_offers_only_what_is_implemented():
    r = plan("--model", "mixtral-8x7b", "--weights", "int8", "--gpu", "rtx4090")
    assert r.returncode == 3, r.stderr
    assert "No option headroom implements today fits on this device." in r.stdout
    assert r.stdout.count("Not implemented yet") == 1 and "Alternatives that fit" not in r.stdout
    # A plan with runnable alternatives lists them, and says nothing about unimplemented features twice.
    r = plan("--model", "mixtral-8x7b", "--weights", "bf16", "--gpu", "h100-80gb")
    assert r.returncode == 3, r.stderr
    assert "Alternatives that fit, best first:\n  1. --weights int8" in r.stdout
    assert r.stdout.count("Not implemented yet") <= 1


def test_fits_exits_zero():
    r = plan("--model", "mixtral-8x7b", "--gpu", "h100-80gb", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["fits"] is True and j["weight_format"] == "int8" and j["weight_format_auto"] is True
    assert j["suggestions"] == []


def test_config_file_and_directory():
    cfg = os.path.join(FIXTURES, "configs", "mixtral-8x7b-instruct-v0.1.config.json")
    r = plan("--model", cfg, "--gpu-memory", "80GiB", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_params"] == 46702792704
    r = plan("--model", os.path.join(FIXTURES, "models", "tiny-llama"), "--cpu-memory", "1GiB", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["target"] == "cpu" and j["kv_dtype"] == "f32"


@pytest.mark.parametrize("args", [
    ["--model", "no-such-model"],
    ["--model", "mixtral-8x7b", "--gpu", "no-such-card"],
    ["--model", "mixtral-8x7b", "--gpu-memory", "0"],
    ["--model", "mixtral-8x7b", "--gpu-memory", "-24GiB"],
    ["--model", "mixtral-8x7b", "--gpu-memory", "lots"],
    ["--model", "mixtral-8x7b", "--context", "0"],
    ["--model", "mixtral-8x7b", "--context", "-1"],
    ["--model", "mixtral-8x7b", "--context", "40000"],
    ["--model", "mixtral-8x7b", "--sequences", "0"],
    ["--model", "mixtral-8x7b", "--weights", "int3"],
    ["--model", "mixtral-8x7b", "--kv-cache", "int4"],
    ["--model", "mixtral-8x7b", "--kv-dtype", "q8"],
    ["--model", "mixtral-8x7b", "--gpu", "rtx4090", "--gpu-memory", "24GiB"],
    ["--model", "mixtral-8x7b", "--context", "many"],
    [],
])
def test_bad_input_exits_two_with_a_message(args):
    r = plan(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()

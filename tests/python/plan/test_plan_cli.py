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
    assert "--offload-experts auto" in r.stdout


def test_json_fields_and_numbers_agree():
    r = plan("--model", "mixtral-8x7b", "--weights", "int8", "--gpu", "rtx4090", "--json")
    assert r.returncode == 3, r.stderr
    j = json.loads(r.stdout)
    assert j["fits"] is False
    assert j["budget_bytes"] == 24564 * 2**20
    assert j["total_bytes"] == sum(x["bytes"] for x in j["regions"])
    weights = sum(x["bytes"] for x in j["regions"] if x["name"].startswith("weights."))
    assert 43 * 2**30 < weights < 44 * 2**30  # about 44 GiB of weights alone
    # int4 alone is over 24 GiB: expert offload (implemented) is the alternative, int4 first; tensor
    # parallel, which would fit, is listed apart as not implemented.
    kinds = [a["kind"] for a in j["alternatives"]]
    assert kinds and set(kinds) == {"host_experts"}, kinds
    assert j["alternatives"][0]["weight_format"] == "int4"
    assert all("--offload-experts auto" in t for t in j["suggestions"])
    assert {a["kind"] for a in j["not_implemented"]} == {"more_gpus"}
    assert all(a["total_bytes"] <= a["budget_bytes"] and a["text"] for a in j["not_implemented"])


def test_text_offers_only_what_is_implemented():
    r = plan("--model", "mixtral-8x7b", "--weights", "int8", "--gpu", "rtx4090")
    assert r.returncode == 3, r.stderr
    assert "Alternatives that fit, best first:\n  1. --weights int4 --offload-experts auto" in r.stdout
    assert r.stdout.count("Not implemented yet") == 1
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


def test_offload_auto_fits_the_origin_story():
    # Issue 14's done-when: Mixtral-8x7B int4 on an RTX 4090 with experts in host memory fits (exit 0).
    env = dict(os.environ, HEADROOM_MEM_AVAILABLE=str(64 * 2**30))
    args = ["plan", "--model", "mixtral-8x7b", "--weights", "int4", "--gpu", "rtx4090", "--offload-experts", "auto"]
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "host.experts" in r.stdout and "workspace.expert_staging" in r.stdout
    assert "predicted decode (batch 1, --offload-compute auto -> " in r.stdout
    assert "predicted prefill of 2048 tokens" in r.stdout
    assert "\n    gpu: " in r.stdout and "\n    cpu: " in r.stdout  # both --offload-compute predictions
    r = subprocess.run([BIN, *args, "--json"], capture_output=True, text=True, timeout=60, env=env)
    j = json.loads(r.stdout)
    o = j["offload"]
    assert j["fits"] and o["requested"] == "auto" and 0 < o["host_experts"] < 32
    assert sum(o["host_per_layer"]) == o["host_experts"]
    host = [x for x in j["regions"] if x["name"] == "host.experts"]
    assert host and host[0]["kind"] == "host" and host[0]["bytes"] == o["host_bytes"]
    assert j["total_bytes"] == sum(x["bytes"] for x in j["regions"] if x["kind"] != "host")
    p = o["prediction"]
    assert p["offload_compute_requested"] == "auto" and p["offload_compute"] in ("gpu", "cpu")
    assert p["decode_ms"] == min(p["decode_gpu_ms"], p["decode_cpu_ms"])
    # Asked for, a mode is what the prediction takes; the host's rate is an input.
    for mode, gbps in (("gpu", "500"), ("cpu", "1")):
        r3 = subprocess.run([BIN, *args, "--json", "--offload-compute", mode, "--cpu-expert-gbps", gbps],
                            capture_output=True, text=True, timeout=60, env=env)
        p3 = json.loads(r3.stdout)["offload"]["prediction"]
        assert p3["offload_compute"] == mode and p3["decode_ms"] == p3["decode_%s_ms" % mode], r3.stdout
    r4 = subprocess.run([BIN, *args, "--offload-compute", "both"], capture_output=True, text=True, timeout=60, env=env)
    assert r4.returncode == 2 and "--offload-compute" in r4.stderr
    # The same count given as a number plans the same bytes.
    n = str(o["host_experts"])
    r2 = subprocess.run([BIN, *args[:-1], n, "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert r2.returncode == 0 and json.loads(r2.stdout)["total_bytes"] == j["total_bytes"]


def test_offload_errors_and_host_memory():
    base = ["plan", "--model", "mixtral-8x7b", "--weights", "int8", "--gpu", "rtx4090", "--offload-experts"]
    for bad in ["-1", "257", "lots"]:
        r = subprocess.run([BIN, *base, bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "--offload-experts" in r.stderr, (bad, r.stderr)
    env = dict(os.environ, HEADROOM_MEM_AVAILABLE=str(4 * 2**30))  # int8 needs about 22 GiB of host memory
    r = subprocess.run([BIN, *base, "auto"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "MemAvailable" in r.stderr, r.stderr
    r = subprocess.run([BIN, "plan", "--model", "llama-2-7b", "--offload-experts", "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no MoE experts" in r.stderr, r.stderr


def test_tensor_parallel_plans_one_gpu_of_n():
    one = json.loads(plan("--model", "mixtral-8x7b", "--weights", "bf16", "--json").stdout)
    r = plan("--model", "mixtral-8x7b", "--weights", "bf16", "--tensor-parallel", "2", "--json")
    assert r.returncode == 0, r.stderr  # 2 x 80 GB hold Mixtral bf16
    two = json.loads(r.stdout)
    assert two["tensor_parallel"] == 2 and two["n_params"] == one["n_params"]
    size = lambda j, name: next(x["bytes"] for x in j["regions"] if x["name"] == name)
    assert size(two, "weights.experts") * 2 == size(one, "weights.experts")
    assert size(two, "weights.embedding") == size(one, "weights.embedding")
    # The refused single-GPU plan's alternative is exactly this plan.
    gpus = [a for a in one["not_implemented"] if a["kind"] == "more_gpus"]
    assert gpus and gpus[0]["n_gpus"] == 2 and gpus[0]["total_bytes"] == two["total_bytes"]
    text = plan("--model", "mixtral-8x7b", "--weights", "bf16", "--tensor-parallel", "2").stdout
    assert "FITS" in text and "each of 2 GPUs" in text
    bad = plan("--model", "mixtral-8x7b", "--tensor-parallel", "3")
    assert bad.returncode == 2 and "num_attention_heads 32" in bad.stderr

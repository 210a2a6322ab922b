"""`headroom logits --dump-activations DIR` on the tiny Qwen3-MoE fixture: DIR/activations.safetensors
holds every layer's named intermediates, f32 [tokens, width], equal to transformers' forward-hook outputs
(act0.* in the fixture's expected.safetensors, made by tools/make_fixture.py); the logits file equals
transformers' logits. Bad input is an error, not a crash."""
import array
import json
import os
import struct
import subprocess

BIN = os.environ.get("HEADROOM_BIN", "headroom")
FIXTURES = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
MODEL = os.path.join(FIXTURES, "models", "tiny-qwen3-moe")
REL_MAX = 1e-4  # tests/support/compare.h kFixtureLogitsRelMax


def load_file(path):
    """name -> (shape, flat list) for the F32 / I32 tensors of a safetensors file (stdlib only)."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        vals = array.array({"F32": "f", "I32": "i"}[t["dtype"]])
        vals.frombytes(data[8 + n + a:8 + n + b])
        out[name] = (t["shape"], vals.tolist())
    return out


def close(got, ref):
    assert got[0] == ref[0], (got[0], ref[0])
    worst = max(abs(g - r) for g, r in zip(got[1], ref[1]))
    return worst <= REL_MAX * max(abs(r) for r in ref[1])


def test_dump_matches_transformers_hooks(tmp_path):
    exp = load_file(os.path.join(MODEL, "expected.safetensors"))
    ids = exp["tokens_0"][1]
    out, dump = tmp_path / "logits.safetensors", tmp_path / "acts"
    r = subprocess.run([BIN, "logits", "--model", MODEL, "--token-ids", ",".join(map(str, ids)), "--out", str(out),
                        "--dump-activations", str(dump)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert close(load_file(str(out))["logits"], exp["logits_0"])
    acts = load_file(str(dump / "activations.safetensors"))
    T = len(ids)
    for layer, kind in [(0, "mlp_out"), (1, "moe_out"), (2, "moe_out")]:
        for name in ["attn_in", "q", "k", "v", "attn_out", "ffn_in", kind, "out"]:
            assert acts[f"layer{layer}.{name}"][0][0] == T, name
    assert acts["layer1.router_logits"][0] == [T, 8]
    assert "layer0.router_logits" not in acts  # layer 0 is dense (mlp_only_layers)
    hooked = [k for k in exp if k.startswith("act0.")]
    assert len(hooked) == 9
    for k in hooked:
        assert close(acts[k[5:]], exp[k]), k


def test_dump_into_an_unwritable_place_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = subprocess.run([BIN, "logits", "--model", MODEL, "--token-ids", "1,2,3", "--out", str(tmp_path / "l.st"),
                        "--dump-activations", str(blocker / "sub")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "--dump-activations" in r.stderr

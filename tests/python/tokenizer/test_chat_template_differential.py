"""Differential test: `headroom chat-template` against jinja2 configured as transformers configures it
(tests/python/tokenizer/hf_chat.py) on random conversations for each published template, including
conversations that make the template raise; plus the CLI contract (exact text, exit code 2 + message)."""
import json
import os
import random
import subprocess

import pytest

from hf_chat import TEMPLATES, render
from tok_strings import make_strings

pytest.importorskip("jinja2")

BIN = os.environ.get("HEADROOM_BIN", "")
FIX = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
N_CONVERSATIONS = 300


def _model_dir(tmp_path, spec):
    """A model dir: the Mistral tokenizer plus the template's special tokens, and a tokenizer_config.json."""
    with open(os.path.join(FIX, "tokenizers", "mistral", "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    next_id = 32000
    for t in (spec["bos_token"], spec["eos_token"]):
        if t and t not in tok["model"]["vocab"] and all(a["content"] != t for a in tok["added_tokens"]):
            tok["added_tokens"].append({"id": next_id, "content": t, "single_word": False, "lstrip": False,
                                        "rstrip": False, "normalized": False, "special": True})
            next_id += 1
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    cfg = {"chat_template": spec["template"]}
    if spec["bos_token"]:
        cfg["bos_token"] = spec["bos_token"]
    if spec["eos_token"]:
        cfg["eos_token"] = spec["eos_token"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return str(tmp_path)


def _conversations(seed):
    rng = random.Random(seed)
    texts = make_strings(400, seed=seed)
    convs = []
    for _ in range(N_CONVERSATIONS):
        n = rng.randint(0, 6)
        roles = ["user", "assistant"] if rng.random() < 0.7 else ["user", "assistant", "system", "tool"]
        start = rng.randint(0, 1) if rng.random() < 0.3 else 0
        conv = []
        if rng.random() < 0.3:
            conv.append({"role": "system", "content": rng.choice(texts)})
        for k in range(n):
            role = roles[(k + start) % 2] if len(roles) == 2 else rng.choice(roles)
            msg = {"role": role, "content": rng.choice(texts)}
            if role == "tool":
                msg["tool_call_id"] = "abcdefghi" if rng.random() < 0.7 else "x"
            conv.append(msg)
        convs.append({"messages": conv, "add_generation_prompt": rng.random() < 0.5})
    return convs


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_chat_template_matches_jinja2(name, tmp_path):
    if not BIN or not os.path.exists(BIN):
        pytest.fail("HEADROOM_BIN is not set to the headroom binary")
    spec = TEMPLATES[name]
    model = _model_dir(tmp_path, spec)
    cases = _conversations(len(name) * 7919)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    r = subprocess.run([BIN, "chat-template", "--model", model, "--batch", str(batch)], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    ours = json.loads(r.stdout.decode("utf-8"))
    bad = []
    for case, o in zip(cases, ours):
        ok, want = render(spec["template"], case["messages"], case["add_generation_prompt"], spec["bos_token"],
                          spec["eos_token"])
        got_ok = "text" in o
        if ok != got_ok or (o.get("text") if ok else o.get("error")) != want:
            bad.append({"case": case, "want": want, "want_ok": ok, "got": o})
    assert not bad, f"{len(bad)}/{len(cases)} mismatches; first: " + json.dumps(bad[0], ensure_ascii=True)[:1500]


def test_cli_exact_text_and_error_exit_code(tmp_path):
    if not BIN or not os.path.exists(BIN):
        pytest.fail("HEADROOM_BIN is not set to the headroom binary")
    model = os.path.join(FIX, "models", "tiny-mixtral")
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"role": "user", "content": "Hi"}]), encoding="utf-8")
    r = subprocess.run([BIN, "chat-template", "--model", model, "--messages", str(good)], capture_output=True)
    assert r.returncode == 0
    assert r.stdout == b"<s>[INST] Hi [/INST]"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), encoding="utf-8")
    r = subprocess.run([BIN, "chat-template", "--model", model, "--messages", str(bad)], capture_output=True)
    assert r.returncode == 2
    assert b"Conversation roles must alternate user/assistant/user/assistant/..." in r.stderr
    r = subprocess.run([BIN, "tokenize", "--model", model, "--text", "Hello world!"], capture_output=True)
    assert r.returncode == 0 and json.loads(r.stdout) == [1, 22557, 1526, 28808]
    r = subprocess.run([BIN, "tokenize", "--model", model, "--no-special", "--text", "Hello world!"], capture_output=True)
    assert json.loads(r.stdout) == [22557, 1526, 28808]
    r = subprocess.run([BIN, "detokenize", "--model", model, "--ids", "22557,1526,28808"], capture_output=True)
    assert r.returncode == 0 and r.stdout == b"Hello world!"
    r = subprocess.run([BIN, "detokenize", "--model", model, "--ids", "1,99999"], capture_output=True)
    assert r.returncode != 0 and b"99999" in r.stderr

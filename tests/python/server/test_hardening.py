# Issue 17 end to end against the real binary: the chat template is checked at start-up (rows 1, 13),
# request validation (rows 8, 11, 14), API key files (row 14) and the CLI's exit codes (row 14).
import json
import os
import shutil
import subprocess

import pytest
import requests

from conftest import MODEL, Server

BIN = os.environ.get("HEADROOM_BIN")
FIX = os.environ.get("HR_FIXTURES_DIR")


def model_copy(tmp_path, chat_template=None):
    src = os.path.join(FIX, "models", MODEL)
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    if chat_template is not None:
        cfg_path = dst / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["chat_template"] = chat_template
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    return str(dst)


def serve_until_exit(model_dir, extra=()):
    args = [BIN, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", "0", "--context", "256",
            "--sequences", "4"] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=120, env=env)


@pytest.mark.parametrize("template,expect", [
    ("{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endfor %}", "does not compile"),
    ("{% if messages %}unterminated", "does not compile"),
    ("{% for m in messages %}{{ (-9223372036854775807 - 1) // -1 }}{% endfor %}", "integer overflow"),
    ("{{ messages[0].content ~ undefined_thing.attr }}", "sample conversation"),
])
def test_broken_chat_template_refuses_to_start(tmp_path, template, expect):
    r = serve_until_exit(model_copy(tmp_path, template))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "chat template" in r.stderr and expect in r.stderr, r.stderr[-2000:]
    assert "ready on" not in r.stderr


def test_api_key_file_is_trimmed(tmp_path):
    key = tmp_path / "key"
    key.write_text("  s3cret-key \n\n", encoding="utf-8")
    s = Server(extra_args=["--api-key-file", str(key)])
    try:
        ok = requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer s3cret-key"}, timeout=10)
        assert ok.status_code == 200
        bad = requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer   s3cret-key "}, timeout=10)
        assert bad.status_code == 401
    finally:
        s.terminate()


def test_empty_api_key_file_refuses_to_start(tmp_path):
    key = tmp_path / "key"
    key.write_text(" \n", encoding="utf-8")
    r = serve_until_exit(os.path.join(FIX, "models", MODEL), ["--api-key-file", str(key)])
    assert r.returncode == 2
    assert "--api-key-file: the key is empty" in r.stderr


def test_request_validation(server):
    def post(path, body):
        return requests.post(server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=60)

    r = post("/v1/completions", '{"model": "%s", "prompt": "hi", "max_tokens": 1, "max_tokens": 2}' % MODEL)
    assert r.status_code == 400 and '"max_tokens"' in r.json()["error"]["message"]
    r = post("/v1/completions", json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 2, "top_p": 1e-300}))
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_p"
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "max_completion_tokens": 3}
    r = post("/v1/chat/completions", json.dumps(chat))
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_completion_tokens"
    r = post("/v1/classify", json.dumps({"model": MODEL, "document": " \n\t ", "labels": ["a", "b"]}))
    assert r.status_code == 400 and r.json()["error"]["param"] == "document"
    r = post("/v1/classify", json.dumps({"model": MODEL, "document": "x", "labels": ["a", "a"]}))
    assert r.status_code in (400, 503)  # 503 when the server has no classifier
    if r.status_code == 400:
        assert r.json()["error"]["param"] == "labels"
    chat["max_completion_tokens"] = 2
    r = post("/v1/chat/completions", json.dumps(chat))
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 2


def test_cli_bad_paths_exit_2(tmp_path):
    tok_dir = os.path.join(FIX, "tokenizers", "llama2")
    r = subprocess.run([BIN, "tokenize", "--tokenizer", tok_dir, "--text", "hi"], capture_output=True, text=True)
    assert r.returncode == 2 and "found the directory" in r.stderr, r.stderr
    assert "[json." not in r.stderr  # no raw JSON-library exception text
    r = subprocess.run([BIN, "tokenize", "--tokenizer", str(tmp_path / "missing.json"), "--text", "hi"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = subprocess.run([BIN, "detokenize", "--model", str(tmp_path / "nowhere"), "--ids", "1"], capture_output=True,
                       text=True)
    assert r.returncode == 2
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "hi"}]), encoding="utf-8")
    r = subprocess.run([BIN, "chat-template", "--model", str(tmp_path / "nowhere"), "--messages", str(msgs)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    bad = model_copy(tmp_path, "{% if messages %}unterminated")
    r = subprocess.run([BIN, "chat-template", "--model", bad, "--messages", str(msgs)], capture_output=True, text=True)
    assert r.returncode == 2 and "does not compile" in r.stderr and "messages" not in r.stderr.split(":")[0]
    r = subprocess.run([BIN, "chat-template", "--model", os.path.join(FIX, "models", MODEL), "--messages",
                        str(tmp_path / "nope.json")], capture_output=True, text=True)
    assert r.returncode == 2

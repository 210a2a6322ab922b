# `serve --tensor-parallel 2` (two in-process CPU ranks, docs/parallel.md) against the same server with
# one: greedy completions and chats give the same tokens, alone and 16 at a time (continuous batching),
# a repeated prompt hits the prefix cache on both, classification gives the same label and probabilities
# within 1e-4 (the all-reduce changes the summation order only), and /metrics shows every rank's
# planned regions with a rank label.
import concurrent.futures
import os
import subprocess

import pytest
import requests

from conftest import Server

PROMPTS = [f"Request number {i}: the quick brown fox" + " jumps" * (i % 5) for i in range(16)]
LABELS = ["invoice", "receipt", "bank statement"]
DOCS = ["Total due: 120 EUR by 30 June. Please pay to the account below.",
        "Thank you for shopping with us. Paid by card: 14.20 EUR.",
        "Opening balance 1,204.55; closing balance 980.10; 14 transactions this month."]


@pytest.fixture(scope="module")
def servers():
    if os.environ.get("HR_SERVE_EXTRA_ARGS"):
        pytest.skip("compares --tensor-parallel 1 and 2 itself")
    one = Server()
    try:
        two = Server(extra_args=["--tensor-parallel", "2"])
    except Exception:
        one.terminate()
        raise
    yield one, two
    two.terminate()
    one.terminate()


def complete(s, prompt, max_tokens=12):
    r = requests.post(s.url + "/v1/completions", json={"model": s.model, "prompt": prompt, "max_tokens": max_tokens,
                                                       "temperature": 0}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def test_greedy_tokens_equal_one_rank_alone_and_batched(servers):
    one, two = servers
    alone = [complete(one, p) for p in PROMPTS]
    assert [complete(two, p) for p in PROMPTS[:4]] == alone[:4]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        together = list(ex.map(lambda p: complete(two, p), PROMPTS))
    assert together == alone


def test_chat_and_stream_equal(servers):
    one, two = servers
    body = {"messages": [{"role": "user", "content": "Hi there"}], "max_tokens": 10, "temperature": 0}
    a = requests.post(one.url + "/v1/chat/completions", json=dict(body, model=one.model), timeout=300).json()
    b = requests.post(two.url + "/v1/chat/completions", json=dict(body, model=two.model), timeout=300).json()
    assert b["choices"][0]["message"]["content"] == a["choices"][0]["message"]["content"]


def test_prefix_cache_hits_with_the_same_tokens(servers):
    one, two = servers
    prompt = "A long shared beginning that fills at least one block of sixteen tokens, and then some more: " * 2
    for s in (one, two):
        before = s.metric("headroom_prefix_cache_hit_tokens_total") or 0
        first = complete(s, prompt + "one")
        again = complete(s, prompt + "one")
        assert again == first
        assert (s.metric("headroom_prefix_cache_hit_tokens_total") or 0) >= before + 16
    assert complete(two, prompt + "two") == complete(one, prompt + "two")


@pytest.mark.parametrize("extra", [{}, {"examples": [{"text": "QUICK MART TOTAL 4.48 CASH 5.00", "label": "receipt"},
                                                     {"text": "Invoice 77: amount due 300 EUR", "label": "invoice"},
                                                     {"text": "Statement: balance 20.00", "label": "bank statement"}],
                                        "method": "embedding"}])
def test_classification_equal(servers, extra):
    one, two = servers
    got = []
    for s in (one, two):
        r = requests.post(s.url + "/v1/classify", json=dict(extra, model=s.model, labels=LABELS, documents=DOCS),
                          timeout=300)
        assert r.status_code == 200, r.text
        got.append(r.json()["data"])
    for a, b in zip(*got):
        assert b["label"] == a["label"]
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-4)


def test_metrics_show_every_ranks_regions(servers):
    one, two = servers
    text = requests.get(two.url + "/metrics", timeout=10).text
    for rank in (0, 1):
        assert f'headroom_planned_bytes{{region="kv_cache",rank="{rank}"}}' in text, text
        assert f'headroom_planned_bytes{{region="activations.step",rank="{rank}"}}' in text, text
    kv1 = one.metric('headroom_planned_bytes{region="kv_cache"}')
    kv2 = two.metric('headroom_planned_bytes{region="kv_cache",rank="0"}')
    assert kv2 * 2 == kv1  # tiny-mixtral: 2 KV heads, one per rank
    assert "tensor parallel: 2 ranks on cpu" in two.log_text()


def test_refused_when_heads_do_not_divide():
    # tiny-mixtral has 4 heads: 3 ranks cannot split them; the error names the dimension.
    model_dir = os.path.join(os.environ["HR_FIXTURES_DIR"], "models", "tiny-mixtral")
    r = subprocess.run([os.environ["HEADROOM_BIN"], "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", "0",
                        "--context", "256", "--tensor-parallel", "3"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "num_attention_heads" in r.stderr, r.stderr

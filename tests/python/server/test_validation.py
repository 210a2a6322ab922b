# Every request validation case (RELIABILITY §3.4-3.5) against the real binary: status, OpenAI error
# shape, the field named, nothing echoed; the server keeps serving afterwards.
import json

import pytest
import requests

SECRET = "zq-secret-marker-71"


def post(server, path, body, headers=None, raw=False):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = body if raw else json.dumps(body)
    return requests.post(server.url + path, data=data, headers=h, timeout=60)


def check_error(r, status, param=None):
    assert r.status_code == status, r.text
    j = r.json()
    assert set(j["error"]) >= {"message", "type", "param", "code"}
    if param is not None:
        assert j["error"]["param"] == param
    assert SECRET not in r.text
    assert "/work" not in r.text and ".cpp" not in r.text
    return j["error"]


def comp(server, **kw):
    body = {"model": server.model, "prompt": "hello " + SECRET, "max_tokens": 2}
    body.update(kw)
    return body


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.5), ("temperature", 2.5), ("temperature", "hot"),
    ("top_p", 0), ("top_p", 1.5), ("top_p", "x"),
    ("top_k", -2), ("top_k", 2.5),
    ("max_tokens", 0), ("max_tokens", -1), ("max_tokens", "5"), ("max_tokens", 5.0), ("max_tokens", True),
    ("max_tokens", 10**12),
    ("stop", ""), ("stop", 5), ("stop", ["a", "b", "c", "d", "e"]), ("stop", "x" * 300),
    ("seed", 1.5), ("seed", "1"),
    ("n", 2), ("n", "2"), ("best_of", 2),
    ("stream", "yes"), ("timeout", 0), ("timeout", -3), ("timeout", "soon"),
    ("logit_bias", {"5": 10}), ("echo", True), ("frequency_penalty", 1.0), ("logprobs", 3),
])
def test_bad_field_is_400_naming_it(server, field, value):
    err = check_error(post(server, "/v1/completions", comp(server, **{field: value})), 400, field)
    assert field in err["message"]


def test_non_finite_numbers(server):
    for text in ['{"model": "%s", "prompt": "x", "temperature": NaN}',
                 '{"model": "%s", "prompt": "x", "temperature": Infinity}',
                 '{"model": "%s", "prompt": "x", "temperature": 1e400}']:
        check_error(post(server, "/v1/completions", text % server.model, raw=True), 400)


def test_invalid_json_and_utf8_and_shapes(server):
    check_error(post(server, "/v1/completions", "{not json " + SECRET, raw=True), 400)
    check_error(post(server, "/v1/completions", b'{"model": "m", "prompt": "\xb9\xfe"}', raw=True), 400)
    check_error(post(server, "/v1/completions", "[1, 2]", raw=True), 400)
    check_error(post(server, "/v1/completions", "", raw=True), 400)
    check_error(post(server, "/v1/completions", "[" * 5000, raw=True), 400)
    check_error(post(server, "/v1/completions", comp(server, tokenize=True)), 400, "tokenize")


def test_empty_prompts_and_messages(server):
    check_error(post(server, "/v1/completions", comp(server, prompt="")), 400, "prompt")
    check_error(post(server, "/v1/completions", comp(server, prompt=[])), 400, "prompt")
    check_error(post(server, "/v1/completions", comp(server, prompt=["a", "b"])), 400, "prompt")
    check_error(post(server, "/v1/chat/completions", {"model": server.model, "messages": []}), 400, "messages")
    check_error(post(server, "/v1/chat/completions",
                     {"model": server.model, "messages": [{"role": "wizard", "content": SECRET}]}), 400)


def test_token_ids_outside_vocabulary(server):
    check_error(post(server, "/v1/completions", comp(server, prompt=[1, 32000])), 400, "prompt")
    check_error(post(server, "/v1/completions", comp(server, prompt=[1, -1])), 400, "prompt")


def test_prompt_plus_max_tokens_over_context(server):
    err = check_error(post(server, "/v1/completions", comp(server, prompt=[1] * 200, max_tokens=100)), 400)
    assert "256" in err["message"] and "300" in err["message"]
    err = check_error(post(server, "/v1/completions", comp(server, prompt=[1] * 300)), 400)
    assert "256" in err["message"]


def test_unknown_model_is_404(server):
    err = check_error(post(server, "/v1/completions", comp(server, model="gpt-" + SECRET)), 404, "model")
    assert err["code"] == "model_not_found"


def test_body_too_large_is_413(server):
    r = post(server, "/v1/completions", comp(server, prompt="x" * (3 * 1024 * 1024)))
    check_error(r, 413)


def test_unknown_route_and_timeout_header(server):
    check_error(requests.get(server.url + "/v1/nothing", timeout=10), 404)
    check_error(post(server, "/v1/completions", comp(server), headers={"X-Request-Timeout": "soon"}), 400)


def test_server_still_serves_after_bad_requests(server):
    r = post(server, "/v1/completions", {"model": server.model, "prompt": "still", "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


def test_deadline_expiry_ends_request_with_clear_error(server):
    # A deadline far shorter than 200 tokens need: refused at admission or ended when it expires.
    r = post(server, "/v1/completions", comp(server, prompt="tick", max_tokens=200, timeout=0.001))
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] in ("deadline_cannot_be_met", "deadline_expired")


def test_api_key_required_everywhere_but_health_and_ping(tmp_path):
    from conftest import Server
    key_file = tmp_path / "key"
    key_file.write_text("k3y-" + SECRET + "\n")
    s = Server(["--api-key-file", str(key_file)])
    try:
        assert requests.get(s.url + "/health", timeout=10).status_code == 200
        assert requests.get(s.url + "/ping", timeout=10).status_code == 200
        for path in ("/v1/models", "/metrics"):
            check_error(requests.get(s.url + path, timeout=10), 401)
            check_error(requests.get(s.url + path, headers={"Authorization": "Bearer wrong"}, timeout=10), 401)
        body = {"model": s.model, "prompt": "x", "max_tokens": 1}
        check_error(post(s, "/v1/completions", body), 401)
        check_error(post(s, "/v1/chat/completions", body), 401)
        good = {"Authorization": "Bearer k3y-" + SECRET}
        assert requests.get(s.url + "/v1/models", headers=good, timeout=10).status_code == 200
        assert post(s, "/v1/completions", body, headers=good).status_code == 200
    finally:
        s.terminate()

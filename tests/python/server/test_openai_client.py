# The official openai client against `headroom serve`: completions, chat, streaming, models, usage;
# 16 concurrent greedy requests give the text each gives alone.
import concurrent.futures

import openai
import pytest


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_served_model(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == [server.model]


def test_completion(client, server):
    r = client.completions.create(model=server.model, prompt="The capital of France is", max_tokens=8,
                                  temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].finish_reason in ("length", "stop")
    assert isinstance(r.choices[0].text, str)
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert "model loaded in" in server.log_text()


def test_completion_is_deterministic_when_greedy(client, server):
    a = client.completions.create(model=server.model, prompt="Once upon a time", max_tokens=12, temperature=0)
    b = client.completions.create(model=server.model, prompt="Once upon a time", max_tokens=12, temperature=0)
    assert a.choices[0].text == b.choices[0].text


def test_seeded_sampling_is_reproducible(client, server):
    kw = dict(model=server.model, prompt="Hello", max_tokens=10, temperature=1.0, top_p=0.9, seed=1234)
    assert client.completions.create(**kw).choices[0].text == client.completions.create(**kw).choices[0].text


def test_token_id_prompt(client, server):
    r = client.completions.create(model=server.model, prompt=[1, 415, 5565], max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens == 3


def test_chat(client, server):
    r = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "Hi there"}],
                                       max_tokens=8, temperature=0)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.usage.completion_tokens <= 8


def test_streaming_completion_matches_non_streaming(client, server):
    full = client.completions.create(model=server.model, prompt="A B C", max_tokens=10, temperature=0)
    stream = client.completions.create(model=server.model, prompt="A B C", max_tokens=10, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].text
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == full.choices[0].text
    assert finish == full.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_streaming_chat(client, server):
    stream = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "Hi"}],
                                            max_tokens=6, temperature=0, stream=True)
    roles, text, finish = [], "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        if d.role:
            roles.append(d.role)
        text += d.content or ""
        finish = chunk.choices[0].finish_reason or finish
    full = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=6, temperature=0)
    assert roles == ["assistant"]
    assert text == full.choices[0].message.content
    assert finish in ("length", "stop")


def test_stop_string_cuts_output(client, server):
    full = client.completions.create(model=server.model, prompt="one two three", max_tokens=16, temperature=0)
    text = full.choices[0].text
    if len(text.strip()) < 4:
        pytest.skip("the fixture model's continuation is too short to pick a stop string from")
    stop = text.strip()[2:4]
    r = client.completions.create(model=server.model, prompt="one two three", max_tokens=16, temperature=0,
                                  stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == text[: text.index(stop)]


def test_sixteen_concurrent_greedy_requests_match_each_alone(client, server):
    prompts = [f"Request number {i}: the quick brown fox" + " jumps" * (i % 5) for i in range(16)]

    def run(p):
        r = client.completions.create(model=server.model, prompt=p, max_tokens=12, temperature=0)
        return r.choices[0].text

    alone = [run(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        together = list(ex.map(run, prompts))
    assert together == alone

# POST /v1/classify with `documents` (docs/classify.md): one label set, many documents; one result per
# document in order, each the same as classifying that document alone, and a document's own error (empty,
# too long) in its slot while the others succeed. Errors in the shared part fail the whole request.
import pytest
import requests

LABELS = ["invoice", "receipt", "bank statement"]
DOCS = ["Total due: 120 EUR by 30 June. Please pay to the account below.",
        "Thank you for shopping with us. Paid by card: 14.20 EUR.",
        "Opening balance 1,204.55; closing balance 980.10; 14 transactions this month."]


def classify(server, **body):
    body.setdefault("model", server.model)
    body.setdefault("labels", LABELS)
    return requests.post(server.url + "/v1/classify", json=body, timeout=300)


def outcome_count(server, outcome):
    return server.metric(f'headroom_requests_total{{outcome="{outcome}"}}') or 0


def test_each_document_answers_as_if_alone_and_errors_stay_in_their_slot(server):
    long_doc = "The quick brown fox jumps over the lazy dog. " * 60
    docs = [DOCS[0], "", DOCS[1], long_doc, DOCS[2], "  \n "]
    ok_before, invalid_before = outcome_count(server, "classify_ok"), outcome_count(server, "classify_invalid")
    r = classify(server, documents=docs)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "list" and j["model"] == server.model
    assert [d["index"] for d in j["data"]] == list(range(len(docs)))
    alone = {i: classify(server, document=docs[i]).json() for i in (0, 2, 4)}
    for i, single in alone.items():
        d = j["data"][i]
        assert "error" not in d
        assert d["object"] == "classification"
        assert d["label"] == single["label"]
        # The batch's documents share the scheduler's steps: the CPU kernels' summation order follows the
        # step's shape, so the last digits may differ (the CLI's --parallel tests use the same bound).
        assert d["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)
        assert d["usage"] == single["usage"]
        assert d["timings"]["total_ms"] > 0
    for i, words in ((1, "empty"), (3, "context"), (5, "empty")):
        err = j["data"][i]["error"]
        assert set(err) >= {"message", "type", "param", "code"}
        assert err["type"] == "invalid_request_error"
        assert err["param"] == f"documents[{i}]"
        assert words in err["message"]
    assert j["usage"]["prompt_tokens"] == sum(alone[i]["usage"]["prompt_tokens"] for i in alone)
    assert j["usage"]["total_tokens"] == sum(alone[i]["usage"]["total_tokens"] for i in alone)
    assert j["timings"]["total_ms"] > 0
    # Each document is counted under its own outcome (the three singles above add three more ok).
    assert outcome_count(server, "classify_ok") == ok_before + 3 + 3
    assert outcome_count(server, "classify_invalid") == invalid_before + 3


def test_long_document_is_kept_with_truncate(server):
    long_doc = "The quick brown fox jumps over the lazy dog. " * 60
    r = classify(server, documents=[long_doc, DOCS[0]], truncate=True)
    assert r.status_code == 200, r.text
    first = r.json()["data"][0]
    assert first["truncated"] is True and first["document_tokens_kept"] < first["document_tokens"]


@pytest.mark.parametrize("body, param", [
    ({"documents": []}, "documents"),
    ({"documents": "one"}, "documents"),
    ({"documents": [DOCS[0], 3]}, "documents[1]"),
    ({"documents": [DOCS[0]] * 257}, "documents"),
    ({"documents": [DOCS[0]], "document": DOCS[0]}, "documents"),
    ({"documents": [DOCS[0]], "messages": [{"role": "user", "content": "x"}]}, "documents"),
    # The shared labels are checked once: their error fails the request, whatever the documents.
    ({"documents": ["", DOCS[0]], "labels": ["a", "a"]}, "labels"),
    ({"documents": [DOCS[0]], "labels": ["word " * 40]}, "labels"),
])
def test_bad_requests_fail_as_a_whole(server, body, param):
    r = classify(server, **body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err

# Constrained outputs validated by an independent JSON-schema implementation (the `jsonschema` package):
# tools/structured_sample walks the constraint masks over the Mistral vocabulary with a seeded RNG.
import json
import os
import pathlib
import subprocess

import jsonschema
import pytest


def _sampler() -> pathlib.Path:
    candidates = []
    if os.environ.get("STRUCTURED_SAMPLE"):
        candidates.append(pathlib.Path(os.environ["STRUCTURED_SAMPLE"]))
    if os.environ.get("HR_BINARY_DIR"):
        candidates.append(pathlib.Path(os.environ["HR_BINARY_DIR"]) / "tools" / "structured_sample")
    if os.environ.get("HEADROOM_BIN"):  # <build>/src/headroom
        candidates.append(pathlib.Path(os.environ["HEADROOM_BIN"]).resolve().parents[1] / "tools" / "structured_sample")
    for c in candidates:
        if c.is_file():
            return c
    pytest.fail(f"structured_sample not found (looked at {[str(c) for c in candidates]}); build target structured_sample")


def _run(args, expect_rc=0):
    p = subprocess.run([str(_sampler())] + args, capture_output=True, text=True, timeout=300)
    assert p.returncode == expect_rc, f"rc={p.returncode} stdout={p.stdout[-2000:]} stderr={p.stderr[-2000:]}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


INVOICE = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "pattern": "^INV-[0-9]{4,6}$"},
        "vendor": {"type": "string", "minLength": 1, "maxLength": 40},
        "issue_date": {"type": "string", "pattern": r"\d{4}-\d{2}-\d{2}"},
        "total": {"type": "number", "minimum": 0, "maximum": 100000},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "paid": {"type": "boolean"},
        "notes": {"type": ["string", "null"], "maxLength": 20},
        "lines": {
            "type": "array", "minItems": 1, "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string", "maxLength": 30},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                    "unit_price": {"type": "number", "minimum": -10.5, "maximum": 10.25},
                },
                "required": ["description", "qty"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["invoice_number", "vendor", "total", "currency", "lines"],
    "additionalProperties": False,
}

OTHERS = [
    {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": -5, "maximum": 5},
                                          {"type": "string", "maxLength": 3}, {"type": "null"}]}, "maxItems": 5},
    {"type": "object", "properties": {"kind": {"const": "receipt"},
                                      "score": {"type": "number", "minimum": 0.5, "maximum": 0.75},
                                      "tags": {"type": "array", "minItems": 2, "maxItems": 4,
                                               "items": {"type": "string", "pattern": "[a-z]+(-[a-z]+)?", "maxLength": 8}}},
     "required": ["kind", "score", "tags"]},
    {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
               {"type": "object", "properties": {"a": {"type": "string", "maxLength": 4}}, "required": ["a"]}]},
    {"type": ["string", "integer", "null"], "maxLength": 6, "minimum": 100},
    {"type": "object", "properties": {"meta": {"type": "object", "additionalProperties": {"type": "integer"}},
                                      "name": {"type": "string", "pattern": r"\w+ \w+"}}, "required": ["meta", "name"]},
    {"type": "string", "pattern": r"(\d{3}-)?\d{4}|[A-F]{2}\.[^x]", "minLength": 4},
    {"enum": [1, 2.5, "x", [1, 2], {"k": "v"}, True, None]},
    {"type": "object"},
    True,
]


def _validate_all(schema, lines):
    validator = jsonschema.Draft202012Validator(schema)
    finished = [l for l in lines if l["finished"]]
    for l in lines:
        assert l["error"] == "", l
    for l in finished:
        value = json.loads(l["text"])
        errors = list(validator.iter_errors(value))
        assert not errors, f"{l['text']!r}: {errors[0].message}"
    return finished


def test_200_invoice_answers_parse_and_validate():
    lines = _run(["--schema", json.dumps(INVOICE), "--n", "300", "--seed", "11", "--max-tokens", "400"])
    finished = _validate_all(INVOICE, lines)
    assert len(finished) >= 200, f"only {len(finished)} of {len(lines)} samples finished"


@pytest.mark.parametrize("index", range(len(OTHERS)))
def test_other_schemas_validate(index):
    schema = OTHERS[index]
    lines = _run(["--schema", json.dumps(schema), "--n", "25", "--seed", str(100 + index)])
    assert _validate_all(schema, lines), "no sample finished"


def test_json_object_and_choice():
    for l in _validate_all({"type": "object"}, _run(["--json-object", "--n", "20", "--seed", "5"])):
        assert isinstance(json.loads(l["text"]), dict)
    labels = ["invoice", "receipt", "bank_statement", "contract", "other"]
    lines = _run(["--choice", ",".join(labels), "--n", "30", "--seed", "6"])
    assert all(l["finished"] and l["text"] in labels for l in lines), lines


def test_unsupported_keywords_are_rejected_with_paths():
    schema = {"type": "object", "properties": {"d": {"type": "string", "format": "date"},
                                               "n": {"type": "number", "multipleOf": 2}},
              "patternProperties": {"x": {}}}
    [line] = _run(["--schema", json.dumps(schema)], expect_rc=2)
    for path in ["/properties/d/format", "/properties/n/multipleOf", "/patternProperties"]:
        assert path in line["error"], line


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "(?=lookahead)"},
    {"type": "string", "pattern": "a{2,1}"},
    {"type": "integer", "minimum": 3, "maximum": 2},
    {"type": "strin"},
    {"anyOf": [{"type": "string"}], "maxLength": 2},
    {"type": "array", "items": [{"type": "string"}]},
])
def test_bad_schemas_are_rejected(schema):
    [line] = _run(["--schema", json.dumps(schema)], expect_rc=2)
    assert line["error"]

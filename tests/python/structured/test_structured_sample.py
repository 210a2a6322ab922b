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


def _random_schema(rng, depth=0):
    import random  # noqa: F401  (rng is a random.Random)
    kind = rng.randrange(7 if depth >= 3 else 11)
    if kind == 0:
        s = {"type": "string"}
        if rng.random() < 0.4:
            s["pattern"] = rng.choice(["[a-z]+", r"\d{2,4}", "(ab|cd)*e", "[A-Z][a-z]{0,5}", r"\w+@\w+\.(com|org)"])
        else:
            lo = rng.randrange(4)
            s["minLength"] = lo
            s["maxLength"] = lo + rng.randrange(10)
        return s
    if kind in (1, 2):
        s = {"type": "integer" if kind == 1 else "number"}
        lo = rng.randrange(-100, 100)
        if rng.random() < 0.5:
            s["minimum"] = lo if kind == 1 else lo + 0.25
        if rng.random() < 0.5:
            s["maximum"] = lo + rng.randrange(300) if kind == 1 else lo + 0.5 + rng.randrange(300) * 0.5
        return s
    if kind == 3:
        return {"type": "boolean"}
    if kind == 4:
        pool = ["a", "paid", 1, 2.5, -3, True, None, [1, "x"], {"k": "v"}, 'quote"d', "unié"]
        vals = []
        for v in rng.sample(pool, 1 + rng.randrange(4)):
            vals.append(v)
        return {"enum": vals}
    if kind == 5:
        return {"const": rng.choice(["x", 7, None, {"a": [1]}])}
    if kind == 6:
        return {"type": ["string", "null"], "maxLength": rng.randrange(6)}
    if kind in (7, 10):
        props, req = {}, []
        for name in rng.sample(["id", "name", "total", "items", "x y", "ключ", 'a"b'], rng.randrange(5)):
            props[name] = _random_schema(rng, depth + 1)
            if rng.random() < 0.5:
                req.append(name)
        s = {"type": "object", "properties": props}
        if req:
            s["required"] = req
        s["additionalProperties"] = rng.choice([False, {"type": "integer"}, True])
        return s
    if kind == 8:
        s = {"type": "array", "items": _random_schema(rng, depth + 1)}
        lo = rng.randrange(3)
        if rng.random() < 0.5:
            s["minItems"] = lo
        if rng.random() < 0.5:
            s["maxItems"] = lo + rng.randrange(3)
        return s
    return {"anyOf": [_random_schema(rng, depth + 1) for _ in range(2 + rng.randrange(2))]}


@pytest.mark.parametrize("seed", range(12))
def test_random_schemas_validate(seed):
    import random
    schema = _random_schema(random.Random(seed))
    lines = _run(["--schema", json.dumps(schema), "--n", "12", "--seed", str(seed), "--max-tokens", "250"])
    _validate_all(schema, lines)

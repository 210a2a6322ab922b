# `headroom generate --json-schema FILE` on the tiny fixture model: the output parses and validates against
# the schema (checked by the independent `jsonschema` package), properties come out in the file's order,
# and bad schema files are refused with a message naming what was expected.
import json
import os
import subprocess

import jsonschema
import pytest

SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["yes", "no", "maybe"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 9},
        "ok": {"type": "boolean"},
    },
    "required": ["verdict", "score", "ok"],
    "additionalProperties": False,
}


def generate(tmp_path, schema_text, *extra):
    path = tmp_path / "schema.json"
    path.write_text(schema_text)
    model = os.path.join(os.environ["HR_FIXTURES_DIR"], "models", "tiny-mixtral")
    args = [os.environ["HEADROOM_BIN"], "generate", "--model", model, "--prompt", "Answer in JSON:",
            "--json-schema", str(path)] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("extra", [["--max-tokens", "96"], ["--max-tokens", "96", "--temperature", "1", "--seed", "7"]])
def test_output_matches_the_schema(tmp_path, extra):
    p = generate(tmp_path, json.dumps(SCHEMA), *extra)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    jsonschema.validate(out, SCHEMA)
    assert list(out.keys()) == ["verdict", "score", "ok"]


def test_key_order_follows_the_file(tmp_path):
    reordered = dict(SCHEMA, properties={k: SCHEMA["properties"][k] for k in ["ok", "score", "verdict"]})
    p = generate(tmp_path, json.dumps(reordered), "--max-tokens", "96")
    assert p.returncode == 0, p.stderr[-2000:]
    assert list(json.loads(p.stdout).keys()) == ["ok", "score", "verdict"]


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON array, expected an object"),
    (json.dumps({"type": "string", "format": "date"}), "the schema cannot be used"),
])
def test_bad_schema_files_are_refused(tmp_path, text, message):
    p = generate(tmp_path, text, "--max-tokens", "8")
    assert p.returncode == 2
    assert message in p.stderr
    assert p.stdout == ""


def test_too_few_tokens_is_an_error_not_a_broken_answer(tmp_path):
    p = generate(tmp_path, json.dumps(SCHEMA), "--max-tokens", "3")
    assert p.returncode == 2
    assert "ended the output before it matched the schema" in p.stderr


def test_ignore_eos_is_refused_with_a_schema(tmp_path):
    p = generate(tmp_path, json.dumps(SCHEMA), "--ignore-eos")
    assert p.returncode == 2
    assert "--ignore-eos cannot be combined with --json-schema" in p.stderr

"""Differential test of the GGUF tokenizer (`--model FILE.gguf`) against Hugging Face transformers loading
the same file (AutoTokenizer.from_pretrained(dir, gguf_file=name); pip install transformers gguf
tokenizers): token ids with and without special tokens and decodes on the 20,000-string generator for the
real SmolLM2-135M-Instruct GGUF, decode and streaming of random id sequences, the chat template text of
several conversations, and the same encode checks on synthetic GGUFs written from the tokenizer fixtures
("llama" SentencePiece with scores and no merges, with merges and EOS; "gpt2" with pre llama-bpe and qwen2).
The reference values are computed here, in CI, not committed.

The reference is transformers' tokenizer with the family adjustments of docs/tokenizer.md (SmolLM2's
Digits split, Llama-3's ignore_merges, Qwen2's NFC); for SmolLM2 the test also checks that unmodified
transformers agrees on every string that has no numeric character (the only place the Digits split acts)."""
import json
import os
import random
import subprocess
import tempfile
import unicodedata
import zlib

import pytest

from gguf_tok_files import deepseek_byte_level, llama2_sentencepiece, reference_backend, transformers_tokenizer
from tok_strings import make_strings, normalization_fragment

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

BIN = os.environ.get("HEADROOM_BIN", "")
SMOLLM2 = os.environ.get("HR_SMOLLM2_GGUF",
                         os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf"))
N_STRINGS = int(os.environ.get("HR_TOKENIZER_DIFF_N", "20000"))
N_SYNTH = min(N_STRINGS, 3000)


def _run(args, batch):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(batch, f, ensure_ascii=False)
        path = f.name
    try:
        r = subprocess.run([BIN] + args + ["--batch", path], capture_output=True, timeout=600)
    finally:
        os.unlink(path)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    return json.loads(r.stdout.decode("utf-8"))


def _report(name, what, bad, total):
    lines = [f"{name}: {len(bad)}/{total} {what} mismatches"]
    for b in bad[:8]:
        lines.append("  " + json.dumps(b, ensure_ascii=True)[:600])
    return "\n".join(lines)


def _need_bin():
    if not BIN or not os.path.exists(BIN):
        pytest.fail("HEADROOM_BIN is not set to the headroom binary")


def _has_numeric(s):
    return any(unicodedata.category(c).startswith("N") for c in s)


def _compare_encode(name, gguf_path, hf, ref, texts):
    """headroom's ids/decodes vs `ref` (a tokenizers.Tokenizer) for ids and vs transformers for decodes."""
    ours = _run(["tokenize", "--model", str(gguf_path)], texts)
    assert len(ours) == len(texts)
    bad_enc, bad_dec = [], []
    for text, o in zip(texts, ours):
        want = ref.encode(text).ids
        want_plain = ref.encode(text, add_special_tokens=False).ids
        if "error" in o or o["ids"] != want or o["ids_plain"] != want_plain:
            bad_enc.append({"text": text, "want": want, "got": o.get("ids", o.get("error"))})
            continue
        dec = hf.decode(want, skip_special_tokens=False)
        dec_skip = hf.decode(want, skip_special_tokens=True)
        if o["decoded"] != dec or o["decoded_skip"] != dec_skip:
            bad_dec.append({"text": text, "want": [dec, dec_skip], "got": [o["decoded"], o["decoded_skip"]]})
    assert not bad_enc, _report(name, "encode", bad_enc, len(texts))
    assert not bad_dec, _report(name, "decode", bad_dec, len(texts))
    return ours


@pytest.fixture(scope="module")
def smollm2():
    if not os.path.exists(SMOLLM2):
        pytest.skip(f"SmolLM2 GGUF not found at {SMOLLM2} (bash scripts/fetch-model.sh fetches it)")
    return SMOLLM2, transformers_tokenizer(SMOLLM2)


def test_smollm2_encode_decode(smollm2):
    _need_bin()
    path, hf = smollm2
    ref = reference_backend(hf, "smollm")
    texts = make_strings(N_STRINGS, seed=zlib.crc32(b"smollm2-gguf"))
    ours = _compare_encode("smollm2", path, hf, ref, texts)
    # Unmodified transformers differs only through the Digits split, i.e. only on text with a numeric character.
    bad = [{"text": t, "want": hf(t).input_ids, "got": o["ids"]} for t, o in zip(texts, ours)
           if not _has_numeric(t) and hf(t).input_ids != o["ids"]]
    assert not bad, _report("smollm2 (transformers as is, no numerics)", "encode", bad, len(texts))
    # The adjustment matters: SmolLM2's tokenizer.json splits "a  1" as a|ĠĠ|1, transformers' GGUF path a|Ġ|Ġ|1.
    assert ref.encode("a  1").ids != hf("a  1").input_ids


def test_smollm2_decode_random_ids_and_stream(smollm2):
    _need_bin()
    path, hf = smollm2
    n_vocab = len(hf.backend_tokenizer.get_vocab())
    rng = random.Random(5)
    seqs = [[rng.randrange(n_vocab) if rng.random() > 0.1 else rng.randrange(17) for _ in range(rng.randint(0, 24))]
            for _ in range(2000)]
    ours = _run(["detokenize", "--model", str(path)], seqs)
    bad = []
    for seq, o in zip(seqs, ours):
        want = hf.decode(seq, skip_special_tokens=False)
        want_skip = hf.decode(seq, skip_special_tokens=True)
        got = [o.get("text"), o.get("text_skip"), o.get("stream"), o.get("stream_skip")]
        if got != [want, want_skip, want, want_skip] or not o["stream_utf8"] or not o["stream_skip_utf8"]:
            bad.append({"ids": seq, "want": want, "got": got})
    assert not bad, _report("smollm2", "decode/stream", bad, len(seqs))


CONVERSATIONS = [
    ([{"role": "user", "content": "Hello!"}], True),
    ([{"role": "user", "content": "Hello!"}], False),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}], True),
    ([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Tell me a joke."}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey."}], False),
    ([{"role": "user", "content": "Multi-line\n  text with ünïcödé, 日本語 and emoji 🦙\n"}], True),
    ([{"role": "user", "content": ""}], True),
]


def test_smollm2_chat_template(smollm2):
    _need_bin()
    path, hf = smollm2
    batch = [{"messages": m, "add_generation_prompt": g} for m, g in CONVERSATIONS]
    ours = _run(["chat-template", "--model", str(path)], batch)
    bad = []
    for (msgs, gen), o in zip(CONVERSATIONS, ours):
        want = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        if o.get("text") != want:
            bad.append({"messages": msgs, "gen": gen, "want": want, "got": o})
    assert not bad, _report("smollm2", "chat-template", bad, len(CONVERSATIONS))


SYNTHETIC = [
    ("llama-scores", lambda p: llama2_sentencepiece(p, with_merges=False), None),
    ("llama-merges-eos", lambda p: llama2_sentencepiece(p, with_merges=True, add_eos=True), None),
    ("gpt2-llama-bpe", lambda p: deepseek_byte_level(p, "llama-bpe", bos=0, eos=1, unk=2, add_bos=True), "llama-bpe"),
    ("gpt2-qwen2", lambda p: deepseek_byte_level(p, "qwen2", bos=0, eos=1, unk=2, pad=2), "qwen2"),
]


@pytest.mark.parametrize("name,make,pre", SYNTHETIC, ids=[s[0] for s in SYNTHETIC])
def test_synthetic_gguf_encode_decode(name, make, pre, tmp_path):
    _need_bin()
    path = tmp_path / f"{name}.gguf"
    make(path)
    hf = transformers_tokenizer(path)
    ref = reference_backend(hf, pre)
    extra = normalization_fragment if pre == "qwen2" else None
    texts = make_strings(N_SYNTH, seed=zlib.crc32(name.encode()), extra=extra, extra_p=0.3 if extra else 0.0)
    _compare_encode(name, path, hf, ref, texts)

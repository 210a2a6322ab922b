"""Differential test: headroom's tokenizer against the `tokenizers` package (pip install tokenizers==0.23.3)
on 20,000 random and adversarial strings per tokenizer (encode with and without special tokens, decode
with and without skip_special_tokens), plus random id sequences for decode and the streaming decoder.
headroom runs in its hidden batch mode (one process per tokenizer, not per string)."""
import copy
import json
import os
import random
import subprocess
import tempfile
import zlib

import pytest

from tok_strings import make_strings, normalization_fragment

tokenizers = pytest.importorskip("tokenizers")

BIN = os.environ.get("HEADROOM_BIN", "")
FIX = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
N_STRINGS = int(os.environ.get("HR_TOKENIZER_DIFF_N", "20000"))
# Variants of the Mistral tokenizer that only swap one component get fewer strings to keep the suite fast;
# the real tokenizers (mistral, llama2, deepseek) and the byte-level variants get N_STRINGS.
N_SMALL = min(N_STRINGS, 5000)
SMALL_VARIANTS = {"mistral-merge-pairs", "mistral-metaspace-first", "mistral-metaspace-split", "mistral-added-flags",
                  "qwen2-style-nfkc", "deepseek-nfd", "digits-contiguous"}
# Variants with a Unicode normalizer draw half their fragments from the normalization generator
# (combining-mark runs, decomposed Hangul, characters that normalization changes).
NORMALIZER_VARIANTS = {"qwen2-style-nfc", "qwen2-style-nfkc", "deepseek-nfd"}
N_ID_SEQS = 2000


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _variants():
    """(name, tokenizer.json dict): the fixtures plus variants that exercise other components."""
    mistral = _load(os.path.join(FIX, "tokenizers", "mistral", "tokenizer.json"))
    llama2 = _load(os.path.join(FIX, "tokenizers", "llama2", "tokenizer.json"))
    deepseek = _load(os.path.join(FIX, "tokenizers", "deepseek", "tokenizer.json"))
    out = [("mistral", mistral), ("llama2", llama2), ("deepseek", deepseek)]

    # Merges written as [a, b] pairs instead of "a b" strings.
    pairs = copy.deepcopy(mistral)
    pairs["model"]["merges"] = [m.split(" ") for m in pairs["model"]["merges"]]
    out.append(("mistral-merge-pairs", pairs))

    # Metaspace pre-tokenizer + Metaspace decoder (newer Llama/Mistral exports) with prepend_scheme "first".
    meta = copy.deepcopy(mistral)
    meta["normalizer"] = None
    meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    meta["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    out.append(("mistral-metaspace-first", meta))
    meta_split = copy.deepcopy(meta)
    meta_split["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    out.append(("mistral-metaspace-split", meta_split))

    # Added tokens with every matching flag, normalized and not, special and not.
    added = copy.deepcopy(mistral)
    flags = [("[INST]", False, True, True, False, True), ("<tool>", True, False, False, False, False),
             ("hello", True, False, False, True, False), ("</tool>", False, True, False, True, False),
             ("<|im_start|>", False, False, True, True, True)]
    next_id = len(added["model"]["vocab"])
    for content, single_word, lstrip, rstrip, normalized, special in flags:
        tid = added["model"]["vocab"].get(content)
        if tid is None:
            tid, next_id = next_id, next_id + 1
        added["added_tokens"].append({"id": tid, "content": content, "single_word": single_word, "lstrip": lstrip,
                                      "rstrip": rstrip, "normalized": normalized, "special": special})
    out.append(("mistral-added-flags", added))

    # GPT-2-style byte level: ByteLevel pre-tokenizer with its own regex, with and without a prefix space.
    gpt2 = copy.deepcopy(deepseek)
    gpt2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    gpt2["normalizer"] = None
    out.append(("gpt2-style", gpt2))
    gpt2p = copy.deepcopy(gpt2)
    gpt2p["pre_tokenizer"]["add_prefix_space"] = True
    gpt2p["post_processor"] = {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<｜begin▁of▁sentence｜>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "<｜end▁of▁sentence｜>", "type_id": 0}}],
                               "pair": [], "special_tokens": {
                                   "<｜begin▁of▁sentence｜>": {"id": "<｜begin▁of▁sentence｜>", "ids": [0], "tokens": ["<｜begin▁of▁sentence｜>"]},
                                   "<｜end▁of▁sentence｜>": {"id": "<｜end▁of▁sentence｜>", "ids": [1], "tokens": ["<｜end▁of▁sentence｜>"]}}}
    out.append(("gpt2-style-prefix-bos-eos", gpt2p))

    # Llama-3 style: one Split with the Llama-3 regex (case-insensitive contractions), then ByteLevel.
    llama3 = copy.deepcopy(deepseek)
    llama3["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    llama3["model"]["ignore_merges"] = True
    out.append(("llama3-style", llama3))

    # Qwen2 style: the byte-level tokenizer with an NFC normalizer (Qwen2's tokenizer.json has {"type": "NFC"}).
    qwen2 = copy.deepcopy(deepseek)
    qwen2["normalizer"] = {"type": "NFC"}
    out.append(("qwen2-style-nfc", qwen2))
    # NFKC inside a Sequence: also changes normalized added tokens' contents (fullwidth ｜ -> |).
    nfkc = copy.deepcopy(deepseek)
    nfkc["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}]}
    out.append(("qwen2-style-nfkc", nfkc))
    nfd = copy.deepcopy(deepseek)
    nfd["normalizer"] = {"type": "NFD"}
    out.append(("deepseek-nfd", nfd))

    # SmolLM2 / StarCoder style: Digits(individual_digits) then GPT-2's ByteLevel regex; and contiguous Digits.
    smollm = copy.deepcopy(deepseek)
    smollm["normalizer"] = None
    smollm["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    out.append(("smollm-style-digits", smollm))
    digits_runs = copy.deepcopy(smollm)
    digits_runs["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = False
    out.append(("digits-contiguous", digits_runs))
    return out


VARIANTS = _variants() if os.path.exists(os.path.join(FIX, "tokenizers", "deepseek", "tokenizer.json")) else []


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


@pytest.mark.parametrize("name,spec", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_encode_decode_matches_tokenizers(name, spec, tmp_path):
    if not BIN or not os.path.exists(BIN):
        pytest.fail("HEADROOM_BIN is not set to the headroom binary")
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    hf = tokenizers.Tokenizer.from_file(str(path))
    n = N_SMALL if name in SMALL_VARIANTS else N_STRINGS
    if name in NORMALIZER_VARIANTS:
        texts = make_strings(n, seed=zlib.crc32(name.encode()), extra=normalization_fragment, extra_p=0.5)
    else:
        texts = make_strings(n, seed=zlib.crc32(name.encode()))
    ours = _run(["tokenize", "--tokenizer", str(path)], texts)
    assert len(ours) == len(texts)
    bad_enc, bad_dec = [], []
    for text, o in zip(texts, ours):
        want = hf.encode(text).ids
        want_plain = hf.encode(text, add_special_tokens=False).ids
        if "error" in o or o["ids"] != want or o["ids_plain"] != want_plain:
            bad_enc.append({"text": text, "want": want, "got": o.get("ids", o.get("error"))})
            continue
        if o["decoded"] != hf.decode(want, skip_special_tokens=False) or \
                o["decoded_skip"] != hf.decode(want, skip_special_tokens=True):
            bad_dec.append({"text": text, "want": hf.decode(want, skip_special_tokens=False), "got": o["decoded"]})
    assert not bad_enc, _report(name, "encode", bad_enc, len(texts))
    assert not bad_dec, _report(name, "decode", bad_dec, len(texts))


STREAM_VARIANTS = [v for v in VARIANTS if v[0] in ("mistral", "llama2", "deepseek", "mistral-metaspace-first",
                                                     "mistral-added-flags", "gpt2-style")]


@pytest.mark.parametrize("name,spec", STREAM_VARIANTS, ids=[v[0] for v in STREAM_VARIANTS])
def test_decode_random_ids_and_stream(name, spec, tmp_path):
    if not BIN or not os.path.exists(BIN):
        pytest.fail("HEADROOM_BIN is not set to the headroom binary")
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    hf = tokenizers.Tokenizer.from_file(str(path))
    vocab = hf.get_vocab()
    ids_all = sorted(vocab.values())
    byte_ids = [i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x")]
    specials = [t["id"] for t in spec["added_tokens"]][:20]
    rng = random.Random(7)
    seqs = []
    for _ in range(N_ID_SEQS):
        seq = []
        for _ in range(rng.randint(0, 24)):
            r = rng.random()
            if r < 0.3 and byte_ids:
                seq.append(rng.choice(byte_ids))
            elif r < 0.4:
                seq.append(rng.choice(specials))
            else:
                seq.append(rng.choice(ids_all))
        seqs.append(seq)
    # Real encodings of multi-byte text split into byte tokens, too.
    for text in make_strings(500, seed=11):
        seqs.append(hf.encode(text).ids)
    ours = _run(["detokenize", "--tokenizer", str(path)], seqs)
    bad = []
    for seq, o in zip(seqs, ours):
        want = hf.decode(seq, skip_special_tokens=False)
        want_skip = hf.decode(seq, skip_special_tokens=True)
        if o.get("text") != want or o.get("text_skip") != want_skip or o.get("stream") != want or \
                o.get("stream_skip") != want_skip or not o.get("stream_utf8") or not o.get("stream_skip_utf8"):
            bad.append({"ids": seq, "want": want, "got": o})
    assert not bad, _report(name, "decode/stream", bad, len(seqs))

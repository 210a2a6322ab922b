"""GGUF files with only tokenizer metadata (plus the few llama.* keys transformers needs to read one), written
with the `gguf` package from the tokenizer fixtures, for the GGUF tokenizer differential test; and the
reference tokenizer: what transformers builds from the same file, with the documented family adjustments
(docs/tokenizer.md, "GGUF")."""
import json
import os

import numpy as np

FIX = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def write_gguf(path, model, pre, tokens, types, scores=None, merges=None, bos=None, eos=None, unk=None, pad=None,
               add_bos=None, add_eos=None, add_space_prefix=None, chat_template=None):
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    # transformers reads a model config from the same file before it builds the tokenizer.
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.context_length", 128)
    w.add_uint32("llama.embedding_length", 8)
    w.add_uint32("llama.feed_forward_length", 16)
    w.add_uint32("llama.attention.head_count", 2)
    w.add_uint32("llama.attention.head_count_kv", 2)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32("llama.rope.dimension_count", 4)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    for fn, v in ((w.add_bos_token_id, bos), (w.add_eos_token_id, eos), (w.add_unk_token_id, unk),
                  (w.add_pad_token_id, pad), (w.add_add_bos_token, add_bos), (w.add_add_eos_token, add_eos),
                  (w.add_add_space_prefix, add_space_prefix), (w.add_chat_template, chat_template)):
        if v is not None:
            fn(v)
    w.add_tensor("token_embd.weight", np.zeros((2, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _load(name):
    with open(os.path.join(FIX, "tokenizers", name, "tokenizer.json"), encoding="utf-8") as f:
        return json.load(f)


def llama2_sentencepiece(path, with_merges, **kw):
    """Llama-2's vocabulary as llama.cpp writes a SentencePiece model: token types, and scores that rank
    the pieces (-(id - 259), as Llama-2's tokenizer.model has them); merges only when asked."""
    j = _load("llama2")
    inv = {v: k for k, v in j["model"]["vocab"].items()}
    tokens = [inv[i] for i in range(len(inv))]
    types, scores = [], []
    for i, t in enumerate(tokens):
        if t == "<unk>":
            types.append(UNKNOWN)
        elif t in ("<s>", "</s>"):
            types.append(CONTROL)
        elif len(t) == 6 and t.startswith("<0x"):
            types.append(BYTE)
        else:
            types.append(NORMAL)
        scores.append(0.0 if types[-1] != NORMAL else float(-(i - 259)))
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]] if with_merges else None
    write_gguf(path, "llama", "default", tokens, types, scores=scores, merges=merges, bos=1, eos=2, unk=0, **kw)


def deepseek_byte_level(path, pre, **kw):
    """DeepSeek's byte-level vocabulary and merges as a "gpt2" GGUF. Its added tokens become control
    (special) and user-defined tokens; those spelled outside the byte alphabet are renamed to ASCII,
    because transformers cannot match such tokens (docs/tokenizer.md)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    alphabet = set(bytes_to_unicode().values())
    j = _load("deepseek")
    inv = {v: k for k, v in j["model"]["vocab"].items()}
    n = max(max(inv), max(a["id"] for a in j["added_tokens"])) + 1
    tokens = [inv.get(i, f"[PAD{i}]") for i in range(n)]
    types = [NORMAL] * n
    for a in j["added_tokens"]:
        content = a["content"] if set(a["content"]) <= alphabet else f"<|added_{a['id']}|>"
        tokens[a["id"]] = content
        types[a["id"]] = CONTROL if a["special"] else USER_DEFINED
    # note: transformers' GPT2Tokenizer adds its default "<|endoftext|>" as a special token past the
    # vocabulary when the vocabulary lacks it (headroom invents no tokens), so one control token is named so.
    tokens[2] = "<|endoftext|>"
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    write_gguf(path, "gpt2", pre, tokens, types, merges=merges, **kw)


def transformers_tokenizer(path):
    from transformers import AutoTokenizer
    import transformers
    transformers.logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(os.path.dirname(str(path)), gguf_file=os.path.basename(str(path)))


def reference_backend(hf, pre):
    """transformers' backend tokenizer with the family adjustments headroom makes for tokenizer.ggml.pre
    (transformers' GGUF converter leaves them out): SmolLM2's Digits split, Llama-3's ignore_merges,
    Qwen2's NFC normalizer."""
    import tokenizers
    j = json.loads(hf.backend_tokenizer.to_str())
    if pre == "smollm":
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    elif pre == "llama-bpe":
        j["model"]["ignore_merges"] = True
    elif pre == "qwen2":
        j["normalizer"] = {"type": "NFC"}
    return tokenizers.Tokenizer.from_str(json.dumps(j))

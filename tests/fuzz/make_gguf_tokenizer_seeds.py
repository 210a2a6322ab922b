"""Writes the seed corpus of fuzz_gguf_tokenizer (tests/fuzz/corpus/gguf_tokenizer) with the `gguf` package:
tiny "gpt2" vocabularies under each known tokenizer.ggml.pre, tiny "llama" ones with scores or merges,
and a few malformed ones (token_type length, id out of range, unknown pre). Run: python3 THIS_FILE."""
import os

import gguf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf_tokenizer")

GPT2_TOKENS = ["<|end|>", "h", "e", "l", "o", "\u0120", "w", "r", "d", "1", "2", "he", "ll", "hell", "hello",
               "\u0120w", "or", "\u0120wor", "\u0120worl", "\u0120world", "12", "<think>"]
GPT2_TYPES = [3] + [1] * 20 + [4]
GPT2_MERGES = ["h e", "l l", "he ll", "hell o", "\u0120 w", "o r", "\u0120w or", "\u0120wor l", "\u0120worl d", "1 2"]


def write(name, model, tokens, types, pre=None, scores=None, merges=None, **ids):
    w = gguf.GGUFWriter(os.path.join(OUT, name), "llama")
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    if types is not None:
        w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    for key, v in ids.items():
        getattr(w, "add_" + key)(v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    for pre in ("default", "smollm", "llama-bpe", "qwen2"):
        write(f"gpt2_{pre}", "gpt2", GPT2_TOKENS, GPT2_TYPES, pre=pre, merges=GPT2_MERGES, eos_token_id=0,
              chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    write("gpt2_bos_eos", "gpt2", GPT2_TOKENS, GPT2_TYPES, pre="default", merges=GPT2_MERGES, bos_token_id=0,
          eos_token_id=0, add_bos_token=True, add_eos_token=True)
    sp = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581", "h", "i", "\u2581h", "\u2581hi"]
    types = [2, 3, 3] + [6] * 256 + [1] * 5
    scores = [0.0] * 259 + [-float(i) for i in range(5)]
    write("llama_scores", "llama", sp, types, pre="default", scores=scores, bos_token_id=1, eos_token_id=2,
          unk_token_id=0)
    write("llama_merges_nospace", "llama", sp, types, scores=scores, merges=["\u2581 h", "\u2581h i"],
          bos_token_id=1, add_space_prefix=False)
    write("bad_type_len", "gpt2", GPT2_TOKENS, GPT2_TYPES[:-1], pre="default", merges=GPT2_MERGES)
    write("bad_eos_id", "gpt2", GPT2_TOKENS, GPT2_TYPES, pre="default", merges=GPT2_MERGES, eos_token_id=99)
    write("bad_pre", "gpt2", GPT2_TOKENS, GPT2_TYPES, pre="no-such-pre", merges=GPT2_MERGES)


if __name__ == "__main__":
    main()

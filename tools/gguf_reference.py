#!/usr/bin/env python3
"""Reference values for headroom's GGUF reader and ggml block dequantizer, computed with the `gguf` PyPI
package (gguf.quants.dequantize, gguf.GGUFReader) and numpy, independently of headroom's C++ code.

  python3 tools/gguf_reference.py blocks   -> tests/fixtures/gguf/blocks.safetensors
      per ggml type: a few rows of random blocks (random bytes; f16 scale fields set to finite values of
      varied magnitude, zero and subnormals included) as "<TYPE>.raw" (U8 [rows, row_bytes]) and the
      gguf package's dequantized values as "<TYPE>.expected" (F32 [rows, cols]).
      Q/K permutation cases as "permute.h<n_head>.hf" / "permute.h<n_head>.gguf" (F32 [rows, cols]):
      .gguf is llama.cpp's convert_hf_to_gguf permutation of .hf (numpy, below); the inverse must restore .hf.
  python3 tools/gguf_reference.py corpus   -> tests/fuzz/corpus/gguf/*
      the fuzzer's seed corpus: small files written by the gguf package's GGUFWriter (an independent
      writer), valid ones of every tensor type and metadata kind, and a few corrupt ones (bad_*).
  python3 tools/gguf_reference.py smollm2 [FILE.gguf] -> tests/fixtures/gguf/smollm2_rows.safetensors
      rows of token_embd.weight (Q8_0) and blk.0.attn_q.weight (Q4_1) dequantized by the gguf package, and
      a position-weighted 64-bit checksum of each whole dequantized tensor's f32 bits (checksum64, in the metadata).
Safetensors is written by hand (no extra dependency); headroom's tests read it with io/safetensors.h.
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "gguf")
SEED = 12


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, np.ndarray of uint8 or float32)."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs = []
    offset = 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}[arr.dtype]
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def random_f16(rng, n):
    """n finite f16 values as uint16 bits: varied exponents (subnormal to 2^15), both signs, some zeros."""
    sign = rng.integers(0, 2, n).astype(np.uint16) << 15
    exp = rng.integers(0, 31, n).astype(np.uint16)  # 0 = zero/subnormal, 30 = largest finite exponent
    mant = rng.integers(0, 1024, n).astype(np.uint16)
    bits = sign | (exp << 10) | mant
    bits[rng.random(n) < 0.05] = 0
    return bits


# Byte offsets of the f16 fields inside one block of each type.
F16_FIELDS = {
    T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
ROWS = 3
BLOCKS_PER_ROW = {32: 3, 256: 2, 1: 40}


def make_blocks(rng, qtype):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    nblk = BLOCKS_PER_ROW[block_elems]
    cols = nblk * block_elems
    if qtype == T.F32:
        raw = rng.standard_normal((ROWS, cols)).astype(np.float32) * np.float32(10.0) ** rng.integers(-30, 30, (ROWS, cols))
        raw = raw.astype(np.float32).view(np.uint8)
    elif qtype == T.F16:
        raw = random_f16(rng, ROWS * cols).reshape(ROWS, cols).view(np.uint8)
    elif qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, ROWS * cols).astype(np.uint16)
        bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0xBFFF, bits)  # finite only
        raw = bits.astype(np.uint16).reshape(ROWS, cols).view(np.uint8)
    else:
        raw = rng.integers(0, 256, (ROWS * nblk, block_bytes), dtype=np.uint8)
        for off in F16_FIELDS[qtype]:
            raw[:, off:off + 2] = random_f16(rng, ROWS * nblk).view(np.uint8).reshape(-1, 2)
        raw = raw.reshape(ROWS, nblk * block_bytes)
    raw = np.ascontiguousarray(raw.reshape(ROWS, -1))
    expected = gguf.quants.dequantize(raw, qtype).astype(np.float32, copy=False).reshape(ROWS, cols)
    assert np.isfinite(expected).all(), qtype.name
    return raw, expected


def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf's Q/K permutation of HF rows (LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def cmd_blocks():
    rng = np.random.default_rng(SEED)
    tensors = []
    types = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]
    for qt in types:
        raw, expected = make_blocks(rng, qt)
        tensors.append((f"{qt.name}.raw", raw))
        tensors.append((f"{qt.name}.expected", expected))
    # (n_head, head_dim, cols): SmolLM2's Q (9 heads) and K (3 kv heads) at head_dim 64, and small cases.
    for n_head, head_dim, cols in [(9, 64, 3), (3, 64, 5), (2, 4, 3), (1, 2, 1)]:
        hf = rng.standard_normal((n_head * head_dim, cols)).astype(np.float32)
        tensors.append((f"permute.h{n_head}.hf", hf))
        tensors.append((f"permute.h{n_head}.gguf", np.ascontiguousarray(permute(hf, n_head))))
    meta = {"made_by": "tools/gguf_reference.py blocks", "gguf_package": gguf_version(), "numpy": np.__version__,
            "seed": SEED}
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "blocks.safetensors")
    write_safetensors(path, tensors, meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(types)} types)")


def checksum64(values):
    """sum over i of bits(values[i]) * (2i + 1), mod 2^64: any change to one value's bits changes it (the
    multiplier is odd) and it depends on position. headroom's test computes the same."""
    w = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    mult = np.arange(w.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return int((w * mult).sum(dtype=np.uint64))


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "unknown"


def cmd_smollm2(path):
    r = gguf.GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    tensors = []
    meta = {"made_by": "tools/gguf_reference.py smollm2", "gguf_package": gguf_version(), "file": os.path.basename(path)}
    for name, rows in [("token_embd.weight", [0, 1, 2, 100, 12345, 49151]), ("blk.0.attn_q.weight", [0, 1, 63, 64, 575])]:
        t = by_name[name]
        deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32, copy=False)
        deq = deq.reshape(-1, int(t.shape[0]))
        tensors.append((f"{name}.rows", np.ascontiguousarray(deq[rows])))
        meta[f"{name}.row_ids"] = ",".join(map(str, rows))
        meta[f"{name}.checksum64"] = f"{checksum64(deq):016x}"
        meta[f"{name}.shape"] = f"{deq.shape[0]},{deq.shape[1]}"
        meta[f"{name}.type"] = t.tensor_type.name
    os.makedirs(OUT_DIR, exist_ok=True)
    out = os.path.join(OUT_DIR, "smollm2_rows.safetensors")
    write_safetensors(out, tensors, meta)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


def gguf_bytes(kvs, tensors, arch="llama", alignment=None):
    """A GGUF file made by gguf.GGUFWriter: kvs (key, kind, value) with kind one of the add_* suffixes,
    tensors (name, ggml type, shape outermost first) with random raw bytes."""
    import tempfile
    rng = np.random.default_rng(len(kvs) * 31 + len(tensors))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.gguf")
        w = gguf.GGUFWriter(path, arch)
        if alignment is not None:
            w.add_custom_alignment(alignment)
        for key, kind, value in kvs:
            if kind == "array":
                w.add_array(key, value)
            else:
                getattr(w, "add_" + kind)(key, value)
        for name, qtype, shape in tensors:
            block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
            byte_shape = list(shape[:-1]) + [shape[-1] // block_elems * block_bytes]
            raw = rng.integers(0, 256, byte_shape, dtype=np.uint8)
            if qtype in F16_FIELDS:
                blocks = raw.reshape(-1, block_bytes)
                for off in F16_FIELDS[qtype]:
                    blocks[:, off:off + 2] = random_f16(rng, blocks.shape[0]).view(np.uint8).reshape(-1, 2)
            elif qtype in (T.F32,):
                raw = rng.standard_normal(shape).astype(np.float32).view(np.uint8).reshape(byte_shape)
            w.add_tensor(name, raw, raw_shape=byte_shape, raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(path, "rb") as f:
            return bytearray(f.read())


def cmd_corpus():
    out = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf")
    os.makedirs(out, exist_ok=True)
    files = {}
    files["valid_empty"] = gguf_bytes([], [])
    llama_kvs = [("llama.block_count", "uint32", 1), ("llama.embedding_length", "uint32", 64),
                 ("llama.rope.freq_base", "float32", 10000.0), ("tokenizer.ggml.model", "string", "gpt2"),
                 ("tokenizer.ggml.tokens", "array", ["<s>", "</s>", "a", "\u0120the"]),
                 ("tokenizer.ggml.token_type", "array", [3, 3, 1, 1]),
                 ("tokenizer.ggml.scores", "array", [0.0, -1.5, -2.0, -3.25]),
                 ("tokenizer.ggml.add_bos_token", "bool", True),
                 ("tokenizer.chat_template", "string", "{% for m in messages %}{{ m['content'] }}{% endfor %}")]
    files["valid_tiny_llama"] = gguf_bytes(llama_kvs, [
        ("token_embd.weight", T.Q8_0, (4, 64)), ("blk.0.attn_norm.weight", T.F32, (64,)),
        ("blk.0.attn_q.weight", T.Q4_1, (4, 64)), ("output.weight", T.F16, (4, 64))])
    files["valid_all_types"] = gguf_bytes([], [(f"t.{qt.name}", qt, (1, GGML_QUANT_SIZES[qt][0] * 2)) for qt in
        [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]])
    files["valid_k_quants"] = gguf_bytes([], [(f"t.{qt.name}", qt, (2, 256)) for qt in [T.Q4_K, T.Q5_K, T.Q6_K]])
    files["valid_4d"] = gguf_bytes([], [("t", T.F32, (2, 1, 3, 4))])
    files["valid_align64"] = gguf_bytes([("x", "uint64", 7)], [("a", T.F32, (3,)), ("b", T.F16, (5,))], alignment=64)
    files["valid_unsupported_q2k"] = gguf_bytes([], [("t", T.Q2_K, (1, 256))])
    files["valid_scalars"] = gguf_bytes([("u8", "uint8", 255), ("i8", "int8", -1), ("u16", "uint16", 9),
                                         ("i16", "int16", -9), ("i32", "int32", -5), ("u64", "uint64", 2**64 - 1),
                                         ("i64", "int64", -2**63), ("f64", "float64", 0.1), ("b", "bool", False),
                                         ("s", "string", "")], [])
    v2 = bytearray(files["valid_tiny_llama"])
    v2[4] = 2
    files["valid_v2"] = v2
    bad = bytearray(files["valid_tiny_llama"])
    files["bad_truncated"] = bad[: len(bad) - 100]
    v1 = bytearray(bad)
    v1[4] = 1
    files["bad_v1"] = v1
    files["bad_magic"] = b"GGUX" + bytes(bad[4:64])
    # general.alignment 64 patched to 48 (not a power of two).
    al = bytearray(files["valid_align64"])
    i = al.index(b"general.alignment") + len("general.alignment") + 4  # then the u32 value type, the value
    assert al[i:i + 4] == struct.pack("<I", 64)
    al[i:i + 4] = struct.pack("<I", 48)
    files["bad_align48"] = al
    # A duplicate key: "j" renamed to "k".
    dup = gguf_bytes([("k", "uint32", 1), ("j", "uint32", 2)], [])
    i = dup.index(struct.pack("<Q", 1) + b"j")
    dup[i + 8] = ord("k")
    files["bad_duplicate_key"] = dup
    # A duplicate tensor name: "b" renamed to "a".
    dt = gguf_bytes([], [("a", T.F32, (4,)), ("b", T.F32, (4,))])
    i = dt.index(struct.pack("<Q", 1) + b"b")
    dt[i + 8] = ord("a")
    files["bad_duplicate_tensor"] = dt
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} seeds to {out}: " + ", ".join(f"{k} ({len(v)} B)" for k, v in files.items()))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("blocks", "smollm2", "corpus"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "blocks":
        cmd_blocks()
    elif sys.argv[1] == "corpus":
        cmd_corpus()
    else:
        default = os.path.expanduser("~/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf")
        cmd_smollm2(sys.argv[2] if len(sys.argv) > 2 else default)


if __name__ == "__main__":
    main()

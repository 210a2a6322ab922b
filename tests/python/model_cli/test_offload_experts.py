"""--offload-experts on the CPU backend (the commands that load a model): the flag is accepted, places the
experts in host memory (a no-op for the CPU's arithmetic), and changes nothing in the output; bad counts
are errors that name the flag. The CUDA side is tests/parity/offload_parity_test.cpp."""
import os
import subprocess

BIN = os.environ.get("HEADROOM_BIN", "headroom")
FIXTURES = os.environ.get("HR_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
MODEL = os.path.join(FIXTURES, "models", "tiny-mixtral")


def generate(*extra):
    return subprocess.run([BIN, "generate", "--model", MODEL, "--token-ids", "1,415,2936,9060", "--max-tokens", "6",
                           "--weights", "int8", *extra], capture_output=True, text=True, timeout=120)


def test_same_output_with_and_without_offload():
    base = generate()
    assert base.returncode == 0, base.stderr
    for flag in (["--offload-experts", "3"], ["--offload-experts", "8"], ["--offload-experts", "auto"],
                 ["--offload-experts", "0"]):
        r = generate(*flag)
        assert r.returncode == 0, (flag, r.stderr)
        assert r.stdout == base.stdout, flag
    r = generate("--offload-experts", "3")
    assert "3 experts in pinned host memory" in r.stderr, r.stderr


def test_bad_counts_are_errors():
    for bad in ("9", "-1", "many"):
        r = generate("--offload-experts", bad)
        assert r.returncode != 0 and "--offload-experts" in r.stderr, (bad, r.stderr)
    r = subprocess.run([BIN, "generate", "--model", os.path.join(FIXTURES, "models", "tiny-llama"), "--token-ids", "1,2",
                        "--max-tokens", "2", "--offload-experts", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "no MoE experts" in r.stderr, r.stderr

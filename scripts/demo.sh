#!/usr/bin/env bash
# README command 1's job, after the build: fetch SmolLM2-135M-Instruct (cached, sha256-checked), classify
# the sample business documents with it on the CPU (one line per document: label, probability, true
# label; then accuracy, documents/s and the model; with --examples the default method compares each
# document's hidden states with the 23 few-shot examples', docs/classify.md), then print the memory plan of Mixtral-8x7B in int8 on
# a 24 GB card. Exit status: 0 when both ran as expected (the plan's own exit code 3, "does not fit", is
# the expected answer there); otherwise the failing step's code.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bin="${HEADROOM_BIN:-$here/build/src/headroom}"
if [ ! -x "$bin" ]; then
  echo "demo: $bin is missing: build it first (cmake --build build --target headroom)" >&2
  exit 2
fi
# Spinning OpenMP workers only slow a shared machine down.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

echo "== 1/2  Classify examples/documents (30 business documents, 4 languages) with SmolLM2-135M-Instruct"
model="$(bash scripts/fetch-model.sh)" || { echo "demo: fetching the model failed" >&2; exit 1; }
"$bin" classify --model "$model" --labels-file examples/labels.txt --examples examples/fewshot \
  --manifest examples/documents/manifest.jsonl \
  examples/documents
rc=$?
if [ $rc -ne 0 ]; then
  echo "demo: headroom classify failed (exit code $rc)" >&2
  exit $rc
fi

echo
echo "== 2/2  Plan Mixtral-8x7B in int8 on a 24 GB card (RTX 4090), the set-up that started this project"
"$bin" plan --model mixtral-8x7b --weights int8 --gpu rtx4090
rc=$?
if [ $rc -eq 3 ]; then
  echo "(plan exit code 3 = does not fit: the expected answer; the plan above says by how much and what would fit)"
  exit 0
fi
echo "demo: headroom plan exited with $rc (expected 3, does not fit)" >&2
exit $([ $rc -eq 0 ] && echo 1 || echo $rc)

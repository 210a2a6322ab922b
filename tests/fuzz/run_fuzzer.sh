#!/bin/sh
# Fuzz test driver (ctest label fuzz): replays the seed corpus, then fuzzes for SECONDS.
# Any crash, abort, sanitizer report, leak, timeout (>10 s per input) or OOM (>2 GiB) fails.
# usage: run_fuzzer.sh FUZZER SEED_DIR WORK_DIR SECONDS [DICT]  (DICT may be empty)
set -eu
fuzzer=$1
seeds=$2
work=$3
seconds=$4
dict=${5:-}
limits="-timeout=10 -rss_limit_mb=2048"
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
echo "== replaying seed corpus $seeds"
# shellcheck disable=SC2086
"$fuzzer" $limits -artifact_prefix="$work/artifacts/" "$seeds"/*
echo "== fuzzing for $seconds s (new inputs in $work/corpus, crashes in $work/artifacts)"
# shellcheck disable=SC2086
dict_flag=""
if [ -n "$dict" ]; then dict_flag="-dict=$dict"; fi
# shellcheck disable=SC2086
"$fuzzer" $limits -max_total_time="$seconds" $dict_flag -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"

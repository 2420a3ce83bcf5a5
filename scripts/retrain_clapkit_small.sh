#!/usr/bin/env bash
# Retrain the shipped clapkit-small from nothing but the offline corpus (docs/models/clapkit-small.md).
#
#   scripts/retrain_clapkit_small.sh [WORK] [FSDD]
#
#   WORK/data/offline  corpus v2 and the evaluation sets (a re-run reuses finished work)
#   WORK/run           the training run (checkpoints, curves; re-running resumes a killed run exactly)
#   WORK/model         the weights as shipped: the text encoder, equal to its pinned package, left out
#   WORK/eval          `clapkit eval --tasks offline` results
#
# FSDD (spoken digits, evaluation only) defaults to ../shared/data/fsdd; without it that task is skipped.
# The same seed on the same machine gives the same weights bit for bit.
set -euo pipefail
# glibc returns every freed block of more than a few MB to the kernel, so each training step faults
# its activations in again, page by page; keeping freed memory made steps faster on 2 cores without
# changing a bit of the result (benchmarks/bench_allocator.py).
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-17179869184} MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-17179869184}
work=${1:-clapkit-small-work}
recipe="$(dirname "$0")/../recipes/clapkit-small.yaml"
fsdd=()
if [ $# -ge 2 ]; then fsdd=(--fsdd "$2"); fi

clapkit data build offline --out "$work/data/offline" --sample-rate 32000 "${fsdd[@]}"
if [ -f "$work/run/checkpoints/LATEST" ] && [ ! -f "$work/run/model.safetensors" ]; then
    clapkit train --resume "$work/run"
elif [ ! -f "$work/run/model.safetensors" ]; then
    clapkit train --config "$recipe" --train "$work/data/offline/manifest.jsonl#train" \
        --val "$work/data/offline/manifest.jsonl#val" --out "$work/run"
fi
rm -rf "$work/model"
clapkit convert "$work/run" --out "$work/model" --slim --check
clapkit eval --model "$work/model" --tasks offline --data-root "$work/data" --out "$work/eval"
sha256sum "$work/model/model.safetensors"

#!/usr/bin/env bash
# The paper's Table 1 audio-encoder ablation at small scale (docs/ablation.md): clapkit-small's audio
# tower started three ways, then the same contrastive recipe and budget, several seeds each.
#
#   scripts/ablation.sh WORK [CONTRASTIVE_STEPS] [SEEDS] [PRETRAIN_STEPS]
#
#   WORK/data/offline          corpus v2 and the evaluation sets (built if missing; re-runs reuse them)
#   WORK/pretrain-label        single-task pretraining: the clip's labels ("HTSAT" baseline analogue)
#   WORK/pretrain-multitask    multi-task pretraining, every task of the mixture ("HTSAT-22" analogue)
#   WORK/{arm}-seed{K}         contrastive runs: scratch, label, multitask (recipes/clapkit-small.yaml)
#   WORK/eval-{arm}-seed{K}    `clapkit eval --tasks offline --probe` of each (zero-shot, retrieval, linear probes)
#
# ARMS="scratch multitask" limits the arms; FSDD=DIR adds the spoken-digit evaluation set when the
# corpus is built. Killed runs resume exactly; finished ones are skipped.
# Then: python benchmarks/ablation_report.py WORK --out docs/ablation
set -euo pipefail
work=${1:?usage: scripts/ablation.sh WORK [CONTRASTIVE_STEPS] [SEEDS] [PRETRAIN_STEPS]}
steps=${2:-1200}
seeds=${3:-"0 1 2"}
pretrain_steps=${4:-400}
arms=${ARMS:-"scratch label multitask"}
here="$(dirname "$0")/.."
data="$work/data/offline/manifest.jsonl"
warmup=$(( steps / 12 < 100 ? steps / 12 : 100 ))

fsdd=()
if [ -n "${FSDD:-}" ]; then fsdd=(--fsdd "$FSDD"); fi
[ -f "$data" ] || clapkit data build offline --out "$work/data/offline" --sample-rate 32000 "${fsdd[@]}"

train() {  # train OUT OPTIONS...: a fresh run, the resumption of a killed one, or nothing if finished
    local out=$1; shift
    if [ -f "$out/model.safetensors" ]; then return; fi
    if [ -f "$out/checkpoints/LATEST" ]; then clapkit train --resume "$out"; return; fi
    clapkit train --train "$data#train" --val "$data#val" --out "$out" "$@"
}

for arm in $arms; do
    case $arm in
        scratch) init=() ;;
        label) train "$work/pretrain-label" --config "$here/recipes/clapkit-small-pretrain.yaml" \
                   --tasks label --steps "$pretrain_steps"
               init=(--init-audio "$work/pretrain-label") ;;
        multitask) train "$work/pretrain-multitask" --config "$here/recipes/clapkit-small-pretrain.yaml" \
                       --steps "$pretrain_steps"
                   init=(--init-audio "$work/pretrain-multitask") ;;
        *) echo "ablation.sh: unknown arm '$arm' (scratch, label, multitask)" >&2; exit 2 ;;
    esac
    for seed in $seeds; do
        run="$work/$arm-seed$seed"
        train "$run" --config "$here/recipes/clapkit-small.yaml" --steps "$steps" --warmup "$warmup" \
            --val-every "$steps" --seed "$seed" "${init[@]}"
        [ -f "$work/eval-$arm-seed$seed/results.json" ] || \
            clapkit eval --model "$run" --tasks offline --probe --data-root "$work/data" --out "$work/eval-$arm-seed$seed"
    done
done

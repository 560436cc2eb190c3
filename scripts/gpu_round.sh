#!/usr/bin/env bash
# One device call on a CUDA machine: scripts/gpu_checks.sh, and meanwhile new training meshes for the crop
# head (step 1b); then the shipped crop head trained further on them in two variants side by side
# (learning rates LR_A and LR_B), to be chosen between on the validation split back on the CPU machine
# (benchmarks/diagnose_detector.py --split val --other-crop-head ...).
#
#   bash scripts/gpu_round.sh OUTDIR > OUTDIR/round.log 2>&1
#       -> OUTDIR/checks.tar.gz (logs, JSON), OUTDIR/crop_heads.tar (runs)
#
# Give the device call a limit at least 60 s above BUDGET, and no pipeline (`| tee`): a call killed at its
# limit returns nothing at all (a first call this way, with steps whose own limits summed past the
# call's, came back empty and spent the session's device time).
#
# Environment: WORK (/tmp/w), DEVICE (cuda), LIMIT (100 test images for the checks), SEEDS ("6 7":
# generate --seed, each its own 150 training meshes per category), TRAIN_IMAGES (4000 per seed), ITERS
# (at most 900 iterations x BATCH 64 images; fewer when less than ITERS / RATE seconds are left), RATE
# (3.0 iterations/s each, two side by side: below the 3.6 of one such training on one H200 beside two
# detector trainings, gpu_finetune.json), LR_A (3e-4), LR_B (1e-3), BUDGET (500: seconds from the start
# by which the trainings are stopped, finished or not), CHECKS (200: seconds for gpu_checks.sh).
set -u
OUTDIR=${1:?usage: gpu_round.sh OUTDIR}
WORK=${WORK:-/tmp/w}
DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-6 7}
BUDGET=${BUDGET:-500}
START=$(date +%s)
A3D="python3 -m amodal3d"
mkdir -p "$WORK/logs" "$OUTDIR"
stamp() { echo "[round $(( $(date +%s) - START )) s] $*"; }

sources=()
for seed in $SEEDS; do
    timeout $(( BUDGET / 2 )) $A3D generate --out "$WORK/seed$seed" --split train="${TRAIN_IMAGES:-4000}" --size 256 --workers 6 --seed "$seed" \
        > "$WORK/logs/generate_seed$seed.log" 2>&1 &
    sources+=("$WORK/seed$seed")
done
DEADLINE=$(( START + ${CHECKS:-200} )) bash scripts/gpu_checks.sh "$WORK" "${LIMIT:-100}"
wait
python3 scripts/merge_datasets.py "$WORK/new_meshes" "${sources[@]}" --split train > "$WORK/logs/merge.log" 2>&1 \
    || { stamp "merge failed: $(tail -1 "$WORK/logs/merge.log")"; }
# a schedule that ends before the budget (the cosine schedule needs its length up front)
ITERS=$(python3 -c "import sys; print(max(10, min(int(sys.argv[1]), int((int(sys.argv[2]) - 40) * float(sys.argv[3])))))" \
    "${ITERS:-900}" "$(( START + BUDGET - $(date +%s) ))" "${RATE:-3.0}")
stamp "training set: seeds $SEEDS, $(ls "$WORK/new_meshes/images/train" 2>/dev/null | wc -l) images; $ITERS iterations"

if (( START + BUDGET - $(date +%s) < 60 )); then stamp "no time left to train"; SKIP_TRAINING=1; fi
for variant in a:${LR_A:-0.0003} b:${LR_B:-0.001}; do
    [[ -n ${SKIP_TRAINING:-} ]] && break
    name=crop_head_${variant%%:*}
    timeout $(( START + BUDGET - $(date +%s) )) $A3D train crop-head --config configs/crop_head_cpu.yaml \
        --init src/amodal3d/weights/cpu-small/crop_head.safetensors --data "$WORK/new_meshes" --device "$DEVICE" \
        --epochs 100 --max-iters "$ITERS" --batch-size "${BATCH:-64}" --lr "${variant#*:}" --warmup-iters 50 \
        --seed 23 --workers 6 --threads 1 --quiet --out "$WORK/runs/$name" > "$WORK/logs/train_$name.log" 2>&1 &
done
wait
for run in "$WORK"/runs/crop_head_*; do
    stamp "$(basename "$run"): $(tail -1 "$run/log.jsonl" 2>/dev/null)"
done
(cd "$WORK/runs" && tar -cf "$OUTDIR/crop_heads.tar" crop_head_*/model.safetensors crop_head_*/model.json \
    crop_head_*/log.jsonl crop_head_*/config.yaml)
tar -C "$WORK" -czf "$OUTDIR/checks.tar.gz" logs results
stamp "done"

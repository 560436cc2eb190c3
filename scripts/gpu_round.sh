#!/usr/bin/env bash
# One device call on a CUDA machine: scripts/gpu_checks.sh, and meanwhile a training set generated there;
# then step 1's two detectors trained further from the shipped weights, side by side and alike (the ORCNN
# detector that A3D uses, and the `maskrcnn-amodal` baseline, so that the comparison stays fair). Step 1's
# limit is the detector's amodal boxes (README, "Step 1"), so the detectors get the device time. Their
# weights come back in half precision, as shipped (scripts/ship_weights.py), to be measured back on the
# CPU machine (benchmarks/diagnose_detector.py --split val, then the end-to-end benchmarks).
#
#   bash scripts/gpu_round.sh OUTDIR > OUTDIR/round.log 2>&1
#       -> OUTDIR/{detector,maskrcnn_amodal}.{safetensors,json}, OUTDIR/runs.tar (logs, configs),
#          OUTDIR/checks.tar.gz (logs, JSON)
#
# Give the device call a limit at least 60 s above BUDGET, and no pipeline (`| tee`): a call killed at its
# limit returns nothing at all (a first call this way, with steps whose own limits summed past the
# call's, came back empty and spent the session's device time).
#
# Environment: WORK (/tmp/w), DEVICE (cuda), LIMIT (100 test images for the checks), SEEDS ("0 6": generate
# --seed; 0 is the shipped detectors' training set, 6 draws 150 new training meshes per category),
# TRAIN_IMAGES (4000 per seed), ITERS (at most 2000 iterations x BATCH 16 images; fewer when less than
# ITERS / RATE seconds are left), RATE (3.0 iterations/s each, two side by side: below the 3.7 measured
# on one H200 in the second round of gpu_finetune.json), LR (1e-3), BUDGET (500: seconds from the start by
# which the trainings are stopped, finished or not), CHECKS (200: seconds for gpu_checks.sh).
set -u
OUTDIR=${1:?usage: gpu_round.sh OUTDIR}
WORK=${WORK:-/tmp/w}
DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-0 6}
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
python3 scripts/merge_datasets.py "$WORK/train" "${sources[@]}" --split train > "$WORK/logs/merge.log" 2>&1 \
    || { stamp "merge failed: $(tail -1 "$WORK/logs/merge.log")"; }
# a schedule that ends before the budget (the cosine schedule needs its length up front)
ITERS=$(python3 -c "import sys; print(max(10, min(int(sys.argv[1]), int((int(sys.argv[2]) - 60) * float(sys.argv[3])))))" \
    "${ITERS:-2000}" "$(( START + BUDGET - $(date +%s) ))" "${RATE:-3.0}")
stamp "training set: seeds $SEEDS, $(ls "$WORK/train/images/train" 2>/dev/null | wc -l) images; $ITERS iterations"

if (( START + BUDGET - $(date +%s) < 90 )); then stamp "no time left to train"; SKIP_TRAINING=1; fi
for run in orcnn:detector maskrcnn_amodal:maskrcnn_amodal; do
    [[ -n ${SKIP_TRAINING:-} ]] && break
    name=${run%%:*}
    timeout $(( START + BUDGET - $(date +%s) )) $A3D train detector --config "src/amodal3d/configs/${name}_cpu_small.yaml" \
        --init "src/amodal3d/weights/cpu-small/${run#*:}.safetensors" --data "$WORK/train" --device "$DEVICE" \
        --epochs 100 --max-iters "$ITERS" --batch-size "${BATCH:-16}" --lr "${LR:-0.001}" --warmup-iters 50 \
        --workers 6 --threads 1 --quiet --out "$WORK/runs/$name" > "$WORK/logs/train_$name.log" 2>&1 &
done
wait
for run in "$WORK"/runs/*; do
    stamp "$(basename "$run"): $(tail -1 "$run/log.jsonl" 2>/dev/null)"
done
if [[ -f $WORK/runs/orcnn/model.safetensors && -f $WORK/runs/maskrcnn_amodal/model.safetensors ]]; then
    python3 scripts/ship_weights.py --detector "$WORK/runs/orcnn" --maskrcnn-amodal "$WORK/runs/maskrcnn_amodal" \
        > "$WORK/logs/ship.log" 2>&1 && cp src/amodal3d/weights/cpu-small/{detector,maskrcnn_amodal}.{safetensors,json} "$OUTDIR/"
fi
(cd "$WORK/runs" && tar -cf "$OUTDIR/runs.tar" ./*/log.jsonl ./*/config.yaml 2>/dev/null)
tar -C "$WORK" -czf "$OUTDIR/checks.tar.gz" logs results
stamp "done"

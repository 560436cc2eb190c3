#!/usr/bin/env bash
# Continue training the shipped step-1 models on one CUDA GPU, side by side and within a wall-clock
# budget: the ORCNN detector (A3D's step 1 and the `orcnn` baseline), the `maskrcnn-amodal` baseline
# (the same extra training, so that the comparison stays fair) and the crop head (step 1b). Before
# that, on a small generated set: the CUDA test, A3D inference speed on the GPU, and a few bf16
# iterations of the paper's r50-fpn detector. Then the new weights are written into the package
# folder in half precision (scripts/ship_weights.py).
#
#   bash scripts/gpu_finetune.sh WORK [BUDGET_S] [CROP_HEAD_INIT]
#
# WORK: scratch folder (data, runs, logs: WORK/logs); BUDGET_S: seconds from the start of this script
# by which the three trainings must end (default 480). Each run's iteration count is set from a
# 60-iteration probe of all three running together, so the schedules (cosine, warm-up 100) finish
# (--epochs 100 only lifts the configs' epoch cap: --max-iters sets the length).
# Environment (for a dry run on CPU): DEVICE (cuda), TRAIN_IMAGES (8000), PROBE_ITERS (60),
# DET_BATCH (16), CROP_BATCH (64), BENCH_LIMIT (100), R50_ITERS (60).
set -u
WORK=${1:?usage: gpu_finetune.sh WORK [BUDGET_S] [CROP_HEAD_INIT]}
BUDGET=${2:-480}
SHIPPED=src/amodal3d/weights/cpu-small
CROP_INIT=${3:-$SHIPPED/crop_head.safetensors}
DEVICE=${DEVICE:-cuda}
TRAIN_IMAGES=${TRAIN_IMAGES:-8000}
PROBE_ITERS=${PROBE_ITERS:-60}
START=$(date +%s)
A3D="python -m amodal3d"
mkdir -p "$WORK/logs"
LOGS=$WORK/logs
stamp() { echo "[$(( $(date +%s) - START )) s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOGS/gpu.txt"
python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.cuda.is_available())" | tee -a "$LOGS/gpu.txt"

stamp "small set for the checks"
$A3D generate --out "$WORK/small" --split train=64,test=100 --size 256 --workers 14 --seed 0 \
    > "$LOGS/generate_small.log" 2>&1
stamp "training set ($TRAIN_IMAGES images) in the background"
$A3D generate --out "$WORK/synth" --split train=$TRAIN_IMAGES --size 256 --workers 12 --seed 0 \
    > "$LOGS/generate.log" 2>&1 &
GEN=$!

stamp "checks: CUDA test, inference speed, r50-fpn bf16"
timeout 120 python -m pytest -q -m gpu tests/test_render.py > "$LOGS/pytest_gpu.log" 2>&1
echo "pytest -m gpu: exit $?" >> "$LOGS/pytest_gpu.log"
timeout 150 python benchmarks/bench_speed.py --data "$WORK/small" --limit ${BENCH_LIMIT:-100} --device $DEVICE --threads 1 \
    --out speed_$DEVICE.json > "$LOGS/bench_speed_cuda.log" 2>&1
echo "bench_speed: exit $?" >> "$LOGS/bench_speed_cuda.log"
timeout 120 torchrun --standalone --nproc_per_node 1 -m amodal3d train detector \
    --config src/amodal3d/configs/detector_r50_fpn.yaml --data "$WORK/small" --out "$WORK/runs/r50" --device $DEVICE \
    --max-iters ${R50_ITERS:-60} --batch-size 8 --workers 3 --amp --quiet > "$LOGS/r50_fpn.log" 2>&1
echo "r50-fpn: exit $?" >> "$LOGS/r50_fpn.log"
wait $GEN || { stamp "generation failed"; exit 1; }
stamp "training set ready"

# the three trainings: name, command (without --out/--max-iters)
DET_FLAGS="--data $WORK/synth --device $DEVICE --epochs 100 --batch-size ${DET_BATCH:-16} --workers 5 --lr 0.001 --warmup-iters 100 --threads 1 --quiet"
declare -A CMD=(
    [orcnn]="$A3D train detector --config src/amodal3d/configs/orcnn_cpu_small.yaml --init $SHIPPED/detector.safetensors $DET_FLAGS"
    [maskrcnn_amodal]="$A3D train detector --config src/amodal3d/configs/maskrcnn_amodal_cpu_small.yaml --init $SHIPPED/maskrcnn_amodal.safetensors $DET_FLAGS"
    [crop_head]="$A3D train crop-head --config src/amodal3d/configs/crop_head_cpu.yaml --init $CROP_INIT --data $WORK/synth --device $DEVICE --epochs 100 --batch-size ${CROP_BATCH:-64} --workers 4 --warmup-iters 100 --threads 1 --quiet"
)
stamp "probe: $PROBE_ITERS iterations of each, together"
for name in "${!CMD[@]}"; do
    ${CMD[$name]} --out "$WORK/probe/$name" --max-iters $PROBE_ITERS > "$LOGS/probe_$name.log" 2>&1 &
done
wait
declare -A ITERS
for name in "${!CMD[@]}"; do
    ITERS[$name]=$(python - "$WORK/probe/$name/log.jsonl" "$(( START + BUDGET - $(date +%s) - 30 ))" <<'EOF'
import json, sys
try:
    records = [json.loads(line) for line in open(sys.argv[1]) if '"loss"' in line]
    first, last = records[0], records[-1]
    per_iter = (last["time"] - first["time"]) / (last["iteration"] - first["iteration"])
    print(max(100, int(float(sys.argv[2]) / per_iter)))
except Exception as error:  # no probe figures: a fixed length
    print(1000)
    print(f"probe {sys.argv[1]}: {error}", file=sys.stderr)
EOF
)
    stamp "$name: ${ITERS[$name]} iterations"
done

stamp "fine-tuning"
for name in "${!CMD[@]}"; do
    echo "${CMD[$name]} --out $WORK/runs/$name --max-iters ${ITERS[$name]}" > "$LOGS/command_$name.txt"
    ${CMD[$name]} --out "$WORK/runs/$name" --max-iters "${ITERS[$name]}" > "$LOGS/train_$name.log" 2>&1 &
done
wait
stamp "trainings done"
python scripts/ship_weights.py --detector "$WORK/runs/orcnn" --maskrcnn-amodal "$WORK/runs/maskrcnn_amodal" \
    --crop-head "$WORK/runs/crop_head" > "$LOGS/ship.log" 2>&1
stamp "shipped into $SHIPPED (exit $?)"
python benchmarks/summarize_gpu_finetune.py "$WORK" > "$LOGS/summary.log" 2>&1

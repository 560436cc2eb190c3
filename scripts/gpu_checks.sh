#!/usr/bin/env bash
# What a CUDA machine can check that the CPU machine cannot, in one short run (at most 4 minutes):
#   - the CUDA tests (pytest -m gpu: the renderer, the shipped pipeline on CUDA against CPU);
#   - DDP under torchrun with the NCCL backend (one process: a machine with one GPU), a few iterations of
#     the shipped detector; the first record of its log.jsonl names the backend;
#   - the shipped pipeline evaluated on the GPU on the first LIMIT test images (end to end: A3D and
#     Mask R-CNN amodal; given visible: A3D), to set beside benchmarks/results/a3d.json (same images);
#   - A3D's speed on the GPU (benchmarks/bench_speed.py --device cuda).
#
#   bash scripts/gpu_checks.sh WORK [LIMIT]      -> WORK/logs/*, WORK/results/*.json
#
# Environment: DEVICE (cuda; cpu for a dry run), GEN_WORKERS (8), SPEED_LIMIT (50 images), DEADLINE (epoch
# seconds by which every step has ended, finished or stopped; default 240 s from now). A device call is
# killed whole at its limit and then returns nothing, so every step runs under what is left of DEADLINE.
set -u
WORK=${1:?usage: gpu_checks.sh WORK [LIMIT]}
LIMIT=${2:-100}
DEVICE=${DEVICE:-cuda}
A3D="python3 -m amodal3d"
LOGS=$WORK/logs
RESULTS=$WORK/results
mkdir -p "$LOGS" "$RESULTS"
START=$(date +%s)
DEADLINE=${DEADLINE:-$(( START + 240 ))}
stamp() { echo "[checks $(( $(date +%s) - START )) s] $*"; }
left() {  # seconds this step may take: at most $1, and no later than DEADLINE
    local t=$(( DEADLINE - $(date +%s) ))
    (( t > $1 )) && t=$1
    (( t < 1 )) && t=1
    echo "$t"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.cuda.is_available())"; } > "$LOGS/gpu.txt" 2>&1
stamp "$(tail -1 "$LOGS/gpu.txt")"

timeout "$(left 60)" $A3D generate --out "$WORK/small" --split train=64,test=$LIMIT --size 256 --workers "${GEN_WORKERS:-8}" --seed 0 \
    > "$LOGS/generate_small.log" 2>&1 || { stamp "generation failed"; exit 1; }
stamp "small set: 64 training and $LIMIT test images (seed 0: the test images of the CPU benchmarks)"

timeout "$(left 90)" python3 -m pytest -q -m gpu tests > "$LOGS/pytest_gpu.log" 2>&1
stamp "pytest -m gpu: exit $? ($(tail -1 "$LOGS/pytest_gpu.log"))"

timeout "$(left 90)" python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m amodal3d train detector --config src/amodal3d/configs/orcnn_cpu_small.yaml \
    --init src/amodal3d/weights/cpu-small/detector.safetensors --data "$WORK/small" --out "$WORK/runs/ddp" \
    --device "$DEVICE" --epochs 100 --max-iters 40 --batch-size 8 --workers 2 --threads 2 --quiet \
    > "$LOGS/ddp.log" 2>&1
stamp "torchrun, one process: exit $?; $(head -1 "$WORK/runs/ddp/log.jsonl" 2>/dev/null)"
cp "$WORK/runs/ddp/log.jsonl" "$RESULTS/ddp_log.jsonl" 2>/dev/null

for spec in a3d:end-to-end maskrcnn-amodal:end-to-end a3d:given-visible; do
    method=${spec%%:*} protocol=${spec#*:}
    OMP_NUM_THREADS=2 timeout "$(left 120)" $A3D evaluate --method "$method" --protocol "$protocol" --data "$WORK/small" \
        --limit "$LIMIT" --device "$DEVICE" --quiet --json "$RESULTS/eval_${DEVICE}_${method}_$protocol.json" \
        > "$LOGS/eval_${method}_$protocol.log" 2>&1 &
done
wait
for json in "$RESULTS"/eval_*.json; do
    [[ -f $json ]] || { stamp "no evaluation finished"; break; }
    stamp "$(python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[1].rsplit('/', 1)[1], \
'mIoU %.4f occluded %.4f amodal AP %.4f, %.2f images/s' % (r['miou'], r['occluded_miou'], r['amodal_ap']['AP'], \
r['images_per_s']))" "$json")"
done

timeout "$(left 60)" python3 benchmarks/bench_speed.py --data "$WORK/small" --limit "${SPEED_LIMIT:-50}" --device "$DEVICE" --threads 1 \
    --out "speed_$DEVICE.json" > "$LOGS/bench_speed.log" 2>&1
stamp "bench_speed: exit $?"
cp "benchmarks/results/speed_$DEVICE.json" "$RESULTS/" 2>/dev/null

stamp "done"

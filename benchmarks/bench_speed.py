"""A3D end-to-end speed as a user runs it: the shipped pipeline at its default score threshold
(``DEFAULT_SCORE_THRESHOLD``, objects kept by score), one image at a time, per-stage milliseconds; side
by side in the same run: the evaluation's rule (every object whose objectness reaches 0.05, more
objects, each costing steps 2-5), the previous default (objectness >= 0.3), the priors as predicted
without the render-and-compare fit of their camera and shape code that the shipped refinement was
trained with (``--fit-steps 0``; the default fits, 10 steps) and, for their cost, the pipeline without
step 1's detections of the mirror image, and without the crop head of step 1b (both are part of the
``detector`` stage's time).

    python benchmarks/bench_speed.py --data DATA [--limit 200] [--threads 2,1]
    -> benchmarks/results/speed.json
    python benchmarks/bench_speed.py --data DATA --device cuda --threads 1 --out speed_cuda.json
    python benchmarks/bench_speed.py --data DATA --other-weights previous=FOLDER --out speed_vs_previous.json

``--other-weights LABEL=FOLDER`` (repeatable) also times other weights folders (e.g. the previous
release's) at ``predict``'s default, in the same run, right after the shipped weights at each thread count.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from amodal3d.data.dataset import load_annotation_file, read_image, resolve_image_path, split_paths
from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD
from amodal3d.io import atomic_write_json
from amodal3d.models.detector_predict import MIRRORED_DETECTIONS
from amodal3d.pipeline import DEFAULT_SCORE_THRESHOLD, AmodalSegmenter

RESULTS = Path(__file__).resolve().parent / "results"
STEPS_2_5 = ("rois", "shape", "fit", "refine", "paste")


def measure(images: list, threshold: float, fit_steps: int | None = None, crop_head: bool = True,
            mirrored: bool = MIRRORED_DETECTIONS, keep_by: str = "score", warmup: int = 5,
            device: str = "cpu", weights: str = "cpu-small") -> dict:
    segmenter = AmodalSegmenter.from_pretrained(weights, score_threshold=threshold, fit_steps=fit_steps,
                                                crop_head=crop_head, device=device, mirrored_detections=mirrored,
                                                keep_by=keep_by)
    for image in images[:warmup]:
        segmenter.predict(image)
    segmenter.timings.clear()
    detections = 0
    start = time.perf_counter()
    for image in images:
        detections += len(segmenter.predict(image).labels)
    seconds = time.perf_counter() - start
    stage_ms = segmenter.stage_ms()
    total = sum(stage_ms.values())
    return {"weights": weights, "score_threshold": threshold, "kept_by": keep_by, "fit_steps": segmenter.fit_steps,
            "crop_head": crop_head,
            "mirrored_detections": segmenter.detector.mirrored_detections,
            "images": len(images),
            "images_per_s": round(len(images) / seconds, 2),
            "detections_per_image": round(detections / len(images), 2), "stage_ms": stage_ms,
            "steps_2_5_share": round(sum(stage_ms.get(k, 0.0) for k in STEPS_2_5) / max(total, 1e-9), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--threads", default="2,1", help="torch CPU threads to run with, one run each")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="speed.json", help="file name under benchmarks/results/")
    parser.add_argument("--other-weights", action="append", default=[], metavar="LABEL=FOLDER",
                        help="also time these weights at predict's default, side by side (repeatable)")
    parser.add_argument("--settings", choices=("all", "default"), default="all",
                        help="default: only predict's default setting (with --other-weights: a quick comparison)")
    args = parser.parse_args()
    annotation_file, image_dir = split_paths(args.data, args.split)
    infos = load_annotation_file(annotation_file)["images"][: args.limit]
    images = [read_image(resolve_image_path(image_dir, info["file_name"], annotation_file)) for info in infos]
    runs = []
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        default = DEFAULT_SCORE_THRESHOLD
        settings = ((default, None, True), (default, None, True, False), (default, None, False),
                    (default, 0, True), (0.3, None, True, True, "objectness"),
                    (EVAL_SCORE_THRESHOLD, None, True, True, "objectness"))
        if args.settings == "default":
            settings = settings[:1]
        runs += [{"threads": threads, "device": args.device, **measure(images, *setting, device=args.device)}
                 for setting in settings]
        for item in args.other_weights:
            label, _, folder = item.partition("=")
            runs.append({"threads": threads, "device": args.device, "label": label,
                         **measure(images, default, device=args.device, weights=folder)})
    for run in runs:
        print(f"{run.get('label', 'shipped')}: {run['threads']} thread(s), "
              f"{run['kept_by']} >= {run['score_threshold']}, "
              f"fit steps {run['fit_steps']}, crop head {run['crop_head']}, "
              f"mirrored detections {run['mirrored_detections']}: "
              f"{run['images_per_s']} img/s, "
              f"{run['detections_per_image']} "
              f"detections/img, steps 2-5 {100 * run['steps_2_5_share']:.0f} %, {run['stage_ms']}")
    options = [f" --{key} {getattr(args, key)}" for key in ("device", "threads", "limit", "settings", "out")
               if getattr(args, key) != parser.get_default(key)]
    command = ("python benchmarks/bench_speed.py --data D" + "".join(options)
               + "".join(f" --other-weights {item}" for item in args.other_weights))
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    atomic_write_json(RESULTS / args.out, {
        "benchmark": "a3d end-to-end speed", "command": command,
        "arguments": vars(args), "runs": runs,
        "machine": machine_description(gpu=gpu, loadavg=os.getloadavg())},
        indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Step 1's fast path against its reference, side by side in one run, on the same images: time and
agreement of what each returns.

- fast (shipped, ``DetectorPredictor.predict``): the detector runs its box branch only; the mask heads
  read the objects that step 1b keeps (the visible one not at all: the crop head gives the visible
  masks); the crop head reads its crops in channels-last layout.
- reference (as step 1 ran before): every detection's visible and amodal masks
  (``models.detector_predict.detect``), crops read in the default (contiguous) layout, then the same grouping,
  readings, scores and threshold.

Each image is run by both paths in turn (alternating which goes first), so both see the same machine
load. Agreement: same objects, labels and order; score and mask-probability differences; mask pixels
(probability > 0.5) that differ.

    python benchmarks/bench_step1.py --data D [--limit 200] [--threads 2]
    -> benchmarks/results/step1_fast_path.json
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from amodal3d.data.dataset import load_annotation_file, read_image, resolve_image_path, split_paths
from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD
from amodal3d.io import atomic_write_json
from amodal3d.models.crop_head import crop_inputs, group_detections, mask_quality
from amodal3d.models.detector_predict import DetectorPredictor, detect
from amodal3d.pipeline import DEFAULT_SCORE_THRESHOLD, AmodalSegmenter
from amodal3d.roi import paste

RESULTS = Path(__file__).resolve().parent / "results"


def reference_read(head, image: torch.Tensor, boxes: torch.Tensor, enlarge: float | None):
    """One mirrored reading of each box's crop in the contiguous layout: (N, C) probabilities,
    (N, H, W) visible-mask probabilities."""
    config = head.config if enlarge is None else replace(head.config, enlarge=enlarge)
    x, rois = crop_inputs(image[None], boxes, torch.zeros(len(boxes), dtype=torch.long), config)
    n = len(x)
    out, _ = head({"x": torch.cat([x, x.flip(-1)])})
    probs = (out.class_logits[:n].softmax(1) + out.class_logits[n:].softmax(1)) / 2
    logits = (out.mask_logits[:n] + out.mask_logits[n:].flip(-1)) / 2
    return probs, paste(torch.sigmoid(logits), rois, *image.shape[-2:])


@torch.no_grad()
def reference_step1(step1: DetectorPredictor, image) -> dict:
    """Step 1 with a crop head as it ran before the fast path (every mask of every detection)."""
    head, threshold = step1.crop_head, step1.score_threshold
    tensor = step1._image_tensor(image)
    out = detect(step1.model, tensor, step1.mirrored_detections)
    leaders, objectness = group_detections(out.boxes[0], out.scores[0], head.config.group_iou)
    keep = objectness >= threshold
    leaders, objectness = leaders[keep], objectness[keep]
    if len(leaders) == 0:
        return {"labels": [], "scores": torch.zeros(0), "visible": torch.zeros(0, *image.shape[:2]),
                "amodal": torch.zeros(0, *image.shape[:2])}
    readings = [reference_read(head, tensor, out.boxes[0][leaders], enlarge)
                for enlarge in (None, *step1.crop_head_enlargements)]
    probs = sum(r[0] for r in readings) / len(readings)
    visible = sum(r[1] for r in readings) / len(readings)
    best, index = probs.max(1)
    scores = objectness * best * mask_quality(visible, objectness * best)
    kept = torch.where((scores if step1.keep_by == "score" else objectness) >= threshold)[0]
    kept = kept[torch.argsort(scores[kept], descending=True, stable=True)]
    return {"labels": (index[kept] + 1).tolist(), "scores": scores[kept], "visible": visible[kept],
            "amodal": out.amodal_masks[0][leaders[kept]]}


def compare(images: list, threshold: float, keep_by: str) -> dict:
    step1 = AmodalSegmenter.from_pretrained("cpu-small", score_threshold=threshold, keep_by=keep_by).detector
    assert step1.crop_head is not None and step1.crop_head_flip
    for image in images[:3]:  # warm-up
        step1.predict(image), reference_step1(step1, image)
    seconds = {"fast": 0.0, "reference": 0.0}
    agree = {"objects": 0, "images_with_other_objects": 0, "max_score_difference": 0.0,
             "max_amodal_probability_difference": 0.0, "visible_pixels": 0, "visible_pixels_differing": 0,
             "amodal_pixels": 0, "amodal_pixels_differing": 0}
    for k, image in enumerate(images):
        runs = {}
        for path in (("fast", "reference") if k % 2 == 0 else ("reference", "fast")):
            start = time.perf_counter()
            runs[path] = step1.predict(image) if path == "fast" else reference_step1(step1, image)
            seconds[path] += time.perf_counter() - start
        fast, ref = runs["fast"], runs["reference"]
        if fast.labels.tolist() != ref["labels"]:
            agree["images_with_other_objects"] += 1
            continue
        agree["objects"] += len(fast.labels)
        if not len(fast.labels):
            continue
        amodal_probs = torch.from_numpy(fast.extras["amodal_probs"]).float()
        agree["max_score_difference"] = max(agree["max_score_difference"],
                                            float((torch.from_numpy(fast.scores) - ref["scores"]).abs().max()))
        agree["max_amodal_probability_difference"] = max(
            agree["max_amodal_probability_difference"],  # fp16 as the predictor hands them over
            float((amodal_probs - ref["amodal"].half().float()).abs().max()))
        for kind, mine, theirs in (("visible", fast.visible_masks, ref["visible"]),
                                   ("amodal", fast.amodal_masks, ref["amodal"])):
            theirs = (theirs > step1.mask_threshold).numpy()
            agree[f"{kind}_pixels"] += int(theirs.sum())
            agree[f"{kind}_pixels_differing"] += int((mine != theirs).sum())
    ms = {path: round(1000 * s / len(images), 1) for path, s in seconds.items()}
    return {"score_threshold": threshold, "kept_by": keep_by, "images": len(images), "step1_ms": ms,
            "speedup": round(ms["reference"] / ms["fast"], 2), "agreement": agree}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="step1_fast_path.json", help="file name under benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    annotation_file, image_dir = split_paths(args.data, args.split)
    infos = load_annotation_file(annotation_file)["images"][: args.limit]
    images = [read_image(resolve_image_path(image_dir, info["file_name"], annotation_file)) for info in infos]
    runs = [compare(images, DEFAULT_SCORE_THRESHOLD, "score"),  # amodal3d predict
            compare(images, EVAL_SCORE_THRESHOLD, "objectness")]  # the evaluation's rule
    for run in runs:
        print(f"{run['kept_by']} >= {run['score_threshold']}: step 1 {run['step1_ms']['fast']} ms (fast) vs "
              f"{run['step1_ms']['reference']} ms (reference), x{run['speedup']}; {run['agreement']}")
    options = [f" --{key} {getattr(args, key)}" for key in ("split", "limit", "threads", "out")
               if getattr(args, key) != parser.get_default(key)]
    atomic_write_json(RESULTS / args.out, {
        "benchmark": "step 1 fast path vs reference", "command": "python benchmarks/bench_step1.py --data D"
        + "".join(options), "arguments": vars(args), "runs": runs,
        "machine": machine_description(loadavg=os.getloadavg())}, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

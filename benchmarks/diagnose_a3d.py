"""Where A3D's end-to-end occluded mIoU goes: the objects step 1 misses, its rough visible masks, its
categories, or its extra detections? Steps 2-5 run again on step 1's own detections with one thing
at a time taken from the ground truth, every row scored on the same matching.

    python benchmarks/diagnose_a3d.py --data DATA [--split test] [--limit 300] [--weights cpu-small]
        [--out JSON]
    -> benchmarks/results/a3d_diagnosis.json

End to end, the harness matches each ground-truth object to a step-1 prediction by visible-mask IoU
>= 0.5 (docs/metrics.md); an unmatched object scores 0. The rows, cumulative, all on that matching:

1. ``end to end``: the shipped pipeline as ``amodal3d evaluate --method a3d`` runs it.
2. ``exact visible masks``: each matched prediction's visible mask replaced by its object's true
   one (as its own input and as an occluder of the others).
3. ``+ missed objects as occluders``: the true visible masks of the unmatched objects added as
   instances (their outputs are not scored): what a missed occluder costs the others.
4. ``+ exact categories``: each matched prediction gets its object's category.
5. ``+ no unmatched detections``: the predictions that match no object are left out.
6. ``... without step 1's amodal head``: row 5 with hidden parts from steps 2-5 alone.

``given visible`` is the given-visible protocol (every true visible mask, nothing else), scored on
the same objects. ``matched_occluded_miou`` (docs/metrics.md) is the figure to read: the occluded
mIoU over the occluded objects step 1 found; the set is the same in every row.

The second table sorts the occluded objects step 1 misses by the first reason that applies: no
detection box within IoU 0.5 of the object's box (of the kind the detector was trained on), the box
found but merged into another object by the grouping of step 1b, the object kept below the
evaluation score threshold, or its visible mask short of IoU 0.5.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm

from amodal3d.data.dataset import load_annotation_file, read_image, resolve_image_path, split_paths
from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation import metrics
from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD
from amodal3d.io import atomic_write_json
from amodal3d.masks import decode_rle, masks_to_boxes
from amodal3d.methods import build_predictor
from amodal3d.models.crop_head import group_detections
from amodal3d.models.detector_predict import detect
from amodal3d.structures import Instances

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = ("end to end", "exact visible masks", "+ missed objects as occluders", "+ exact categories",
        "+ no unmatched detections", "... without step 1's amodal head", "given visible")
MISSES = ("no detection box", "merged into another object", "below the score threshold",
          "visible mask IoU < 0.5")


class _Fixed:
    """A step 1 that returns the instances it is given (what ``complete`` runs steps 2-5 on)."""

    def __init__(self, instances: Instances):
        self.instances = instances

    def predict(self, image: np.ndarray) -> Instances:
        return self.instances


def complete(segmenter, image: np.ndarray, visible: np.ndarray, labels: np.ndarray,
             step1_probs: np.ndarray | None, scored: int) -> np.ndarray:
    """Steps 2-5 end to end on given visible masks (N, H, W) bool and categories (N,); the first
    ``scored`` are the predictions, the rest only occlude them. With ``step1_probs`` (scored, H, W),
    step 1's amodal probabilities are weighed in as the pipeline does end to end; without, hidden
    parts come from steps 2-5 alone. Returns (scored, H, W) bool."""
    n = len(labels)
    if n == 0:
        return np.zeros((0, *image.shape[:2]), bool)
    extras = {}
    if step1_probs is not None:
        extras["amodal_probs"] = np.concatenate([step1_probs, np.zeros_like(visible[scored:], np.float16)])
    segmenter.detector = _Fixed(Instances(np.asarray(masks_to_boxes(visible), np.float32), labels,
                                          np.ones(n, np.float32), visible, visible, extras=extras))
    return segmenter.predict(image).amodal_masks[:scored]


def miss_reason(g: int, gt_boxes: torch.Tensor, raw_boxes: torch.Tensor, leader_boxes: torch.Tensor,
                objectness: torch.Tensor) -> str:
    """The first of :data:`MISSES` that applies to unmatched ground truth ``g``."""
    def best(boxes: torch.Tensor) -> tuple[float, int]:
        if len(boxes) == 0:
            return 0.0, -1
        iou = box_iou(gt_boxes[g:g + 1], boxes)[0]
        return float(iou.max()), int(iou.argmax())

    if best(raw_boxes)[0] < 0.5:
        return MISSES[0]
    overlap, leader = best(leader_boxes)
    if overlap < 0.5:
        return MISSES[1]
    return MISSES[2] if objectness[leader] < EVAL_SCORE_THRESHOLD else MISSES[3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--weights", default="cpu-small", help="pipeline folder or built-in name")
    parser.add_argument("--out", default=str(RESULTS / "a3d_diagnosis.json"))
    args = parser.parse_args()
    segmenter = build_predictor("a3d", weights=args.weights)
    step1 = segmenter.detector
    box_key = f"{step1.model.config.box_targets}_segm"
    ann_file, image_dir = split_paths(args.data, args.split)
    data = load_annotation_file(ann_file)
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    scores = {row: ([], [], [], [], []) for row in ROWS}  # labels, rates, amodal IoU, occluded IoU, matched
    misses: Counter = Counter()
    images = data["images"][:args.limit]
    for info in tqdm(images, desc="diagnose a3d", unit="img"):
        anns = by_image.get(info["id"], [])
        if not anns:
            continue
        image = read_image(resolve_image_path(image_dir, info["file_name"], ann_file))
        gt = {key: np.stack([decode_rle(a[key]) for a in anns]).astype(bool)
              for key in ("visible_segm", "amodal_segm", box_key)}
        gt_visible, gt_amodal = gt["visible_segm"], gt["amodal_segm"]
        gt_labels = np.array([a["category_id"] for a in anns], np.int64)
        rates = np.array([a["occlude_rate"] for a in anns], np.float64)
        det = step1.predict(image)
        match = metrics.match_greedy(metrics.mask_iou_matrix(gt_visible, det.visible_masks))
        found = match >= 0
        missed = np.flatnonzero(~found)
        visible, labels = det.visible_masks.copy(), det.labels.copy()
        visible[match[found]] = gt_visible[found]
        with_missed = np.concatenate([visible, gt_visible[missed]])
        exact_labels = labels.copy()
        exact_labels[match[found]] = gt_labels[found]
        probs = det.extras["amodal_probs"]  # step 1's amodal head
        only = match[found]  # the predictions that match an object, in ground-truth order
        rows = {  # steps 2-5 on step 1's own detections are the pipeline end to end (one detector pass)
            "end to end": complete(segmenter, image, det.visible_masks, det.labels, probs, len(labels)),
            "exact visible masks": complete(segmenter, image, visible, labels, probs, len(labels)),
            "+ missed objects as occluders": complete(segmenter, image, with_missed,
                                                      np.concatenate([labels, gt_labels[missed]]),
                                                      probs, len(labels)),
        }
        rows["+ exact categories"] = complete(segmenter, image, with_missed,
                                              np.concatenate([exact_labels, gt_labels[missed]]),
                                              probs, len(labels))
        kept = np.concatenate([visible[only], gt_visible[missed]])
        kept_labels = np.concatenate([exact_labels[only], gt_labels[missed]])
        for row, step1_probs in (("+ no unmatched detections", probs[only]),
                                  ("... without step 1's amodal head", None)):
            amodal = np.zeros_like(det.visible_masks)
            amodal[only] = complete(segmenter, image, kept, kept_labels, step1_probs, len(only))
            rows[row] = amodal
        given = complete(segmenter, image, gt_visible, gt_labels, None, len(gt_labels))
        for row, amodal in rows.items():
            iou, occluded = metrics.instance_scores(match, gt_amodal, gt_visible, amodal)
            for part, value in zip(scores[row], (gt_labels, rates, iou, occluded, found)):
                part.append(value)
        iou, occluded = metrics.instance_scores(np.arange(len(anns)), gt_amodal, gt_visible, given)
        for part, value in zip(scores["given visible"], (gt_labels, rates, iou, occluded, found)):
            part.append(value)

        out = detect(step1.model, step1._image_tensor(image), step1.mirrored_detections)
        raw_boxes, raw_scores = out.boxes[0], out.scores[0]
        leaders, objectness = group_detections(raw_boxes, raw_scores, step1.crop_head.config.group_iou)
        gt_boxes = torch.from_numpy(masks_to_boxes(gt[box_key]))
        for g in missed:
            if rates[g] >= metrics.OCCLUDED_MIN_RATE:
                misses[miss_reason(g, gt_boxes, raw_boxes, raw_boxes[leaders], objectness)] += 1

    results = {}
    for row, parts in scores.items():
        labels, rates, iou, occluded, found = (np.concatenate(p) for p in parts)
        s = metrics.summarize(labels, rates, iou, occluded, matched=found)
        results[row] = {key: s[key] for key in ("miou", "occluded_miou", "matched_occluded_miou",
                                                "matched_occluded_count")}
    occluded_total = int((np.concatenate(scores["end to end"][1]) >= metrics.OCCLUDED_MIN_RATE).sum())
    report = {
        "benchmark": "A3D end to end: where the occluded mIoU goes",
        "command": f"python benchmarks/diagnose_a3d.py --data D --split {args.split} --limit {args.limit}",
        "arguments": vars(args), "images": len(images), "score_threshold": EVAL_SCORE_THRESHOLD,
        "occluded_objects": occluded_total, "results": results,
        "occluded_objects_missed_by_step_1": {reason: misses[reason] for reason in MISSES},
        "machine": machine_description(),
    }
    atomic_write_json(args.out, report, indent=2)
    print(f"{len(images)} images, {occluded_total} occluded objects, score threshold {EVAL_SCORE_THRESHOLD}")
    for row, r in results.items():
        print(f"{row:34s} mIoU {100 * r['miou']:.1f}  occluded {100 * r['occluded_miou']:.1f}  matched "
              f"occluded {100 * r['matched_occluded_miou']:.1f} ({r['matched_occluded_count']})")
    print("occluded objects step 1 misses: " + ", ".join(f"{reason} {misses[reason]}" for reason in MISSES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A box-regressing crop head against the shipped one: are its moved boxes closer to the true amodal
boxes, and does step 1 read better masks and categories from them? (Tried, not adopted.)

    python benchmarks/box_regression.py --head HEAD.safetensors --data DATA [--split val] [--limit 300]
        [--out JSON]

Box IoU: for each true object, the pipeline's detection (image and mirror image, grouped, objectness >=
0.05) whose box overlaps it most, moved 0-3 times (``crop_head.regress_boxes``, flipped reading
averaged), against the object's true amodal box. Rows: ``diagnose_detector``'s, same detections, for
the shipped head, the candidate without moving its boxes, moved once, and moved once with the readings
averaged with those of the detected box.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from amodal3d.data.dataset import AmodalDataset
from amodal3d.io import atomic_write_json
from amodal3d.models.crop_head import group_detections, load_crop_head, regress_boxes
from amodal3d.models.detector import CROP_HEAD_ENLARGEMENTS, detect, load_detector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diagnose_detector import diagnose, print_rows  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "amodal3d" / "weights" / "cpu-small"


def box_ious(detector, head, dataset, n: int, steps=(0, 1, 2, 3)) -> dict:
    ious = {k: [] for k in steps}
    for index in range(n):
        image, target = dataset[index]
        out = detect(detector, image, mirrored=True)
        leaders, objectness = group_detections(out.boxes[0], out.scores[0], head.config.group_iou)
        boxes = out.boxes[0][leaders[objectness >= 0.05]]
        if len(boxes) == 0:
            continue
        truth = target["amodal_boxes"].float()
        nearest = box_iou(truth, boxes).argmax(1)
        for k in steps:
            moved = regress_boxes(head, image, boxes, flip=True, steps=k)
            ious[k] += box_iou(truth, moved)[torch.arange(len(truth)), nearest].tolist()
    return {f"{k} box steps": {"mean_box_iou": round(float(np.mean(v)), 4),
                               **{f"iou_at_least_{t}": round(float(np.mean(np.array(v) >= t)), 4)
                                  for t in (0.5, 0.7, 0.85)}} for k, v in ious.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--out", default="box_regression.json")
    args = parser.parse_args()
    detector = load_detector(SHIPPED / "detector.safetensors")
    shipped, head = load_crop_head(SHIPPED / "crop_head.safetensors"), load_crop_head(args.head)
    dataset = AmodalDataset(args.data, args.split)
    n = min(args.limit, len(dataset))
    pipeline = {"flip": True, "enlargements": CROP_HEAD_ENLARGEMENTS, "mirrored": True}
    heads = {"shipped": (shipped, pipeline), "candidate, 0 box steps": (head, {**pipeline, "box_steps": 0}),
             "candidate, 1 box step": (head, {**pipeline, "box_steps": 1}),
             "candidate, 1 box step, averaged with the detected box": (head, {**pipeline, "box_steps": 1,
                                                                               "box_average": True})}
    rows = diagnose(detector, heads, dataset, n)
    print_rows(rows["results"])
    ious = box_ious(detector, head, dataset, n)
    print(ious)
    atomic_write_json(args.out, {"arguments": vars(args), "box_iou": ious, "rows": rows["results"]}, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A crop head told what the other objects claim (the ``others_channel``), against the shipped head and
a control fine-tuned the same way without that channel, on the same detections. (Tried, not adopted.)

    python benchmarks/others_channel.py --head HEAD.safetensors --control CONTROL.safetensors --data DATA
        [--split val] [--limit 300] [--rule DUP_IOU:MAX_INSIDE[:MIN_SCORE] ...] [--no-shipped] [--out JSON]

Rows are ``diagnose_detector``'s (objects found, categories, visible-mask IoU of the found objects,
visible AP50), every head reading as the pipeline's step 1 does (flip, enlargements, the mirror image's
detections). ``--rule``: the candidate again with other values of ``others_dup_iou``,
``others_max_inside`` and ``others_min_score`` (which of the objects scored above an object are left out
of its channel).
``bound``: the found objects' masks read once from their detected boxes with the channel given the true
visible masks of the other objects, against the same head with an empty channel and the control.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from torchvision.ops import box_iou
from tqdm import tqdm

from amodal3d.data.dataset import AmodalDataset
from amodal3d.engine.distributed import machine_description
from amodal3d.io import atomic_write_json
from amodal3d.masks import mask_iou
from amodal3d.models.crop_head import group_detections, load_crop_head, read_crops
from amodal3d.models.detector import CROP_HEAD_ENLARGEMENTS, detect, load_detector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diagnose_detector import diagnose, print_rows  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "amodal3d" / "weights" / "cpu-small"


def bound(detector, head, control, dataset, n: int) -> dict:
    """Mask IoU of each found object (the grouped detection whose box overlaps its amodal box most, IoU
    >= 0.5), read once: the control, the candidate with an empty channel, and with the true others."""
    readings = {"control": [], "channel empty": [], "channel = the true other objects": []}
    occluded = []
    for index in tqdm(range(n), desc="bound", unit="img"):
        image, target = dataset[index]
        out = detect(detector, image, mirrored=True)
        leaders, objectness = group_detections(out.boxes[0], out.scores[0], head.config.group_iou)
        boxes = out.boxes[0][leaders[objectness >= 0.05]]
        if len(boxes) == 0:
            continue
        truth = target["visible_masks"].bool()
        overlap = box_iou(target["amodal_boxes"].float(), boxes)
        for g in range(len(truth)):
            if overlap[g].max() < 0.5:
                continue
            box = boxes[overlap[g].argmax()][None]
            others = (truth.sum(0) - truth[g].int()).clamp(max=1).float()[None]
            for name, h, o in (("control", control, None), ("channel empty", head, None),
                               ("channel = the true other objects", head, others)):
                mask = read_crops(h, image, box, others=o)[1][0] > 0.5
                readings[name].append(mask_iou(mask.numpy(), truth[g].numpy()))
            occluded.append(1 - truth[g].sum().item() / max(target["amodal_masks"][g].sum().item(), 1))
    occluded = np.array(occluded)
    result = {}
    for name, values in readings.items():
        values = np.array(values)
        result[name] = {"objects": len(values), "mean_mask_iou": round(float(values.mean()), 4),
                        "mask_iou_at_least_0.5": round(float((values >= 0.5).mean()), 4),
                        "mean_mask_iou_occluded_25_percent_or_more": round(float(values[occluded >= 0.25].mean()), 4)}
        print(f"bound, {name:34s} {result[name]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--rule", action="append", default=[], metavar="DUP_IOU:MAX_INSIDE[:MIN_SCORE]")
    parser.add_argument("--no-shipped", action="store_true", help="leave out the shipped head's row")
    parser.add_argument("--out", default="others_channel.json")
    args = parser.parse_args()
    detector = load_detector(SHIPPED / "detector.safetensors")
    pipeline = {"flip": True, "enlargements": CROP_HEAD_ENLARGEMENTS, "mirrored": True}
    head, control = load_crop_head(args.head), load_crop_head(args.control)
    heads = {} if args.no_shipped else {"shipped": (load_crop_head(SHIPPED / "crop_head.safetensors"), pipeline)}
    heads["control (fine-tuned alike, no channel)"] = (control, pipeline)
    for rule in args.rule or [f"{head.config.others_dup_iou}:{head.config.others_max_inside}"]:
        dup_iou, max_inside, min_score = ([float(v) for v in rule.split(":")] + [0.0])[:3]
        variant = load_crop_head(args.head)
        variant.config = replace(variant.config, others_dup_iou=dup_iou, others_max_inside=max_inside,
                                 others_min_score=min_score)
        heads[f"others channel (dup IoU {dup_iou}, inside {max_inside}, min score {min_score})"] = (variant, pipeline)
    dataset = AmodalDataset(args.data, args.split)
    n = min(args.limit, len(dataset))
    rows = diagnose(detector, heads, dataset, n)
    print_rows(rows["results"])
    atomic_write_json(args.out, {"benchmark": "crop head with the others channel (step 1b)",
                                 "command": "python benchmarks/others_channel.py " + " ".join(sys.argv[1:]),
                                 "arguments": vars(args), "images": n, "objects": rows["objects"],
                                 "rows": rows["results"], "bound": bound(detector, head, control, dataset, n),
                                 "machine": machine_description()}, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

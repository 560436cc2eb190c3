"""Step 1's visible masks: what the wrong ones are, and two ways of reading or combining them that were
measured against the shipped pipeline (same detections, side by side).

    python benchmarks/step1_alternatives.py --data DATA [--split val] [--limit 300]
    -> benchmarks/results/step1_alternatives_<split>.json

For every image: the shipped detector's detections of the image and of its mirror image, grouped into
objects, and the shipped crop head reading each object's crop mirrored too and at two enlargements (as
the pipeline does). Then:

- **failures**: for each found object (a detected box within IoU 0.5 of its amodal box) whose visible
  mask has IoU < 0.5: its occlusion, IoU, the mask's precision and recall against the true visible mask,
  whether it is mostly another object's visible mask, and how well its detected box fits its true amodal
  box (against the other found objects);
- **enlargements**: the crop head's readings at several crop sizes (crop side / box side; the head was
  trained at 1.3), averaged: category accuracy, mask IoU and the share of IoU >= 0.5 on found objects,
  visible AP50 (scores as the pipeline's ``apply_crop_head``: objectness x p(label) x mask quality);
- **boxes**: the crop head (read as the pipeline does) on other boxes than each object's leading detection: the
  score-weighted mean box of its group (box voting), and, as a bound that needs the truth, the true
  amodal box of each found object: mask IoU and the share of IoU >= 0.5 on found objects;
- **disjoint**: the visible masks made disjoint per pixel (each pixel to the object with the highest
  probability), or only between masks that are not near-duplicates (overlap < 50 % of the smaller one):
  how many ground-truth objects a one-to-one matching at visible IoU >= 0.5 finds (the harness's
  matching; occluded: ``occlude_rate`` >= 0.05, as in the harness).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm

from amodal3d.data.dataset import AmodalDataset
from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.metrics import OCCLUDED_MIN_RATE, coco_mask_ap, mask_iou_matrix, match_greedy
from amodal3d.io import atomic_write_json
from amodal3d.masks import encode_rle
from amodal3d.models.crop_head import group_detections, load_crop_head, mask_quality, read_crops, read_crops_averaged
from amodal3d.models.detector import load_detector
from amodal3d.models.detector_predict import CROP_HEAD_ENLARGEMENTS, MIRRORED_DETECTIONS, detect
from amodal3d.pipeline import resolve_pipeline_dir

RESULTS = Path(__file__).resolve().parent / "results"
# the head's own enlargement (1.3) and the pipeline's further ones
SHIPPED = " + ".join(str(e) for e in (1.3, *CROP_HEAD_ENLARGEMENTS)) + " (shipped)"
ENLARGEMENTS = {"1.3 alone": (1.3,), SHIPPED: (1.3, *CROP_HEAD_ENLARGEMENTS), "1.3 + 1.5": (1.3, 1.5),
                "1.15 + 1.3 + 1.5": (1.15, 1.3, 1.5), "1.2 + 1.4": (1.2, 1.4)}


def matched_iou(visible: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """(G,) the visible-mask IoU at which the harness's one-to-one matching (``match_greedy``, IoU >= 0.5)
    pairs each ground-truth object (``visible`` (G, H, W)) with a predicted mask (``masks`` (P, H, W)), 0
    when unmatched."""
    iou = mask_iou_matrix(visible.numpy(), masks.numpy())
    match = match_greedy(iou)
    if iou.size == 0:
        return np.zeros(len(match))
    return np.where(match >= 0, iou[np.arange(len(match)), np.maximum(match, 0)], 0.0)


def disjoint(probs: torch.Tensor, spare_duplicates: bool) -> torch.Tensor:
    """(G, H, W) visible-mask probabilities -> bool masks where each pixel stays only with the object of
    the highest probability there; with ``spare_duplicates``, only against objects whose masks overlap
    it by less than half of the smaller mask."""
    masks = probs > 0.5
    if len(probs) < 2:
        return masks
    flat = masks.flatten(1).float()
    inter = flat @ flat.T
    rivals = inter / torch.minimum(flat.sum(1)[:, None], flat.sum(1)[None]).clamp_min(1) < 0.5
    if not spare_duplicates:
        rivals[:] = True
    rivals.fill_diagonal_(False)
    kept = masks.clone()
    for k in range(len(probs)):
        if rivals[k].any():
            kept[k] &= ~(probs[rivals[k]] > probs[k]).any(0)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--weights", default="cpu-small", help="pipeline folder or built-in name")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/step1_alternatives_<split>.json")
    args = parser.parse_args()
    folder = resolve_pipeline_dir(args.weights)
    detector, head = load_detector(folder / "detector.safetensors"), load_crop_head(folder / "crop_head.safetensors")
    box_key = f"{detector.config.box_targets}_boxes"
    dataset = AmodalDataset(args.data, args.split)
    n = min(args.limit, len(dataset))
    enlargements = sorted({e for combo in ENLARGEMENTS.values() for e in combo})
    images, gt = [], []
    detections = {name: [] for name in ENLARGEMENTS}
    right, ious = ({name: [] for name in ENLARGEMENTS} for _ in range(2))
    failures, good_box_ious = [], []
    matched = {name: [] for name in ("as read", "disjoint per pixel", "disjoint, near-duplicates spared")}
    box_ious = {name: [] for name in ("leading detection (shipped)", "score-weighted mean of the group",
                                      "true amodal box (needs the truth)")}
    occlusion = []
    for index in tqdm(range(n), desc="step 1", unit="img"):
        image, target = dataset[index]
        image_id = int(target["image_id"])
        images.append({"id": image_id, "height": image.shape[1], "width": image.shape[2]})
        visible, hidden = target["visible_masks"].bool(), target["occlude_rate"]
        occlusion += hidden.tolist()
        for g, label in enumerate(target["labels"].tolist()):
            gt.append({"image_id": image_id, "category_id": label, "segmentation": encode_rle(visible[g].numpy())})
        out = detect(detector, image, MIRRORED_DETECTIONS)
        leaders, objectness = group_detections(out.boxes[0], out.scores[0], head.config.group_iou)
        if len(leaders) == 0:
            for name in matched:
                matched[name] += [0.0] * len(visible)
            continue
        boxes = out.boxes[0][leaders]
        readings = {e: read_crops(head, image, boxes, flip=True, enlarge=e) for e in enlargements}
        overlap = box_iou(target[box_key], boxes)
        for name, combo in ENLARGEMENTS.items():
            probs = sum(readings[e][0] for e in combo) / len(combo)
            masks = sum(readings[e][1] for e in combo) / len(combo)
            if name == SHIPPED:
                shipped = masks
            best, label = probs.max(1)
            scores = objectness * best * mask_quality(masks, objectness * best)
            detections[name] += [{"image_id": image_id, "category_id": int(label[k]) + 1, "score": float(scores[k]),
                                  "segmentation": encode_rle((masks[k] > 0.5).numpy())} for k in range(len(scores))]
            mask_ious = mask_iou_matrix(visible.numpy(), (masks > 0.5).numpy())
            for g, truth in enumerate(target["labels"].tolist()):
                if overlap[g].max() < 0.5:
                    continue
                j = int(overlap[g].argmax())
                right[name].append(int(label[j]) + 1 == truth)
                ious[name].append(float(mask_ious[g, j]))
                if name == SHIPPED and mask_ious[g, j] >= 0.5:
                    good_box_ious.append(float(overlap[g, j]))
                if name == SHIPPED and mask_ious[g, j] < 0.5:
                    predicted = masks[j] > 0.5
                    inter = float((predicted & visible[g]).sum())
                    others = np.delete(mask_ious[:, j], g)
                    failures.append({"occlusion": float(hidden[g]), "iou": float(mask_ious[g, j]),
                                     "box_iou": float(overlap[g, j]),
                                     "precision": inter / max(float(predicted.sum()), 1.0),
                                     "recall": inter / max(float(visible[g].sum()), 1.0),
                                     "mostly_another_object": bool(len(others) and others.max() >= 0.5)})
        group = (box_iou(boxes, out.boxes[0]) > head.config.group_iou).float() * out.scores[0][None]
        voted = read_crops_averaged(head, image, (group @ out.boxes[0]) / group.sum(1, keepdim=True), True,
                                    CROP_HEAD_ENLARGEMENTS)[1]
        found = [(g, int(overlap[g].argmax())) for g in range(len(visible)) if overlap[g].max() >= 0.5]
        if found:
            truth = read_crops_averaged(head, image, target[box_key][[g for g, _ in found]].float(), True,
                                        CROP_HEAD_ENLARGEMENTS)[1]
            for name, masks in (("leading detection (shipped)", shipped[[j for _, j in found]]),
                                ("score-weighted mean of the group", voted[[j for _, j in found]]), (
                                "true amodal box (needs the truth)", truth)):
                box_ious[name] += mask_iou_matrix(visible[[g for g, _ in found]].numpy(),
                                                  (masks > 0.5).numpy()).diagonal().tolist()
        for name, masks in (("as read", shipped > 0.5), ("disjoint per pixel", disjoint(shipped, False)),
                            ("disjoint, near-duplicates spared", disjoint(shipped, True))):
            matched[name] += matched_iou(visible, masks).tolist()

    category_ids = [int(c["id"]) for c in dataset.categories]
    occluded = np.array(occlusion) >= OCCLUDED_MIN_RATE
    precision = np.array([f["precision"] for f in failures])
    recall = np.array([f["recall"] for f in failures])
    report = {
        "benchmark": "step-1 visible masks: failures, crop enlargements, disjoint masks",
        "command": f"python benchmarks/step1_alternatives.py --data D --split {args.split} --limit {args.limit}",
        "arguments": vars(args), "images": n, "objects": len(occlusion),
        "found_objects": len(ious[SHIPPED]),
        "failures": {
            "count": len(failures),
            "median_occlusion": round(float(np.median([f["occlusion"] for f in failures])), 3),
            "median_iou": round(float(np.median([f["iou"] for f in failures])), 3),
            "median_precision": round(float(np.median(precision)), 3),
            "median_recall": round(float(np.median(recall)), 3),
            "median_box_iou (detected vs true amodal box)": round(float(np.median([f["box_iou"]
                                                                                   for f in failures])), 3),
            "median_box_iou of the other found objects": round(float(np.median(good_box_ious)), 3),
            "over_segmented (recall >= 0.7, precision < 0.5)": int(((recall >= 0.7) & (precision < 0.5)).sum()),
            "under_segmented (precision >= 0.7, recall < 0.5)": int(((precision >= 0.7) & (recall < 0.5)).sum()),
            "both_below_0.5": int(((precision < 0.5) & (recall < 0.5)).sum()),
            "mostly_another_object (IoU >= 0.5 with it)": int(sum(f["mostly_another_object"] for f in failures)),
        },
        "enlargements": {name: {
            "category_accuracy": round(float(np.mean(right[name])), 4),
            "mean_mask_iou": round(float(np.mean(ious[name])), 4),
            "mask_iou_at_least_0.5": round(float(np.mean(np.array(ious[name]) >= 0.5)), 4),
            "visible_ap": coco_mask_ap(images, gt, detections[name], category_ids),
        } for name in ENLARGEMENTS},
        "boxes": {name: {"mean_mask_iou": round(float(np.mean(v)), 4),
                         "mask_iou_at_least_0.5": round(float(np.mean(np.array(v) >= 0.5)), 4)}
                  for name, v in box_ious.items()},
        "disjoint": {name: {
            "matched": int((np.array(m) > 0).sum()),
            "occluded_matched": int((np.array(m)[occluded] > 0).sum()),
            "occluded_objects": int(occluded.sum()),
            "mean_matched_iou_all_objects": round(float(np.mean(m)), 4),
        } for name, m in matched.items()},
        "machine": machine_description(),
    }
    out = Path(args.out) if args.out else RESULTS / f"step1_alternatives_{args.split}.json"
    atomic_write_json(out, report, indent=2)
    print(f"{n} images, {len(occlusion)} objects, {report['found_objects']} found; masks of IoU < 0.5: "
          f"{report['failures']}")
    for name, r in report["enlargements"].items():
        print(f"enlargement {name:18s} category {100 * r['category_accuracy']:.1f} %, mask IoU "
              f"{r['mean_mask_iou']:.4f} (>= 0.5: {100 * r['mask_iou_at_least_0.5']:.1f} %), "
              f"visible AP50 {r['visible_ap']['AP50']:.4f}")
    for name, r in report["boxes"].items():
        print(f"boxes: {name:34s} mask IoU {r['mean_mask_iou']:.4f} (>= 0.5: {100 * r['mask_iou_at_least_0.5']:.1f} %)")
    for name, r in report["disjoint"].items():
        print(f"{name:34s} matched {r['matched']}, occluded {r['occluded_matched']} of {r['occluded_objects']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

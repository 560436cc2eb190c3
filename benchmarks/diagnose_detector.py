"""Where step 1 loses objects: localisation, masks or categories? The detector alone and with its crop
head (step 1b), side by side on the same detections.

    python benchmarks/diagnose_detector.py --data DATA [--split test] [--limit 300] [--weights cpu-small]
        [--other-crop-head LABEL=PATH ...] [--other-detector LABEL=PATH ...] [--out JSON]
    -> benchmarks/results/detector_diagnosis.json

``--other-crop-head`` scores other crop heads (e.g. candidates, or the previous release) on the same
detections, as extra rows read the way the pipeline reads its own (``PIPELINE_ROW``);
``--other-detector`` runs another detector (a candidate, or the previous release's) with the
pipeline's crop head on the same images, side by side.

The detections are grouped into objects (``crop_head.group_detections``: the box of a group's best
detection). For every ground-truth object: is a detected object's box within IoU 0.5 of its box (the
kind of box the detector was trained on)? For the detected object that overlaps it most: is its
category right, and how well does its visible mask fit (IoU)? Then COCO visible-mask AP50 with
categories and class-agnostic (every label set to one), which separates what categories cost from what
masks and localisation cost. Detections are kept at score >= 0.05 (the detector's own floor) so that
AP sees the whole ranking. The crop head scores an object by objectness x p(label) x the quality of its
mask (``crop_head.mask_quality``); the row "objectness x p(label) only" is the same head ranked without
that factor (categories and masks identical, only AP can differ). The pipeline's row adds the
detections of the mirror image (``models.detector_predict.detect(mirrored=True)``), so its objects, and the
share of objects found, are its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torchvision.ops import box_iou
from tqdm import tqdm

from amodal3d.data.dataset import AmodalDataset
from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.metrics import coco_mask_ap
from amodal3d.io import atomic_write_json
from amodal3d.masks import encode_rle, mask_iou
from amodal3d.models.crop_head import apply_crop_head, group_detections, load_crop_head
from amodal3d.models.detector import load_detector
from amodal3d.models.detector_predict import CROP_HEAD_ENLARGEMENTS, MIRRORED_DETECTIONS, detect
from amodal3d.pipeline import resolve_pipeline_dir

RESULTS = Path(__file__).resolve().parent / "results"
PIPELINE_ROW = "crop head + flip + enlargements + mirrored detections"  # step 1 as the pipeline runs it


def diagnose(detector, heads: dict, dataset, n: int) -> dict:
    """Step 1 on the first ``n`` images: per row (the detector alone, then each crop head in ``heads``,
    name -> (head, keyword arguments of ``apply_crop_head``, plus ``mirrored``: the row reads the
    detections of the image and of its mirror image, ``models.detector_predict.detect``)) the share of objects
    with a detected box, category accuracy and mask IoU of those, and visible AP50 with and without
    categories; the first head's confusion matrix."""
    first = next(iter(heads.values()))[0]
    box_key = f"{detector.config.box_targets}_boxes"
    rows = ["detector", *heads]
    images, gt, dt = [], [], {name: [] for name in [*rows, "top 3"]}
    found, right, iou = ({name: [] for name in rows} for _ in range(3))  # right, iou: per found object
    confusion = np.zeros((first.config.num_categories,) * 2, np.int64)
    for index in tqdm(range(n), desc="diagnose", unit="img"):
        image, target = dataset[index]
        image_id = int(target["image_id"])
        images.append({"id": image_id, "height": image.shape[1], "width": image.shape[2]})
        views = {False: detect(detector, image)}
        if any(how.get("mirrored") for _, how in heads.values()):
            views[True] = detect(detector, image, mirrored=True)
        out = views[False]
        boxes, scores, labels, visible = out.boxes[0], out.scores[0], out.labels[0], out.visible_masks[0] > 0.5
        looks = {}
        for name, (h, how) in heads.items():
            view = views[bool(how.get("mirrored"))]
            rest = {k: v for k, v in how.items() if k != "mirrored"}
            looks[name] = apply_crop_head(h, image, view.boxes[0], view.scores[0], **rest)
        for k in range(len(scores)):
            dt["detector"].append({"image_id": image_id, "category_id": int(labels[k]), "score": float(scores[k]),
                                   "segmentation": encode_rle(visible[k].numpy())})
        for i, (name, look) in enumerate(looks.items()):
            for k in range(len(look.scores)):
                segmentation = encode_rle((look.visible[k] > 0.5).numpy())
                dt[name].append({"image_id": image_id, "category_id": int(look.labels[k]),
                                 "score": float(look.scores[k]), "segmentation": segmentation})
                if i == 0:
                    top = look.probs[k].topk(3)
                    dt["top 3"] += [{"image_id": image_id, "category_id": c + 1,
                                     "score": float(look.objectness[k] * look.quality[k]) * p,
                                     "segmentation": segmentation}
                                    for p, c in zip(top.values.tolist(), top.indices.tolist())]
        leaders, _ = group_detections(boxes, scores, first.config.group_iou)
        # per row: each object's box, label and visible mask (the detector alone: its groups' leaders)
        objects = {"detector": (boxes[leaders], labels[leaders], visible[leaders])}
        objects.update({name: (look.boxes, look.labels, look.visible > 0.5) for name, look in looks.items()})
        gt_visible = target["visible_masks"].bool()
        for g, label in enumerate(target["labels"].tolist()):
            gt.append({"image_id": image_id, "category_id": label, "segmentation": encode_rle(gt_visible[g].numpy())})
        for r, (name, (row_boxes, row_labels, row_masks)) in enumerate(objects.items()):
            overlap = box_iou(target[box_key], row_boxes) if len(row_boxes) else None
            for g, label in enumerate(target["labels"].tolist()):
                found[name].append(overlap is not None and bool(overlap[g].max() >= 0.5))
                if not found[name][-1]:
                    continue
                j = int(overlap[g].argmax())
                right[name].append(int(row_labels[j]) == label)
                iou[name].append(mask_iou(row_masks[j].numpy(), gt_visible[g].numpy()))
                if r == 1:
                    confusion[label - 1, int(row_labels[j]) - 1] += 1
    category_ids = list(range(1, first.config.num_categories + 1))

    def agnostic(rows: list[dict]) -> list[dict]:
        return [{**r, "category_id": 1} for r in rows]

    results = {}
    for name in rows:
        results[name] = {
            "objects_with_a_box_iou_0.5": round(float(np.mean(found[name])), 4),
            "category_accuracy": round(float(np.mean(right[name])), 4),
            "mean_mask_iou": round(float(np.mean(iou[name])), 4),
            "mask_iou_at_least_0.5": round(float(np.mean(np.array(iou[name]) >= 0.5)), 4),
            "visible_ap": coco_mask_ap(images, gt, dt[name], category_ids),
            "class_agnostic_visible_ap": coco_mask_ap(images, agnostic(gt), agnostic(dt[name]), [1]),
        }
    # COCO counts every (box, category) hypothesis: the detector gives one per category scoring >= 0.05,
    # the pipeline's crop head one per object; its three likeliest categories put it on the same footing
    results[next(iter(heads))]["visible_ap_top3_categories"] = coco_mask_ap(images, gt, dt["top 3"], category_ids)
    return {"objects": len(gt), "objects_with_a_box_iou_0.5": results["detector"]["objects_with_a_box_iou_0.5"],
            "results": results, "confusion": confusion}


def print_rows(results: dict, prefix: str = "") -> None:
    for name, r in results.items():
        print(f"{prefix + name:32s} found {100 * r['objects_with_a_box_iou_0.5']:.1f} %, "
              f"category accuracy {100 * r['category_accuracy']:.1f} %, mask IoU "
              f"{r['mean_mask_iou']:.3f} (>= 0.5: {100 * r['mask_iou_at_least_0.5']:.1f} %), visible AP50 "
              f"{r['visible_ap']['AP50']:.3f}, class-agnostic AP50 {r['class_agnostic_visible_ap']['AP50']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--weights", default="cpu-small", help="pipeline folder or built-in name")
    parser.add_argument("--other-crop-head", action="append", default=[], metavar="LABEL=PATH",
                        help="also score this crop head on the same detections, as the row 'crop head, LABEL'")
    parser.add_argument("--other-detector", action="append", default=[], metavar="LABEL=PATH",
                        help="also run this detector with the pipeline's crop head (all its readings), "
                             "under 'other_detectors' LABEL")
    parser.add_argument("--out", default=str(RESULTS / "detector_diagnosis.json"))
    args = parser.parse_args(argv)
    folder = resolve_pipeline_dir(args.weights)
    detector = load_detector(folder / "detector.safetensors")
    head = load_crop_head(folder / "crop_head.safetensors")
    readings = {"flip": True, "enlargements": CROP_HEAD_ENLARGEMENTS}
    pipeline = {**readings, "mirrored": MIRRORED_DETECTIONS}
    heads = {"crop head": (head, {}), "crop head + flip": (head, {"flip": True}),
             "crop head + flip + enlargements": (head, readings), PIPELINE_ROW: (head, pipeline),
             "crop head, objectness x p(label) only": (head, {"rescore": False})}
    for item in args.other_crop_head:
        label, _, path = item.partition("=")
        heads[f"{PIPELINE_ROW}, {label}"] = (load_crop_head(path), pipeline)
    dataset = AmodalDataset(args.data, args.split)
    n = min(args.limit, len(dataset))
    main_run = diagnose(detector, heads, dataset, n)
    others = {}
    for item in args.other_detector:
        label, _, path = item.partition("=")
        other = diagnose(load_detector(path), {PIPELINE_ROW: (head, pipeline)}, dataset, n)
        others[label] = {"path": path, **{k: v for k, v in other.items() if k != "confusion"}}
    confusion = main_run["confusion"]
    names = [c["name"] for c in dataset.categories]
    report = {
        "benchmark": "step-1 diagnosis: localisation, masks, categories",
        "command": f"python benchmarks/diagnose_detector.py --data D --split {args.split} --limit {args.limit}"
                   + "".join(f" --other-crop-head {item}" for item in args.other_crop_head)
                   + "".join(f" --other-detector {item}" for item in args.other_detector),
        "arguments": vars(args), "images": n, "objects": main_run["objects"],
        "objects_with_a_box_iou_0.5": main_run["objects_with_a_box_iou_0.5"],
        "results": main_run["results"],
        "other_detectors": others,
        "crop_head_accuracy_per_category": {names[c]: round(float(confusion[c, c] / max(confusion[c].sum(), 1)), 3)
                                            for c in range(len(names))},
        "crop_head_confusion": {"categories": names, "rows_truth_columns_predicted": confusion.tolist()},
        "machine": machine_description(),
    }
    atomic_write_json(args.out, report, indent=2)
    print(f"{n} images, {main_run['objects']} objects; a box within IoU 0.5: "
          f"{100 * main_run['objects_with_a_box_iou_0.5']:.1f} %")
    print_rows(main_run["results"])
    print(f"crop head, three likeliest categories per object: visible AP50 "
          f"{main_run['results']['crop head']['visible_ap_top3_categories']['AP50']:.3f}")
    for label, other in others.items():
        print(f"detector {label}: a box within IoU 0.5: {100 * other['objects_with_a_box_iou_0.5']:.1f} %")
        print_rows(other["results"], prefix=f"{label}: ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Amodal masks continued past the image border (``PipelineOptions.canvas_margin``), per truncation level.

    amodal3d generate --out /tmp/bd --split test=60 --size 256 --workers 1 --seed 3
    python benchmarks/bench_border.py --data /tmp/bd [--crop 48] [--weights cpu-small]
    -> benchmarks/results/border.json

Each generated test image (H x W) is cut to its central window (``--crop`` px dropped on every side), so
objects become truncated while their ground truth beyond the new border is known: the full image's amodal
masks. The pipeline completes the cropped true visible masks (given-visible, steps 2-5) with
``canvas_margin = --crop``, whose canvas is exactly the full image. Per object with a truncated amodal
mask, by its truncation level (the fraction of its true amodal mask, within the full image, outside the
window):

* ``out_of_frame_iou``: IoU of the predicted canvas outside the window against the true amodal mask
  outside it (ours); the baseline that continues nothing scores 0 there;
* ``canvas_iou`` / ``in_frame_only_iou``: IoU over the whole canvas against the full true amodal mask, of
  ours and of the same prediction with nothing continued (the in-frame ``amodal_masks``);
* ``out_of_frame_precision`` / ``_recall``: of the predicted and the true out-of-frame parts;
  ``roi_reach``: the fraction of the true out-of-frame part inside the instance's ROI (what the pipeline
  can reach at all: nothing is pasted outside an ROI).

Objects with fewer than ``--min-visible`` visible pixels inside the window are skipped (nothing to
complete). Untruncated objects are counted apart, with the pixels the canvas puts outside the window for
them (false continuation).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amodal3d.io import atomic_write_json
from amodal3d.masks import decode_rle, masks_to_boxes
from amodal3d.roi import square_rois
from amodal3d.structures import GivenVisible

RESULTS = Path(__file__).resolve().parent / "results"
BINS = ((0.0, 0.1, "0-10 %"), (0.1, 0.3, "10-30 %"), (0.3, 0.6, "30-60 %"), (0.6, 1.01, ">60 %"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a generated dataset (amodal3d generate)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--crop", type=int, default=48, help="pixels dropped on every side (= canvas margin)")
    parser.add_argument("--weights", default="cpu-small")
    parser.add_argument("--min-visible", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--out", default=str(RESULTS / "border.json"))
    args = parser.parse_args()
    from amodal3d.pipeline import AmodalSegmenter

    m = args.crop
    segmenter = AmodalSegmenter.from_pretrained(args.weights, canvas_margin=m)
    data = Path(args.data)
    coco = json.loads((data / "annotations" / f"{args.split}.json").read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = coco["images"][: args.limit]
    keys = ("out_of_frame_iou", "canvas_iou", "in_frame_only_iou", "out_of_frame_precision",
            "out_of_frame_recall", "roi_reach")
    rows: dict[str, dict[str, list[float]]] = {name: {key: [] for key in keys} for *_, name in BINS}
    untruncated = {"objects": 0, "with_false_continuation": 0, "false_pixels": 0}
    skipped = 0
    start = time.perf_counter()
    for info in images:
        anns = by_image.get(info["id"], [])
        if not anns:
            continue
        image = np.asarray(Image.open(data / "images" / args.split / info["file_name"]).convert("RGB"))
        h, w = image.shape[:2]
        amodal = np.stack([decode_rle(a["amodal_segm"]) for a in anns])
        visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        window = np.zeros((h, w), bool)
        window[m:h - m, m:w - m] = True
        cut_visible = visible[:, m:h - m, m:w - m]
        keep = cut_visible.reshape(len(anns), -1).sum(1) >= args.min_visible
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        amodal, cut_visible = amodal[keep], cut_visible[keep]
        labels = np.array([a["category_id"] for a, k in zip(anns, keep) if k], np.int64)
        boxes = masks_to_boxes(cut_visible)
        given = GivenVisible(cut_visible, labels, boxes)
        rois = square_rois(torch.from_numpy(boxes), segmenter.shape.config.roi_enlarge).numpy() + m
        ys, xs = np.arange(h)[:, None] + 0.5, np.arange(w)[None] + 0.5
        out = segmenter.predict(np.ascontiguousarray(image[m:h - m, m:w - m]), given)
        canvas = out.extras["amodal_canvas"]
        assert canvas.shape[1:] == (h, w) and out.extras["canvas_offset"] == (m, m)
        in_frame_only = np.zeros_like(canvas)
        in_frame_only[:, m:h - m, m:w - m] = out.amodal_masks
        for k in range(len(amodal)):
            truth_out = amodal[k] & ~window
            area = int(amodal[k].sum())
            level = int(truth_out.sum()) / max(area, 1)
            if level == 0:
                untruncated["objects"] += 1
                false = int((canvas[k] & ~window).sum())
                untruncated["with_false_continuation"] += false > 0
                untruncated["false_pixels"] += false
                continue
            name = next(n for lo, hi, n in BINS if lo < level <= hi or (lo == 0 and level <= hi))
            ours_out = canvas[k] & ~window
            x0, y0, x1, y1 = rois[k]
            reach = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)  # the instance's ROI on the canvas
            rows[name]["out_of_frame_iou"].append(iou(ours_out, truth_out))
            hit = float((ours_out & truth_out).sum())
            rows[name]["out_of_frame_precision"].append(hit / max(int(ours_out.sum()), 1))
            rows[name]["out_of_frame_recall"].append(hit / int(truth_out.sum()))
            rows[name]["roi_reach"].append(float((reach & truth_out).sum()) / int(truth_out.sum()))
            rows[name]["canvas_iou"].append(iou(canvas[k], amodal[k]))
            rows[name]["in_frame_only_iou"].append(iou(in_frame_only[k], amodal[k]))
    levels = {}
    for *_, name in BINS:
        r = rows[name]
        n = len(r["out_of_frame_iou"])
        levels[name] = {"objects": n, "out_of_frame_iou_nothing": 0.0 if n else None,
                        **{key: round(float(np.mean(v)), 4) if n else None for key, v in r.items()}}
    everything = {key: [v for r in rows.values() for v in r[key]] for key in rows[BINS[0][2]]}
    n_all = len(everything["out_of_frame_iou"])
    levels["all truncated"] = {"objects": n_all, **{key: round(float(np.mean(v)), 4) if n_all else None
                                                    for key, v in everything.items()},
                               "out_of_frame_iou_nothing": 0.0}
    untruncated["mean_false_pixels"] = round(untruncated["false_pixels"] / max(untruncated["objects"], 1), 2)
    limit = f" --limit {args.limit}" if args.limit else ""
    report = {"benchmark": "amodal masks past the image border (PipelineOptions.canvas_margin), given-visible",
              "command": f"amodal3d generate --out {args.data} --split {args.split}=60 --size 256 --workers 1 "
                         f"--seed 3 && python benchmarks/bench_border.py --data {args.data} --split {args.split} "
                         f"--crop {m} --weights {args.weights} --min-visible {args.min_visible}{limit}",
              "images": len(images), "image_size": [images[0]["height"], images[0]["width"]] if images else None,
              "crop_per_side": m, "canvas_margin": m, "weights": args.weights,
              "truncation_level": "fraction of the true amodal mask (within the full image) outside the crop",
              "levels": levels, "untruncated": untruncated,
              "skipped_objects_below_min_visible": skipped,
              "seconds": round(time.perf_counter() - start, 1),
              "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"}
    atomic_write_json(Path(args.out), report)
    for name, t in levels.items():
        if t["objects"]:
            print(f"{name:14s} {t['objects']:4d} objects  out-of-frame IoU {t['out_of_frame_iou']:.3f} (nothing 0)  "
                  f"canvas IoU {t['canvas_iou']:.3f} vs in-frame only {t['in_frame_only_iou']:.3f}  "
                  f"P {t['out_of_frame_precision']:.3f} R {t['out_of_frame_recall']:.3f} "
                  f"ROI reach {t['roi_reach']:.3f}")
    print(f"untruncated: {untruncated}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

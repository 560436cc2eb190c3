"""The crop head (step 1b) alone: category and visible mask from crops of ground-truth boxes jittered
like detections, per split and per occlusion bin, several heads side by side on the same crops.

    python benchmarks/eval_crop_head.py --data DATA [--splits train,test] [--limit 300]
        [--head shipped=src/amodal3d/weights/cpu-small/crop_head.safetensors] [--head LABEL=PATH ...]
    -> benchmarks/results/crop_head.json

Training images against test images (meshes unseen) tells under- from over-fitting; the occlusion
bins (``occlude_rate``, as in docs/metrics.md) tell where the visible masks fail. The crops are those
of training (``CropSamples``: the box jittered by ``box_jitter``, a fixed seed, no augmentation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amodal3d.data.dataset import AmodalDataset
from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.metrics import OCCLUSION_BIN_LABELS, occlusion_bin, paired_iou
from amodal3d.io import atomic_write_json
from amodal3d.models.crop_head import CropSamples, load_crop_head
from amodal3d.pipeline import resolve_pipeline_dir

RESULTS = Path(__file__).resolve().parent / "results"
SHIPPED = resolve_pipeline_dir("cpu-small") / "crop_head.safetensors"


def score(head, dataset: AmodalDataset, limit: int, seed: int = 123) -> dict:
    """Category accuracy and visible-mask IoU (crop resolution, threshold 0.5) of ``head`` on the
    jittered ground-truth boxes of the first ``limit`` images: overall and per occlusion bin."""
    crops = CropSamples(dataset, head.config, box_targets="amodal", seed=seed)
    right, iou, rate = [], [], []
    with torch.no_grad():
        for index in tqdm(range(min(limit, len(dataset))), desc="crop head", unit="img", leave=False):
            inputs, targets = crops[index]
            out, _ = head.eval()(inputs)
            right += (out.class_logits.argmax(1) + 1 == targets["labels"]).tolist()
            iou += paired_iou((out.mask_logits > 0).numpy(), (targets["visible"] > 0.5).numpy()).tolist()
            rate += [a.get("occlude_rate", 0.0) for a in dataset.by_image.get(dataset.images[index]["id"], [])]
    right, iou, bins = np.array(right, float), np.array(iou), occlusion_bin(np.array(rate))
    by_bin = {}
    for b, label in enumerate(OCCLUSION_BIN_LABELS):
        inside = bins == b
        by_bin[label] = {
            "count": int(inside.sum()),
            "category_accuracy": round(float(right[inside].mean()), 4) if inside.any() else None,
            "mask_iou": round(float(iou[inside].mean()), 4) if inside.any() else None}
    return {"objects": len(right), "category_accuracy": round(float(right.mean()), 4),
            "mask_iou": round(float(iou.mean()), 4), "by_occlusion": by_bin}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--splits", default="train,test")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--head", action="append", default=[], metavar="LABEL=PATH",
                        help=f"a crop head to score (repeatable; default: shipped={SHIPPED})")
    parser.add_argument("--out", default=str(RESULTS / "crop_head.json"))
    args = parser.parse_args()
    heads = {}
    for item in args.head or [f"shipped={SHIPPED}"]:
        label, _, path = item.partition("=")
        heads[label] = load_crop_head(path).float()
    results = {}
    for split in args.splits.split(","):
        dataset = AmodalDataset(args.data, split)
        results[split] = {label: score(head, dataset, args.limit) for label, head in heads.items()}
    report = {
        "benchmark": "crop head on jittered ground-truth boxes, by split and occlusion",
        "command": f"python benchmarks/eval_crop_head.py --data D --splits {args.splits} --limit {args.limit}"
                   + "".join(f" --head {item}" for item in args.head),
        "arguments": vars(args), "results": results,
        "machine": machine_description(),
    }
    atomic_write_json(args.out, report, indent=2)
    for split, rows in results.items():
        for label, r in rows.items():
            bins = ", ".join(f"{k} {v['mask_iou']}" for k, v in r["by_occlusion"].items())
            print(f"{split:6s} {label:10s} category {100 * r['category_accuracy']:.1f} %, mask IoU {r['mask_iou']:.3f} "
                  f"(by occlusion: {bins})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

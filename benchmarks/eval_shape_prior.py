"""How good is the rendered 3D prior (steps 2-4) on unseen meshes?

    python benchmarks/eval_shape_prior.py --weights RUN/model.safetensors --data DATA [--split test]

Given the ground-truth visible masks (the prior's input), on the test split of a generated dataset:
IoU of the rendered prior with the amodal mask, next to the visible mask taken as amodal, on
occluded instances (occlude_rate >= 0.25); the prior's IoU on the hidden region; viewpoint error
(ground truth only measures). Each figure twice, side by side: the network's prior as predicted and
after ``--fit-steps`` of render-and-compare fitting of its camera to the visible mask (``fitted_*``).
Writes benchmarks/results/shape_prior.json and a figure.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amodal3d import CATEGORY_NAMES
from amodal3d.data.dataset import AmodalDataset
from amodal3d.io import atomic_write_json
from amodal3d.models.shape import image_priors, load_shape_prior
from amodal3d.models.shape_train import mesh_of
from amodal3d.models.viewpoint import angular_error

RESULTS = Path(__file__).resolve().parent / "results"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def best_offset_error(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Azimuth errors after the single global offset (0..359 deg) that minimises the median error:
    an unsupervised model's canonical frame may be rotated about the vertical axis."""
    best = None
    for offset in range(0, 360, 1):
        err = angular_error(torch.tensor(predicted + offset), torch.tensor(true)).numpy()
        if best is None or np.median(err) < np.median(best):
            best = err
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--fit-steps", type=int, default=10, help="render-and-compare steps (fitted_* figures)")
    parser.add_argument("--out", default=str(RESULTS / "shape_prior.json"))
    parser.add_argument("--figure", default=str(RESULTS / "shape_prior.png"))
    args = parser.parse_args()

    model = load_shape_prior(args.weights)
    dataset = AmodalDataset(args.data, args.split)
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    rows = []
    examples = []
    start = time.perf_counter()
    for index in tqdm(range(count), desc="shape prior", unit="img"):
        image, target = dataset[index]
        visible = target["visible_masks"].bool()
        priors, output = image_priors(model, image, visible, target["labels"])
        if output is None:
            continue
        fitted_priors, fitted = image_priors(model, image, visible, target["labels"], args.fit_steps)
        for k in range(visible.shape[0]):
            vis = visible[k].numpy()
            amodal = target["amodal_masks"][k].bool().numpy()
            prior = priors[k].numpy() > 0.5
            fitted_prior = fitted_priors[k].numpy() > 0.5
            hidden_gt = amodal & ~vis
            rows.append({
                "fitted_prior_iou": iou(fitted_prior, amodal),
                "fitted_prior_or_visible_iou": iou(fitted_prior | vis, amodal),
                "fitted_prior_hidden_iou": iou(fitted_prior & ~vis, hidden_gt),
                "azimuth_fitted": float(fitted.cameras.azimuth[k]),
                "category": CATEGORY_NAMES[int(target["labels"][k]) - 1],
                "occlude_rate": float(target["occlude_rate"][k]),
                "prior_iou": iou(prior, amodal),
                "prior_or_visible_iou": iou(prior | vis, amodal),
                "visible_iou": iou(vis, amodal),
                "prior_hidden_iou": iou(prior & ~vis, hidden_gt),
                "azimuth_pred": float(output.cameras.azimuth[k]),
                "azimuth_true": float(target["viewpoint"][k, 0]),
            })
            if len(examples) < 6 and rows[-1]["occlude_rate"] >= 0.25:
                examples.append((image, vis, amodal, priors[k].numpy(), fitted_priors[k].numpy(),
                                 mesh_of(output, k), rows[-1]["azimuth_pred"], float(output.cameras.elevation[k])))
    seconds = time.perf_counter() - start

    def summary(items: list[dict]) -> dict:
        occluded = [r for r in items if r["occlude_rate"] >= 0.25]
        hidden = [r for r in items if r["occlude_rate"] >= 0.05]
        mean = lambda rs, key: round(float(np.mean([r[key] for r in rs])), 4) if rs else None  # noqa: E731
        return {"count": len(items), "occluded_count": len(occluded),
                "prior_iou_occluded": mean(occluded, "prior_iou"),
                "prior_or_visible_iou_occluded": mean(occluded, "prior_or_visible_iou"),
                "visible_iou_occluded": mean(occluded, "visible_iou"),
                "prior_occluded_region_iou": mean(hidden, "prior_hidden_iou"),
                "prior_iou_all": mean(items, "prior_iou"), "visible_iou_all": mean(items, "visible_iou"),
                "fitted_prior_iou_occluded": mean(occluded, "fitted_prior_iou"),
                "fitted_prior_or_visible_iou_occluded": mean(occluded, "fitted_prior_or_visible_iou"),
                "fitted_prior_occluded_region_iou": mean(hidden, "fitted_prior_hidden_iou"),
                "fitted_prior_iou_all": mean(items, "fitted_prior_iou")}

    by_category = defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
    true = np.array([r["azimuth_true"] for r in rows])
    category_index = {name: np.array([i for i, r in enumerate(rows) if r["category"] == name]) for name in by_category}

    def aligned_errors(key: str) -> np.ndarray:
        pred = np.array([r[key] for r in rows])
        errors = np.zeros_like(pred)
        for idx in category_index.values():
            errors[idx] = best_offset_error(pred[idx], true[idx])
        return errors

    raw = angular_error(torch.tensor([r["azimuth_pred"] for r in rows]), torch.tensor(true)).numpy()
    aligned, fitted_aligned = aligned_errors("azimuth_pred"), aligned_errors("azimuth_fitted")
    per_category = {name: {**summary(items),
                           "azimuth_median_error_deg": round(float(np.median(aligned[category_index[name]])), 2),
                           "azimuth_acc30": round(float(np.mean(aligned[category_index[name]] <= 30)), 4)}
                    for name, items in by_category.items()}
    result = {
        **summary(rows),
        "azimuth_median_error_deg": round(float(np.median(aligned)), 2),
        "azimuth_acc30": round(float(np.mean(aligned <= 30)), 4),
        "fitted_azimuth_median_error_deg": round(float(np.median(fitted_aligned)), 2),
        "fitted_azimuth_acc30": round(float(np.mean(fitted_aligned <= 30)), 4),
        "fit_steps": args.fit_steps,
        "azimuth_raw_median_error_deg": round(float(np.median(raw)), 2),
        "azimuth_raw_acc30": round(float(np.mean(raw <= 30)), 4),
        "azimuth_note": "azimuth errors after one best rotation offset per category (the unsupervised "
                        "canonical frame is free to rotate about the vertical axis); raw = without it",
        "per_category": dict(sorted(per_category.items(), key=lambda kv: CATEGORY_NAMES.index(kv[0]))),
        "protocol": "ground-truth visible masks as input; prior = rendered silhouette > 0.5 pasted into the image",
        "weights": str(args.weights), "data": str(args.data), "split": args.split, "images": count,
        "instances_per_s": round(len(rows) / seconds, 2),
    }
    atomic_write_json(args.out, result, indent=2)
    if examples:
        figure(examples, args.figure)
    print(json.dumps({k: v for k, v in result.items() if k != "per_category"}, indent=2))


def figure(examples: list, out: str) -> None:
    """Input, visible mask, mesh from two views, rendered prior before and after the fit, ground truth
    (one row per instance)."""
    from PIL import Image

    from amodal3d.data.preview import shaded_view
    from amodal3d.visualize import grid

    def tile(array: np.ndarray) -> Image.Image:
        return Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).convert("RGB").resize((128, 128))

    tiles, captions = [], []
    for image, vis, amodal, prior, fitted, mesh, az, el in examples:
        tiles += [tile(image.permute(1, 2, 0).numpy()), tile(vis.astype(float)),
                  Image.fromarray(shaded_view(mesh, azimuth=az, elevation=el, size=128)),
                  Image.fromarray(shaded_view(mesh, azimuth=az + 90, elevation=20, size=128)),
                  tile(prior), tile(fitted), tile(amodal.astype(float))]
        captions += ["input", "visible (input)", "mesh, predicted view", "mesh, +90 deg", "rendered prior",
                     "prior after the fit", "ground-truth amodal"]
    grid(tiles, 7, out, captions)


if __name__ == "__main__":
    main()

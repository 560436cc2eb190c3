"""The reconstructions sheet: what the shape stage (steps 2-4) makes of unseen test instances.

    python benchmarks/reconstructions_sheet.py --weights SHAPE.safetensors --data DATA [--per-category 4]

For each category, ``--per-category`` test instances (seeded pick, the same for any weights): the input
crop with its visible mask outlined, the mesh from the predicted viewpoint, the mesh turned 90 degrees,
and the rendered prior next to the ground-truth amodal mask (shown, never used). ``--fit-steps N``
first fits each instance's camera and shape code to its visible mask. Writes ``docs/reconstructions.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amodal3d import CATEGORY_NAMES
from amodal3d.data.instances import InstanceRois
from amodal3d.data.preview import shaded_view
from amodal3d.io import atomic_save_image
from amodal3d.models.shape import load_shape_prior, with_fit
from amodal3d.models.shape_train import collate_rois, mesh_of
from amodal3d.visualize import grid

DOCS = Path(__file__).resolve().parent.parent / "docs"
TILE = 96


def pick_instances(labels: np.ndarray, per_category: int, seed: int = 0) -> list[int]:
    """``per_category`` instance indices of each category present in ``labels`` (N,), in category order."""
    rng = np.random.default_rng(seed)
    picks = []
    for label in np.unique(labels):
        pool = np.flatnonzero(labels == label)
        picks += sorted(rng.choice(pool, size=min(per_category, len(pool)), replace=False).tolist())
    return picks


def tile(array: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).convert("RGB").resize((TILE, TILE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-category", type=int, default=4)
    parser.add_argument("--fit-steps", type=int, default=0)
    parser.add_argument("--out", default=str(DOCS / "reconstructions.png"))
    args = parser.parse_args()

    model = load_shape_prior(args.weights)
    rois = InstanceRois(args.data, args.split, model.config.roi_size, model.config.roi_enlarge)
    labels = np.asarray(rois.arrays["labels"])
    tiles, captions = [], []
    for index in pick_instances(labels, args.per_category):
        inputs, targets = collate_rois([rois[index]])
        with torch.no_grad():
            output, _ = model(inputs)
        output = with_fit(model, output, inputs["roi"], args.fit_steps)
        roi = inputs["roi"][0]
        rgb = roi[:3].permute(1, 2, 0).numpy().copy()
        edge = roi[3].numpy() - np.minimum.reduce([np.roll(roi[3].numpy(), s, axis=a) for a in (0, 1) for s in (1, -1)])
        rgb[edge > 0] = (1.0, 0.2, 0.2)
        mesh = mesh_of(output, 0)
        az, el = float(output.cameras.azimuth[0]), float(output.cameras.elevation[0])
        prior, amodal = output.prior[0].numpy(), targets["amodal"][0].numpy()
        both = np.stack([amodal, prior, np.zeros_like(prior)], axis=-1)  # red: truth only, green: prior only
        tiles += [tile(rgb), Image.fromarray(shaded_view(mesh, azimuth=az, elevation=el, size=TILE)),
                  Image.fromarray(shaded_view(mesh, azimuth=az + 90.0, elevation=15.0, size=TILE)), tile(both)]
        name = CATEGORY_NAMES[int(labels[index]) - 1] if 0 < labels[index] <= len(CATEGORY_NAMES) else "?"
        captions += [f"{name} #{index}", f"mesh az {az:.0f}", "mesh +90", "prior / truth"]
    sheet = grid(tiles, 8, None, captions)
    atomic_save_image(sheet.quantize(128), args.out)  # a palette keeps the sheet small enough for the docs
    print(args.out)


if __name__ == "__main__":
    main()

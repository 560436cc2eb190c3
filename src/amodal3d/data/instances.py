"""Instance ROIs of a dataset split for the shape stage, computed once and cached.

``DATA/cache/rois_<split>_<size>_<enlarge>.npz`` holds uint8 arrays (RGB x 255, masks in {0, 1}) so
that training reads ROIs instead of decoding images and masks every epoch."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amodal3d.data.dataset import AmodalDataset
from amodal3d.io import atomic_write_bytes
from amodal3d.models.roi import crop, roi_inputs

CACHE_VERSION = 1

VisibleFn = Callable[[int, torch.Tensor, dict], torch.Tensor]


def compute_rois(dataset: AmodalDataset, size: int, enlarge: float, progress: bool = True,
                 visible_fn: VisibleFn | None = None) -> dict[str, np.ndarray]:
    """ROIs of every instance: ``roi`` (N, 6, S, S) uint8, ``amodal`` (N, S, S) uint8 (the amodal mask
    cropped the same way, for evaluation and the amodal-supervision ablation), ``labels`` (N,),
    ``rois`` (N, 4) xyxy, ``image_index`` (N,), ``occlude_rate`` (N,), ``viewpoint`` (N, 3).

    ``visible_fn(index, image, target) -> (K, H, W) bool``: visible masks to use instead of the true
    ones (e.g. what step 1 predicts for each object); instances it leaves empty are dropped."""
    out: dict[str, list] = {k: [] for k in ("roi", "amodal", "labels", "rois", "image_index", "occlude_rate",
                                            "viewpoint")}
    for index in tqdm(range(len(dataset)), desc="rois", unit="img", disable=not progress):
        image, target = dataset[index]
        visible = target["visible_masks"].bool()
        if visible_fn is not None and visible.shape[0]:
            visible = visible_fn(index, image, target)
            keep = visible.flatten(1).any(1)
            visible = visible[keep]
            target = {k: target[k][keep] for k in ("amodal_masks", "labels", "occlude_rate", "viewpoint")}
        if visible.shape[0] == 0:
            continue
        roi, rois = roi_inputs(image, visible, size, enlarge)
        n = visible.shape[0]
        amodal = crop(target["amodal_masks"].float()[:, None], rois, torch.arange(n), size)[:, 0] > 0.5
        roi[:, :3] = roi[:, :3] * 255.0
        out["roi"].append(roi.round().clamp(0, 255).to(torch.uint8).numpy())
        out["amodal"].append(amodal.to(torch.uint8).numpy())
        out["labels"].append(target["labels"].numpy())
        out["rois"].append(rois.numpy())
        out["image_index"].append(np.full(n, index))
        out["occlude_rate"].append(target["occlude_rate"].numpy())
        out["viewpoint"].append(target["viewpoint"].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


class InstanceRois(torch.utils.data.Dataset):
    """Cached instance ROIs of one split. ``dataset[i] -> (inputs, targets)`` with ``inputs`` a dict
    ``{"roi": (6, S, S) float, "labels": () int64}`` and ``targets`` ``{"amodal": (S, S) float}``."""

    def __init__(self, root: str | Path, split: str, size: int = 64, enlarge: float = 2.0,
                 progress: bool = True, limit_images: int | None = None, visible_fn: VisibleFn | None = None,
                 tag: str = ""):
        """``visible_fn`` (see :func:`compute_rois`) needs a ``tag`` naming it in the cache file."""
        if visible_fn is not None and not tag:
            raise ValueError("a visible_fn needs a tag for its cache file")
        root = Path(root)
        name = (f"rois_{split}_{size}_{enlarge:g}" + (f"_{tag}" if tag else "")
                + (f"_first{limit_images}" if limit_images else "") + ".npz")
        path = root / "cache" / name
        if path.is_file():
            with np.load(path) as data:
                self.arrays = {k: data[k] for k in data.files}
        else:
            dataset = AmodalDataset(root, split)
            if limit_images:
                dataset.images = dataset.images[:limit_images]
            self.arrays = compute_rois(dataset, size, enlarge, progress, visible_fn)
            buffer = io.BytesIO()
            np.savez(buffer, **self.arrays)
            atomic_write_bytes(path, buffer.getvalue())
        self.path = path

    def __len__(self) -> int:
        return len(self.arrays["labels"])

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        roi = torch.from_numpy(self.arrays["roi"][index].astype(np.float32))
        roi[:3] /= 255.0
        return ({"roi": roi, "labels": torch.tensor(int(self.arrays["labels"][index]))},
                {"amodal": torch.from_numpy(self.arrays["amodal"][index].astype(np.float32))})

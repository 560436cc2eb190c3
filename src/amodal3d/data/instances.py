"""Instance ROIs of a dataset split for the shape stage, computed once and cached.

``CACHE/rois_<split>_<size>_<enlarge>_<key>.npz`` holds uint8 arrays (RGB x 255, masks in {0, 1}) so
that training reads ROIs instead of decoding images and masks every epoch. ``CACHE`` is the caller's
folder (a training run's ``OUT/cache``), else ``$AMODAL3D_CACHE_DIR``, else nothing is cached; never a
folder inside the dataset. ``key`` digests the dataset folder and its annotation file (size, mtime and
content), so an edited annotation file is never answered from a stale cache."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amodal3d.categories import Relabel
from amodal3d.data.dataset import AmodalDataset, split_paths
from amodal3d.io import atomic_write_bytes
from amodal3d.roi import crop, roi_inputs

CACHE_VERSION = 1
CACHE_ENV = "AMODAL3D_CACHE_DIR"  # a folder for ROI caches of commands without an --out folder


def default_cache_dir() -> Path | None:
    """``$AMODAL3D_CACHE_DIR`` when set (and not empty), else None: nothing cached."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else None


def annotation_key(root: str | Path, split: str) -> str | None:
    """16 hex digits naming a split's annotation file as it is now (its dataset folder, size, mtime and
    SHA-256), or None when it cannot be read (the dataset then reports it)."""
    annotation_file, _ = split_paths(root, split)
    try:
        info = annotation_file.stat()
        content = annotation_file.read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(f"{CACHE_VERSION}|{Path(root).resolve()}|{info.st_size}|{info.st_mtime_ns}|".encode())
    digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()[:16]


def compute_rois(dataset: AmodalDataset, size: int, enlarge: float, progress: bool = True) -> dict[str, np.ndarray]:
    """ROIs of every instance: ``roi`` (N, 6, S, S) uint8, ``amodal`` (N, S, S) uint8 (the amodal mask
    cropped the same way: the refinement's target), ``labels`` (N,),
    ``rois`` (N, 4) xyxy, ``image_index`` (N,), ``occlude_rate`` (N,), ``viewpoint`` (N, 3)."""
    out: dict[str, list] = {k: [] for k in ("roi", "amodal", "labels", "rois", "image_index", "occlude_rate",
                                            "viewpoint")}
    for index in tqdm(range(len(dataset)), desc="rois", unit="img", disable=not progress):
        image, target = dataset[index]
        visible = target["visible_masks"].bool()
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
    ``{"roi": (6, S, S) float, "labels": () int64}`` and ``targets`` ``{"amodal": (S, S) float}``.
    ``labels`` are the model's labels (:class:`AmodalDataset`'s ``relabel``; default: the file's own
    categories in order)."""

    def __init__(self, root: str | Path, split: str, size: int = 64, enlarge: float = 2.0,
                 progress: bool = True, limit_images: int | None = None, cache_dir: str | Path | None = None,
                 relabel: Relabel | None = None):
        root = Path(root)
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        key = annotation_key(root, split) if cache_dir is not None else None
        path = None  # self.path: the cache file, None when not cached
        if key is not None:
            name = f"rois_{split}_{size}_{enlarge:g}" + (f"_first{limit_images}" if limit_images else "")
            if relabel is not None and not relabel.is_identity():  # labels of another taxonomy: a cache of their own
                name += f"_labels{relabel.digest()}"
            path = cache_dir / f"{name}_{key}.npz"
        if path is not None and path.is_file():
            with np.load(path) as data:
                self.arrays = {k: data[k] for k in data.files}
        else:
            dataset = AmodalDataset(root, split, relabel=relabel)
            if limit_images:
                dataset.images = dataset.images[:limit_images]
            self.arrays = compute_rois(dataset, size, enlarge, progress)
            if path is not None:
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

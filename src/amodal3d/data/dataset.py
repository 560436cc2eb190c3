"""Reading a generated (or converted) dataset: the annotation file and a torch ``Dataset``."""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from amodal3d.errors import DataError
from amodal3d.masks import decode_rle, xywh_to_xyxy

REQUIRED_IMAGE_KEYS = ("id", "file_name", "width", "height")
REQUIRED_ANNOTATION_KEYS = ("id", "image_id", "category_id", "amodal_segm", "visible_segm")


def load_annotation_file(path: str | Path) -> dict:
    """Read and check the structure of an annotation file; every problem is a :class:`DataError`
    naming the file (malformed JSON, missing sections or keys)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text (JSON) file") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    for section in ("images", "annotations", "categories"):
        if not isinstance(data.get(section), list):
            raise DataError(f"{path}: missing the list {section!r}")
    for kind, keys in (("images", REQUIRED_IMAGE_KEYS), ("annotations", REQUIRED_ANNOTATION_KEYS)):
        for item in data[kind]:
            missing = [k for k in keys if not isinstance(item, dict) or k not in item]
            if missing:
                ident = item.get("id", "?") if isinstance(item, dict) else "?"
                raise DataError(f"{path}: {kind[:-1]} id {ident} lacks {', '.join(missing)}")
    return data


def split_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of a split under a dataset root."""
    root = Path(root)
    return root / "annotations" / f"{split}.json", root / "images" / split


def resolve_image_path(image_dir: Path, file_name: str, annotation_file: Path | str = "") -> Path:
    """The image file of ``file_name`` inside ``image_dir``; refuses absolute paths and ``..``."""
    candidate = (image_dir / file_name).resolve()
    if Path(file_name).is_absolute() or not candidate.is_relative_to(image_dir.resolve()):
        raise DataError(f"{annotation_file}: file_name {file_name!r} points outside the image folder "
                        f"{image_dir}: refused")
    return candidate


MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before decoding (override: AMODAL3D_MAX_PIXELS)


def max_image_pixels() -> int:
    return int(os.environ.get("AMODAL3D_MAX_PIXELS", MAX_IMAGE_PIXELS))


def _open_quietly(path: Path) -> Image.Image:
    """``Image.open`` without PIL's decompression-bomb warning (:func:`read_image` has its own limit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def read_image(path: Path) -> np.ndarray:
    """Any PNG/JPEG (grey, RGBA, palette, 16-bit) -> uint8 RGB (H, W, 3). DataError naming the file.

    Images over :func:`max_image_pixels` are refused from their header, before any pixel is decoded."""
    try:
        with _open_quietly(path) as image:
            width, height = image.size
            if width * height > max_image_pixels():
                raise DataError(f"{path}: {width}x{height} image is over the {max_image_pixels():,}-pixel "
                                f"limit; downscale it or raise AMODAL3D_MAX_PIXELS")
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                array = array / max(array.max(), 1.0) * 255.0
                return np.repeat(array.astype(np.uint8)[..., None], 3, axis=2)
            return np.array(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot read the image ({error})") from None


class AmodalDataset(torch.utils.data.Dataset):
    """Images and targets of one split, in torchvision's detection convention.

    ``dataset[i] -> (image, target)``: ``image`` float32 (3, H, W) in [0, 1]; ``target`` with
    ``boxes`` (N, 4) float32 xyxy pixels and ``masks`` (N, H, W) uint8 of the ``target_masks`` kind
    (``"visible"`` for step 1, ``"amodal"`` for the amodal Mask R-CNN baseline), ``labels`` (N,) int64,
    ``amodal_masks``, ``visible_masks``, ``occluder_masks`` (N, H, W) uint8, ``amodal_boxes`` and
    ``visible_boxes`` (N, 4), ``viewpoint`` (N, 3) float32 (azimuth, elevation, distance; NaN where
    unknown), ``occlude_rate`` (N,), ``image_id`` int, ``area`` (N,), ``iscrowd`` (N,) int64.
    """

    def __init__(self, root: str | Path, split: str, target_masks: str = "visible",
                 annotation_file: str | Path | None = None, image_dir: str | Path | None = None):
        if target_masks not in ("visible", "amodal"):
            raise ValueError(f"target_masks must be 'visible' or 'amodal', not {target_masks!r}")
        default_ann, default_images = split_paths(root, split)
        self.annotation_file = Path(annotation_file or default_ann)
        self.image_dir = Path(image_dir or default_images)
        self.target_masks = target_masks
        self.data = load_annotation_file(self.annotation_file)
        self.images = self.data["images"]
        self.categories = self.data["categories"]
        self.by_image: dict[int, list[dict]] = defaultdict(list)
        for ann in self.data["annotations"]:
            self.by_image[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        return resolve_image_path(self.image_dir, self.images[index]["file_name"], self.annotation_file)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        info = self.images[index]
        image = read_image(self.image_path(index))
        anns = self.by_image.get(info["id"], [])
        h, w = image.shape[:2]

        def masks(key: str) -> torch.Tensor:
            if not anns:
                return torch.zeros((0, h, w), dtype=torch.uint8)
            stack = [decode_rle(a[key]) if key in a else np.zeros((h, w), bool) for a in anns]
            return torch.from_numpy(np.stack(stack).astype(np.uint8))

        def boxes(key: str) -> torch.Tensor:
            return torch.tensor([xywh_to_xyxy(a[key]) for a in anns], dtype=torch.float32).reshape(-1, 4)

        viewpoint = [[a["viewpoint"][k] for k in ("azimuth", "elevation", "distance")]
                     if "viewpoint" in a else [float("nan")] * 3 for a in anns]
        target = {
            "image_id": int(info["id"]),
            "labels": torch.tensor([a["category_id"] for a in anns], dtype=torch.int64),
            "amodal_masks": masks("amodal_segm"),
            "visible_masks": masks("visible_segm"),
            "occluder_masks": masks("occluder_segm"),
            "amodal_boxes": boxes("amodal_bbox"),
            "visible_boxes": boxes("visible_bbox"),
            "viewpoint": torch.tensor(viewpoint, dtype=torch.float32).reshape(-1, 3),
            "occlude_rate": torch.tensor([a.get("occlude_rate", 0.0) for a in anns], dtype=torch.float32),
            "area": torch.tensor([a.get("area", 0) for a in anns], dtype=torch.float32),
            "iscrowd": torch.tensor([a.get("iscrowd", 0) for a in anns], dtype=torch.int64),
        }
        target["masks"] = target[f"{self.target_masks}_masks"]
        target["boxes"] = target[f"{self.target_masks}_boxes"]
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
        return tensor, target


def collate(batch: list) -> tuple:
    """Detection-style collate: lists of images and targets (sizes may differ)."""
    return tuple(zip(*batch))

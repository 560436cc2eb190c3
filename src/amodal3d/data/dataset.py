"""Reading a generated (or converted) dataset: the annotation file and a torch ``Dataset``."""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from amodal3d.categories import Relabel, Taxonomy, identity
from amodal3d.data.schema import entry_name, id_problem, image_size_problem, is_id
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.masks import decode_rle, mask_to_bbox, rle_problems, xywh_to_xyxy
from amodal3d.roi import image_tensor

REQUIRED_IMAGE_KEYS = ("id", "file_name", "width", "height")
REQUIRED_ANNOTATION_KEYS = ("id", "image_id", "category_id", "amodal_segm", "visible_segm")
MASK_KEYS = ("amodal_segm", "visible_segm", "occluder_segm")  # occluder_segm is optional
BOX_KEYS = ("bbox", "amodal_bbox", "visible_bbox")
NUMBER_KEYS = ("area", "visible_area", "occlude_rate")
VIEWPOINT_KEYS = ("azimuth", "elevation", "distance")


_JSON_NUMBER = frozenset((int, float))  # exact types: json never makes subclasses, and bool is not one


def _is_box(box: object) -> bool:
    """A box [x, y, width, height] of 4 finite JSON numbers (unrolled: it runs for every annotation)."""
    if type(box) is not list or len(box) != 4:
        return False
    x, y, w, h = box
    number, finite = _JSON_NUMBER, math.isfinite
    return (type(x) in number and type(y) in number and type(w) in number and type(h) in number
            and finite(x) and finite(y) and finite(w) and finite(h))


def _annotation_problem(ann: dict) -> str | None:
    """What is wrong with the non-mask fields of an annotation that readers use, or None."""
    for key in ("id", "image_id", "category_id"):
        if not is_id(ann[key]):
            return id_problem(ann, key)
    for key in BOX_KEYS:
        if key in ann and not _is_box(ann[key]):
            return f"{key} {ann[key]!r} is not a box [x, y, width, height] of 4 finite numbers"
    for key in BOX_KEYS:
        if key in ann and (ann[key][2] < 0 or ann[key][3] < 0):
            return f"{key} {ann[key]!r} has a negative width or height"
    for key in NUMBER_KEYS:
        if key in ann and type(ann[key]) not in _JSON_NUMBER:
            return f"{key} {ann[key]!r} is not a number"
        if key in ann and not (0 <= ann[key] <= (1 if key == "occlude_rate" else math.inf)):
            return f"{key} {ann[key]!r} is out of range ({'0 to 1' if key == 'occlude_rate' else 'at least 0'})"
    if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
        return f"iscrowd {ann['iscrowd']!r} is not 0 or 1"
    if "viewpoint" in ann:
        view = ann["viewpoint"]
        if not (type(view) is dict and type(view.get("azimuth")) in _JSON_NUMBER
                and type(view.get("elevation")) in _JSON_NUMBER and type(view.get("distance")) in _JSON_NUMBER):
            return f"viewpoint {view!r} is not an object of numbers {', '.join(VIEWPOINT_KEYS)}"
    return None


def check_annotations(annotations: list[dict], sizes: dict[int, tuple[int, int]], annotation_file: Path | str = "",
                      masks: bool = True) -> None:
    """Raise a :class:`DataError` naming the file and the annotation for the first annotation whose
    fields are of the wrong type (ids, boxes, numbers, viewpoint) or, with ``masks``, whose RLE masks
    pycocotools must not see (:func:`amodal3d.masks.rle_problems`, run lengths included; checked in
    one batch against the size of their image, ``sizes[image_id] = (height, width)``)."""
    items, owners = [], []
    for ann in annotations:
        problem = _annotation_problem(ann)
        if problem:
            raise DataError(f"{annotation_file}: {entry_name('annotation', ann)}: {problem}")
        if masks:
            size = sizes.get(ann["image_id"])
            for key in MASK_KEYS:
                if key in ann:
                    items.append((ann[key], size))
                    owners.append((ann, key))
    for problem, (ann, key) in zip(rle_problems(items), owners):
        if problem:
            raise DataError(f"{annotation_file}: image {ann['image_id']}, annotation {ann['id']}: {key} {problem}")


def _non_finite_where(data: dict) -> str:
    """Where the first NaN / infinite number of an annotation file is: ``image 3: camera.K.0.0``."""
    def find(value, where):
        if isinstance(value, float) and not math.isfinite(value):
            return where
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            found = find(item, (*where, str(key)))
            if found is not None:
                return found
        return None

    for section, kind in (("images", "image"), ("annotations", "annotation"), ("categories", "category")):
        for entry in data.get(section) if isinstance(data.get(section), list) else ():
            found = find(entry, ())
            if found is not None:
                return f"{entry_name(kind, entry)}: {'.'.join(found)}"
    found = find(data, ())
    return ".".join(found) if found else "a number"


def load_annotation_file(path: str | Path, checks: str = "all") -> dict:
    """Read and check an annotation file; every problem is a :class:`DataError` naming the file and
    the entry: malformed JSON, missing sections or keys, ids that are not integers, image sizes that
    are not positive integers (or over :func:`max_image_pixels`), file names and category names that
    are not strings, and (:func:`check_annotations`) boxes, numbers and viewpoints of the wrong type
    and masks that pycocotools must not see.

    ``checks``: ``"all"``; ``"no-masks"`` leaves the masks out (``validate`` names each mask problem as
    a violation of its own); ``"ids"`` checks the images, the categories and the ids of the
    annotations only, leaving the rest of each annotation to :func:`check_annotations` when its image
    is read (as :class:`AmodalDataset` does: checking every RLE's run lengths costs about as much as
    reading the JSON)."""
    if checks not in ("all", "no-masks", "ids"):
        raise ValueError(f"checks must be 'all', 'no-masks' or 'ids', not {checks!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    non_finite = []  # NaN / Infinity / -Infinity: JSON extensions, never a valid value of the schema
    try:
        data = json.loads(path.read_text(), parse_constant=lambda name: non_finite.append(name) or float(name))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text (JSON) file") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    if non_finite:
        raise DataError(f"{path}: {_non_finite_where(data)}: {non_finite[0]} is not a finite number")
    for section in ("images", "annotations", "categories"):
        if not isinstance(data.get(section), list):
            raise DataError(f"{path}: missing the list {section!r}")
    for kind, keys in (("images", REQUIRED_IMAGE_KEYS), ("annotations", REQUIRED_ANNOTATION_KEYS),
                       ("categories", ("id",))):
        for item in data[kind]:
            missing = [k for k in keys if not isinstance(item, dict) or k not in item]
            if missing:
                ident = item.get("id", "?") if isinstance(item, dict) else "?"
                raise DataError(f"{path}: {kind[:-1].replace('categorie', 'category')} id {ident} lacks "
                                f"{', '.join(missing)}")
    limit = max_image_pixels()
    sizes: dict[int, tuple[int, int]] = {}
    for image in data["images"]:
        ident, width, height = image["id"], image["width"], image["height"]
        if not (is_id(ident) and type(width) is int and type(height) is int and width > 0 and height > 0
                and width * height <= limit and type(image["file_name"]) is str):  # JSON types: exact
            problem = id_problem(image) or image_size_problem(image, limit) or (
                f"file_name {image['file_name']!r} is not a string")
            raise DataError(f"{path}: {entry_name('image', image)}: {problem}")
        sizes[ident] = (height, width)
    for category in data["categories"]:
        problem = id_problem(category) or (None if isinstance(category.get("name", ""), str)
                                           else f"name {category['name']!r} is not a string")
        if problem:
            raise DataError(f"{path}: {entry_name('category', category)}: {problem}")
    if checks == "ids":
        for ann in data["annotations"]:
            if not (is_id(ann["id"]) and is_id(ann["image_id"]) and is_id(ann["category_id"])):
                raise DataError(f"{path}: {entry_name('annotation', ann)}: {_annotation_problem(ann)}")
    else:
        check_annotations(data["annotations"], sizes, path, masks=checks == "all")
    return data


def decode_annotation_masks(anns: list[dict], height: int, width: int,
                            keys: tuple[str, ...] = MASK_KEYS) -> dict[str, np.ndarray]:
    """The masks of one image's annotations, per key (e.g. ``visible_segm``), as bool (N, H, W)
    arrays. The RLEs must have been checked (:func:`check_annotations`: pycocotools crashes on bad
    ones); an annotation without a key gets an empty mask."""
    out = {}
    for key in keys:
        out[key] = np.zeros((len(anns), height, width), bool)
        for i, ann in enumerate(anns):
            if key in ann:
                out[key][i] = decode_rle(ann[key], check=False)
    return out


def split_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of a split under a dataset root; the split is a plain name."""
    from amodal3d.paths import check_split_name

    check_split_name(split, "split")
    root = Path(root)
    return root / "annotations" / f"{split}.json", root / "images" / split


def resolve_image_path(image_dir: Path, file_name: str, annotation_file: Path | str = "") -> Path:
    """The image file of ``file_name`` inside ``image_dir``; refuses absolute paths and ``..``."""
    if not isinstance(file_name, str) or not file_name or "\0" in file_name:
        raise DataError(f"{annotation_file}: file_name {file_name!r} is not a file name")
    candidate = (image_dir / file_name).resolve()
    if Path(file_name).is_absolute() or not candidate.is_relative_to(image_dir.resolve()):
        raise DataError(f"{annotation_file}: file_name {file_name!r} points outside the image folder "
                        f"{image_dir}: refused")
    try:
        folder = candidate == image_dir.resolve() or candidate.is_dir()
    except OSError:  # a name too long, say: reading the image reports it
        folder = False
    if folder:
        raise DataError(f"{annotation_file}: file_name {file_name!r} names a folder, not an image file")
    return candidate


MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before decoding (override: AMODAL3D_MAX_PIXELS)


def max_image_pixels() -> int:
    """The largest image (in pixels) read: ``AMODAL3D_MAX_PIXELS`` if set (a positive integer, else an
    :class:`Amodal3dError` naming the variable), otherwise :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get("AMODAL3D_MAX_PIXELS")
    if text is None:
        return MAX_IMAGE_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise Amodal3dError(f"AMODAL3D_MAX_PIXELS={text!r} is not a positive integer (the largest image, in "
                            f"pixels, that amodal3d reads; unset it for the default {MAX_IMAGE_PIXELS:,})")
    return value


def _open_quietly(path: Path) -> Image.Image:
    """``Image.open`` without PIL's decompression-bomb warning (:func:`read_image` has its own limit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _scaled_to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """A 32-bit float single-channel image -> uint8 RGB: values in [0, 1] times 255, any other range
    scaled by its maximum (as 16-bit images are); negatives clip to 0; NaN or infinity is refused."""
    array = np.asarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise DataError(f"{path}: the image holds NaN or infinite pixel values")
    top = float(array.max()) if array.size else 0.0
    scale = 255.0 if top <= 1.0 else 255.0 / top
    grey = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def read_image(path: Path) -> np.ndarray:
    """Any PNG/JPEG/TIFF (grey, RGBA, palette, 16-bit, 32-bit float) -> uint8 RGB (H, W, 3). DataError
    naming the file. 16/32-bit integer images are scaled by their maximum; float images with values in
    [0, 1] times 255, others by their maximum; an image holding NaN is refused.

    Images over :func:`max_image_pixels` are refused from their header, before any pixel is decoded."""
    limit = max_image_pixels()  # a bad AMODAL3D_MAX_PIXELS is its own error, not the image's
    try:
        with _open_quietly(path) as image:
            width, height = image.size
            if width * height > limit:
                raise DataError(f"{path}: {width}x{height} image is over the {limit:,}-pixel "
                                f"limit; downscale it or raise AMODAL3D_MAX_PIXELS")
            image.load()
            if image.mode == "F":
                return _scaled_to_uint8(np.asarray(image, dtype=np.float32), path)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                array = np.clip(array, 0, None) / max(array.max(), 1.0) * 255.0
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

    ``labels`` are the model's contiguous labels 1..N, not category ids: ``relabel`` (default: the file's
    own ``categories``, label k = its k-th category, so ids 1..13 of generated data stay 1..13) says how
    each category id becomes a label of the model's taxonomy (``self.taxonomy``); annotations of a
    category it leaves out (label 0) are dropped. ``self.source_taxonomy`` is the file's own.
    """

    def __init__(self, root: str | Path, split: str, target_masks: str = "visible",
                 annotation_file: str | Path | None = None, image_dir: str | Path | None = None,
                 relabel: Relabel | None = None):
        if target_masks not in ("visible", "amodal"):
            raise ValueError(f"target_masks must be 'visible' or 'amodal', not {target_masks!r}")
        default_ann, default_images = split_paths(root, split)
        self.annotation_file = Path(annotation_file or default_ann)
        self.image_dir = Path(image_dir or default_images)
        self.target_masks = target_masks
        # each annotation's fields and masks are checked when its image is read (check_annotations)
        self.data = load_annotation_file(self.annotation_file, checks="ids")
        self.images = self.data["images"]
        self.categories = self.data["categories"]
        self.source_taxonomy = Taxonomy.from_coco(self.categories, f"{self.annotation_file}: categories")
        self._index(relabel if relabel is not None else identity(self.source_taxonomy))

    def _index(self, relabel: Relabel) -> None:
        """Labels of ``relabel`` and the annotations it keeps, by image."""
        self.relabel = relabel
        self.taxonomy = relabel.taxonomy
        self.labels = relabel.label_table()  # category id -> label (0: left out)
        self.by_image: dict[int, list[dict]] = defaultdict(list)
        for ann in self.data["annotations"]:
            label = self.labels.get(ann["category_id"])
            if label is None:
                raise DataError(f"{self.annotation_file}: {entry_name('annotation', ann)}: category_id "
                                f"{ann['category_id']} is not one of the file's categories "
                                f"({self.source_taxonomy.describe()})")
            if label:
                self.by_image[ann["image_id"]].append(ann)

    def relabelled(self, relabel: Relabel) -> AmodalDataset:
        """This dataset with the labels of ``relabel`` (the file is not read again)."""
        other = copy.copy(self)
        other._index(relabel)
        return other

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        image = self.images[index]
        return resolve_image_path(self.image_dir, image["file_name"], f"{self.annotation_file}: image {image['id']}")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        info = self.images[index]
        path = self.image_path(index)
        image = read_image(path)
        anns = self.by_image.get(info["id"], [])
        h, w = image.shape[:2]
        if (w, h) != (info["width"], info["height"]):
            raise DataError(f"{self.annotation_file}: image {info['id']}: {path} is {w}x{h}, the annotation "
                            f"says {info['width']}x{info['height']}")
        check_annotations(anns, {info["id"]: (h, w)}, self.annotation_file)
        decoded = decode_annotation_masks(anns, h, w)

        def masks(key: str) -> torch.Tensor:
            return torch.from_numpy(decoded[key].astype(np.uint8))

        def boxes(key: str) -> torch.Tensor:  # a box the file lacks is the tight box of its mask
            mask_key = "visible_segm" if key == "visible_bbox" else "amodal_segm"
            rows = [a[key] if key in a else mask_to_bbox(decoded[mask_key][i]) for i, a in enumerate(anns)]
            return torch.tensor([xywh_to_xyxy(b) for b in rows], dtype=torch.float32).reshape(-1, 4)

        viewpoint = [[a["viewpoint"][k] for k in ("azimuth", "elevation", "distance")]
                     if "viewpoint" in a else [float("nan")] * 3 for a in anns]
        target = {
            "image_id": int(info["id"]),
            "labels": torch.tensor([self.labels[a["category_id"]] for a in anns], dtype=torch.int64),
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
        return image_tensor(image), target


def collate(batch: list) -> tuple:
    """Detection-style collate: lists of images and targets (sizes may differ)."""
    return tuple(zip(*batch))

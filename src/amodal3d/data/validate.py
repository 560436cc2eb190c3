"""``amodal3d validate``: check every invariant of a dataset and name each violation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from amodal3d.data.dataset import load_annotation_file, resolve_image_path, split_paths
from amodal3d.errors import DataError
from amodal3d.masks import box_contains_mask, decode_rle, rle_problems

MASK_KEYS = ("amodal_segm", "visible_segm", "occluder_segm")


@dataclass(frozen=True)
class Violation:
    file: str
    image_id: int | None
    annotation_id: int | None
    problem: str

    def __str__(self) -> str:
        where = [f"image {self.image_id}" if self.image_id is not None else "",
                 f"annotation {self.annotation_id}" if self.annotation_id is not None else ""]
        return f"{self.file}: {', '.join(w for w in where if w) or 'file'}: {self.problem}"


def _mask_problems(annotations: list[dict], sizes: dict[int, tuple[int, int]]) -> dict[tuple[int, str], str | None]:
    """What keeps each mask of each annotation of a known image from being decoded, keyed by
    (annotation index, key), or None when it may be decoded (:func:`amodal3d.masks.rle_problems`, all
    checked in one batch). A missing optional ``occluder_segm`` is left out."""
    items, keys = [], []
    for index, ann in enumerate(annotations):
        size = sizes.get(ann["image_id"])
        if size is None:
            continue
        for key in MASK_KEYS:
            if key == "occluder_segm" and key not in ann:
                continue
            items.append((ann.get(key), size))
            keys.append((index, key))
    return {where: problem and f"{where[1]} {problem}" for where, problem in zip(keys, rle_problems(items))}


def validate_split(annotation_file: Path, image_dir: Path, check_images: bool = True) -> list[Violation]:
    """Every violation of the schema's invariants in one annotation file."""
    name = str(annotation_file)
    try:
        data = load_annotation_file(annotation_file, checks="no-masks")  # mask problems: one violation each
    except DataError as error:
        return [Violation(name, None, None, str(error).removeprefix(f"{name}: "))]
    out: list[Violation] = []
    add = lambda img, ann, problem: out.append(Violation(name, img, ann, problem))  # noqa: E731

    category_ids = {c.get("id") for c in data["categories"]}
    for key, items in (("image", data["images"]), ("annotation", data["annotations"])):
        for ident, count in Counter(i["id"] for i in items).items():
            if count > 1:
                add(ident if key == "image" else None, ident if key == "annotation" else None,
                    f"duplicate {key} id ({count} times)")
    images = {im["id"]: im for im in data["images"]}
    for im in data["images"]:
        try:
            path = resolve_image_path(image_dir, im["file_name"], annotation_file)
        except DataError as error:
            add(im["id"], None, str(error).removeprefix(f"{name}: "))
            continue
        if not check_images:
            continue
        if not path.is_file():
            add(im["id"], None, f"image file {path} does not exist")
            continue
        try:
            with Image.open(path) as handle:
                width, height = handle.size
        except Exception as error:
            add(im["id"], None, f"image file {path} cannot be read ({error})")
            continue
        if (width, height) != (im["width"], im["height"]):
            add(im["id"], None, f"image file {path} is {width}x{height}, annotation says "
                                f"{im['width']}x{im['height']}")

    mask_problems = _mask_problems(data["annotations"], {i: (im["height"], im["width"]) for i, im in images.items()})
    for index, ann in enumerate(data["annotations"]):
        img_id, ann_id = ann["image_id"], ann["id"]
        if ann["category_id"] not in category_ids:
            add(img_id, ann_id, f"unknown category id {ann['category_id']}")
        if img_id not in images:
            add(img_id, ann_id, "refers to an image id that is not in 'images'")
            continue
        masks = {}
        for key in MASK_KEYS:
            if (index, key) not in mask_problems:
                continue
            problem = mask_problems[index, key]
            if problem:
                add(img_id, ann_id, problem)
            else:
                masks[key] = decode_rle(ann[key], check=False)
        amodal, visible = masks.get("amodal_segm"), masks.get("visible_segm")
        if amodal is None or visible is None:
            continue
        if (visible & ~amodal).any():
            add(img_id, ann_id, f"visible mask is not inside the amodal mask "
                                f"({int((visible & ~amodal).sum())} pixels outside)")
        area = int(amodal.sum())
        if area == 0:
            add(img_id, ann_id, "empty amodal mask")
            continue
        if "area" in ann and abs(ann["area"] - area) > 0.5:
            add(img_id, ann_id, f"area {ann['area']} but the amodal mask has {area} pixels")
        if "occlude_rate" in ann:
            expected = 1.0 - int((visible & amodal).sum()) / area
            if abs(ann["occlude_rate"] - expected) > 1e-3:
                add(img_id, ann_id, f"occlude_rate {ann['occlude_rate']:.4f} but the masks give {expected:.4f}")
        for box_key, mask in (("amodal_bbox", amodal), ("bbox", amodal), ("visible_bbox", visible)):
            if box_key in ann and not box_contains_mask(ann[box_key], mask):
                add(img_id, ann_id, f"{box_key} {ann[box_key]} does not contain its mask")
    return out


def validate_dataset(root: str | Path, splits: list[str] | None = None,
                     check_images: bool = True) -> tuple[list[str], list[Violation]]:
    """Validate the given splits (default: every ``annotations/*.json``). Returns (splits, violations)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if splits is None:
        splits = sorted(p.stem for p in (root / "annotations").glob("*.json"))
        if not splits:
            raise DataError(f"{root}: no annotation files under {root / 'annotations'}")
    else:
        for split in splits:
            split_paths(root, split)  # a plain name: refused before anything is read
    violations: list[Violation] = []
    for split in splits:
        violations += validate_split(root / "annotations" / f"{split}.json", root / "images" / split,
                                     check_images)
    return splits, violations

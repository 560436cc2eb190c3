"""Readers for the public amodal datasets, converting to the amodal3d schema (docs/schema.md):
native COCOA (``regions`` per image), KINS (``a_segm``/``i_segm``/``a_bbox``/``i_bbox``) and
D2SA / COCOA-cls (``segmentation`` = amodal, ``visible_mask`` = visible)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from amodal3d.data.dataset import load_annotation_file, max_image_pixels, resolve_image_path
from amodal3d.data.schema import entry_name, id_problem, image_size_problem, is_id, is_int, is_number
from amodal3d.errors import DataError
from amodal3d.masks import encode_rle, mask_to_bbox, segmentation_problem, segmentation_to_mask
from amodal3d.paths import check_regular_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _read_json(path: Path):
    check_regular_file(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text (JSON) file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None


def segmentation_mask(value, height: int, width: int, where: str) -> np.ndarray:
    """COCO segmentation (polygons or RLE) -> bool mask (H, W). Everything pycocotools would crash on
    or decode wrong (NaN or far-away polygon coordinates, RLE counts that do not cover the mask, a size
    other than the image's, ...; :func:`amodal3d.masks.segmentation_problem`) is a DataError
    ``WHERE: PROBLEM`` before it sees it."""
    problem = segmentation_problem(value, height, width)
    if problem is not None:
        raise DataError(f"{where}: {problem}")
    return segmentation_to_mask(value, height, width, check=False)


def _number(value, where: str, what: str) -> float:
    """A finite number, or a string holding one (native COCOA writes ``"order": "1"``)."""
    try:
        number = float(value) if is_number(value) or isinstance(value, str) else None
    except (ValueError, OverflowError):
        number = None
    if number is None or not math.isfinite(number):
        raise DataError(f"{where}: {what} {value!r} is not a finite number")
    return number


def _image_size(path: Path, where: str) -> tuple[int, int]:
    """(width, height) of an image from its header; DataError naming it when unreadable or too large."""
    try:
        with Image.open(path) as handle:
            width, height = handle.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{where}: cannot read the image {path} ({error})") from None
    limit = max_image_pixels()
    if width * height > limit:
        raise DataError(f"{where}: {path} is a {width}x{height} image, over the {limit:,}-pixel limit; "
                        f"downscale it or raise AMODAL3D_MAX_PIXELS")
    return width, height


def _occluders(visible: list[np.ndarray], amodal: list[np.ndarray], order: list[float]) -> list[np.ndarray]:
    """Occluder mask of each instance: union of the visible masks of nearer instances (smaller
    ``order``) that cover a hidden part of it; visible masks are first clipped to their amodal masks
    (annotators' visible masks may stray a pixel outside, as :func:`_annotation` clips them too)."""
    visible = [v & a for v, a in zip(visible, amodal)]
    out = []
    for i in range(len(amodal)):
        hidden = amodal[i] & ~visible[i]
        occ = np.zeros_like(amodal[i])
        for j in range(len(amodal)):
            if j != i and order[j] < order[i] and (visible[j] & hidden).any():
                occ |= visible[j]
        out.append(occ)
    return out


def _annotation(ann_id: int, image_id: int, category_id: int, amodal: np.ndarray, visible: np.ndarray,
                occluder: np.ndarray, **extra) -> dict:
    visible = visible & amodal  # annotators' visible masks may stray a pixel outside
    area = int(amodal.sum())
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
            "segmentation": encode_rle(amodal), "amodal_segm": encode_rle(amodal),
            "visible_segm": encode_rle(visible), "occluder_segm": encode_rle(occluder),
            "bbox": mask_to_bbox(amodal), "amodal_bbox": mask_to_bbox(amodal),
            "visible_bbox": mask_to_bbox(visible), "area": area, "visible_area": int(visible.sum()),
            "occlude_rate": round(1.0 - int(visible.sum()) / max(area, 1), 6), **extra}


def _category_table(names: list[str], class_agnostic: bool) -> dict[str, int]:
    if class_agnostic:
        return {n: 1 for n in names}
    return {n: i + 1 for i, n in enumerate(sorted(set(names)))}


def _cocoa_records(source: Path) -> list[tuple[Path, dict, bool]]:
    """(file, record, whether the record has a file of its own) of every native COCOA record."""
    if source.is_dir():
        paths = sorted(source.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
        return [(p, r, True) for p in paths for r in [_read_json(p)] if isinstance(r, dict) and "regions" in r]
    data = _read_json(source)
    if isinstance(data, dict) and "regions" in data:  # one per-image file
        return [(source, data, True)]
    raw = data.get("annotations") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise DataError(f"{source}: expected COCOA records: a list, or an object whose 'annotations' is a list")
    return [(source, r, False) for r in raw if isinstance(r, dict) and "regions" in r]


def _check_cocoa_record(path: Path, record: dict, image_id: object) -> None:
    """Refuse a native COCOA record that would convert wrong or crash (regions, names, ids)."""
    if not is_int(image_id):
        raise DataError(f"{path}: image_id {image_id!r} is not an integer id")
    if not (is_id(image_id * 1000 - 999) and is_id(image_id * 1000 + 999)):  # annotation ids derive from it
        raise DataError(f"{path}: image_id {image_id!r} is out of range (below 2**53 / 1000 in size)")
    regions = record["regions"]
    if not isinstance(regions, list):
        raise DataError(f"{path}: image {image_id}: regions is not a list")
    if len(regions) > 999:  # annotation ids are image_id * 1000 + region number
        raise DataError(f"{path}: image {image_id} has {len(regions)} regions, more than 999")
    for k, region in enumerate(regions):
        where = f"{path}: image {image_id} region {k + 1}"
        if not isinstance(region, dict):
            raise DataError(f"{where}: not an object")
        if "segmentation" not in region:
            raise DataError(f"{where}: lacks 'segmentation' (its amodal polygon)")
        if not isinstance(region.get("name", "object"), str):
            raise DataError(f"{where}: name {region['name']!r} is not a string")
        if region.get("isStuff", 0) not in (0, 1, "0", "1"):
            raise DataError(f"{where}: isStuff {region['isStuff']!r} is not 0 or 1")


def read_cocoa_native(source: Path, class_agnostic: bool = False) -> dict:
    """Native COCOA: a folder of per-image JSON files (``regions``) beside their images, one such file,
    or one JSON file holding a list of such records (``annotations``). Categories come from region
    names. A region without ``visible_mask`` is unoccluded (COCOA writes the visible mask only for
    occluded regions): its visible mask is its amodal mask."""
    records = _cocoa_records(source)
    if not records:
        raise DataError(f"{source}: no COCOA records (objects with 'regions') found")
    image_dir = source if source.is_dir() else source.parent
    image_ids, seen = [], set()
    for index, (path, record, _) in enumerate(records):
        image_id = record.get("image_id", index + 1)
        _check_cocoa_record(path, record, image_id)
        if image_id in seen:
            raise DataError(f"{path}: duplicate image id {image_id}")
        seen.add(image_id)
        image_ids.append(image_id)
    names = [reg.get("name", "object").strip().lower() for _, r, _ in records for reg in r["regions"]]
    cat_ids = _category_table(names, class_agnostic)
    images, annotations = [], []
    for (path, record, own_file), image_id in zip(records, image_ids):
        file_name = _find_image(image_dir, path, record, own_file)
        width, height = _image_size(image_dir / file_name, f"{path}: image {image_id}")
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        regions = record["regions"]
        where = [f"{path}: image {image_id} region {k + 1}" for k in range(len(regions))]
        amodal = [segmentation_mask(r["segmentation"], height, width, w) for r, w in zip(regions, where)]
        visible = [segmentation_mask(r["visible_mask"], height, width, f"{w} (visible_mask)")
                   if "visible_mask" in r else a for r, a, w in zip(regions, amodal, where)]
        order = [_number(r.get("order", k + 1), w, "order") for k, (r, w) in enumerate(zip(regions, where))]
        for k, (r, a, v, o) in enumerate(zip(regions, amodal, visible, _occluders(visible, amodal, order))):
            name = r.get("name", "object").strip().lower()
            annotations.append(_annotation(image_id * 1000 + k + 1, image_id, cat_ids[name], a, v, o,
                                           depth_order=int(order[k]), isStuff=int(r.get("isStuff", 0))))
    if class_agnostic:
        categories = [{"id": 1, "name": "object", "supercategory": "cocoa"}]
    else:
        categories = [{"id": i, "name": n, "supercategory": "cocoa"} for n, i in sorted(cat_ids.items(),
                                                                                       key=lambda x: x[1])]
    return {"images": images, "annotations": annotations, "categories": categories}


def _find_image(image_dir: Path, path: Path, record: dict, own_file: bool) -> str:
    """The image of a COCOA record: ``STEM.jpg``/``.png`` beside its own JSON file, else its
    ``file_name``, else the last part of its ``url``; never a path outside ``image_dir``."""
    names = [f"{path.stem}{suffix}" for suffix in IMAGE_SUFFIXES] if own_file else []
    for key in ("file_name", "url"):
        value = record.get(key)
        if isinstance(value, str) and value.rsplit("/", 1)[-1]:
            names.append(value if key == "file_name" else value.rsplit("/", 1)[-1])
    for name in names:
        if resolve_image_path(image_dir, name, path).is_file():
            return name
    tried = ", ".join(names) or "no file_name or url"
    raise DataError(f"{path}: image {record.get('image_id', '?')}: no image found in {image_dir} ({tried})")


def read_coco_style(source: Path, amodal_key: str, visible_key: str, visible_required: bool = True) -> dict:
    """KINS (``a_segm``/``i_segm``, both required) or D2SA/COCOA-cls (``segmentation``/``visible_mask``):
    a COCO file whose annotations carry an amodal and a visible segmentation (polygons or RLE). With
    ``visible_required=False`` (D2SA, COCOA-cls: they write ``visible_mask`` only for occluded
    objects) an annotation without a visible mask (or with null) is unoccluded: visible = amodal."""
    data = _read_json(source)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                              for k in ("images", "annotations", "categories")):
        raise DataError(f"{source}: expected a COCO file with images, annotations and categories")
    _check_coco(source, data)
    images = {im["id"]: im for im in data["images"]}
    per_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if ann["image_id"] not in images:
            raise DataError(f"{source}: annotation {ann['id']} refers to unknown image {ann['image_id']}")
        if amodal_key not in ann:
            raise DataError(f"{source}: annotation {ann['id']} lacks {amodal_key} (its amodal segmentation)")
        if visible_required and visible_key not in ann:
            raise DataError(f"{source}: annotation {ann['id']} lacks {visible_key} (its visible segmentation)")
        per_image.setdefault(ann["image_id"], []).append(ann)
    out = []
    for image_id, anns in per_image.items():
        im = images[image_id]
        h, w = im["height"], im["width"]
        where = [f"{source}: annotation {a['id']}" for a in anns]
        amodal = [segmentation_mask(a[amodal_key], h, w, f"{wh} ({amodal_key})") for a, wh in zip(anns, where)]
        visible = [segmentation_mask(a[visible_key], h, w, f"{wh} ({visible_key})")
                   if visible_required or a.get(visible_key) is not None else m
                   for a, m, wh in zip(anns, amodal, where)]
        # Without a depth order, an instance's occluders are those whose visible mask covers its
        # hidden part.
        order = [_number(a.get("ico_id", a.get("order", 0)), wh, "ico_id" if "ico_id" in a else "order")
                 for a, wh in zip(anns, where)]
        if len(set(order)) <= 1:
            order = [float(v.sum() / max(m.sum(), 1)) * -1.0 for v, m in zip(visible, amodal)]
        for a, am, vi, oc in zip(anns, amodal, visible, _occluders(visible, amodal, order)):
            out.append(_annotation(a["id"], image_id, a["category_id"], am, vi, oc))
    return {"images": list(images.values()), "annotations": out, "categories": data["categories"]}


def _check_coco(source: Path, data: dict) -> None:
    """Refuse what would convert silently wrong or crash: entries that are not objects, missing keys,
    ids that are not integers, image sizes that are not positive integers (or over the pixel limit),
    duplicate ids, unknown category ids, file names outside the image folder."""
    limit = max_image_pixels()
    for kind, required in (("images", ("id", "file_name", "height", "width")),
                           ("annotations", ("id", "image_id", "category_id")), ("categories", ("id",))):
        singular = kind[:-1].replace("categorie", "category")
        seen = set()
        for entry in data[kind]:
            if not isinstance(entry, dict):
                raise DataError(f"{source}: an entry of {kind} is {entry!r}, not an object")
            missing = [k for k in required if k not in entry]
            if missing:
                raise DataError(f"{source}: an entry of {kind} lacks {', '.join(missing)}")
            problems = [id_problem(entry, k) for k in ("id", "image_id", "category_id") if k in required]
            if kind == "images":
                problems += [image_size_problem(entry, limit), None if isinstance(entry["file_name"], str)
                             else f"file_name {entry['file_name']!r} is not a string"]
            problem = next((p for p in problems if p), None)
            if problem:
                raise DataError(f"{source}: {entry_name(singular, entry)}: {problem}")
            if entry["id"] in seen:
                raise DataError(f"{source}: duplicate {singular} id {entry['id']}")
            seen.add(entry["id"])
    known = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        if ann["category_id"] not in known:
            raise DataError(f"{source}: annotation {ann['id']} has unknown category id {ann['category_id']}")
    for image in data["images"]:  # relative to any folder: absolute paths and ".." are refused
        resolve_image_path(source.parent, image["file_name"], source)


def detect_format(source: Path) -> str:
    """``cocoa`` (native), ``kins``, ``d2sa`` or ``amodal3d`` from the content of ``source``."""
    if source.is_dir():
        return "cocoa"
    data = _read_json(source)
    if isinstance(data, list) or (isinstance(data, dict) and "regions" in data):
        return "cocoa"
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list) or not anns:
        raise DataError(f"{source}: no annotations found")
    first = anns[0]
    if not isinstance(first, dict):
        raise DataError(f"{source}: the first annotation is {first!r}, not an object")
    if "regions" in first:
        return "cocoa"
    if "a_segm" in first:
        return "kins"
    if "amodal_segm" in first:
        return "amodal3d"
    if "visible_mask" in first or "segmentation" in first:
        return "d2sa"
    raise DataError(f"{source}: unknown annotation layout (keys {sorted(first)})")


def convert(source: str | Path, fmt: str = "auto", class_agnostic: bool = False) -> dict:
    """Read ``source`` in any supported layout and return a dataset in the amodal3d schema."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: not found")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "cocoa":
        return read_cocoa_native(source, class_agnostic)
    if fmt == "kins":
        return read_coco_style(source, "a_segm", "i_segm")
    if fmt == "d2sa":
        return read_coco_style(source, "segmentation", "visible_mask", visible_required=False)
    if fmt == "amodal3d":
        return load_annotation_file(source)
    raise DataError(f"unknown format {fmt!r}: use auto, cocoa, kins or d2sa")

"""Readers for the public amodal datasets, converting to the amodal3d schema (DESIGN.md):
native COCOA (``regions`` per image), KINS (``a_segm``/``i_segm``/``a_bbox``/``i_bbox``) and
D2SA / COCOA-cls (``segmentation`` = amodal, ``visible_mask`` = visible)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from amodal3d.data.dataset import resolve_image_path
from amodal3d.errors import DataError
from amodal3d.masks import decode_rle, encode_rle, mask_to_bbox, polygons_to_mask

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None


def _polygons(value, where: str) -> list[list[float]]:
    """A COCO polygon list (or one flat polygon); each polygon needs >= 3 points."""
    if value and not isinstance(value[0], (list, tuple)):
        value = [value]
    for poly in value:
        if len(poly) < 6 or len(poly) % 2:
            raise DataError(f"{where}: a polygon with fewer than 3 points ({len(poly) // 2})")
    return [list(map(float, p)) for p in value]


def segmentation_mask(value, height: int, width: int, where: str) -> np.ndarray:
    """COCO segmentation (polygons or RLE) -> bool mask (H, W)."""
    if isinstance(value, dict):
        if list(value.get("size", [])) != [height, width]:
            raise DataError(f"{where}: RLE size {value.get('size')} disagrees with the image size "
                            f"{[height, width]}")
        return decode_rle(value)
    if isinstance(value, list):
        return polygons_to_mask(_polygons(value, where), height, width)
    raise DataError(f"{where}: segmentation is neither polygons nor RLE")


def _occluders(visible: list[np.ndarray], amodal: list[np.ndarray], order: list[float]) -> list[np.ndarray]:
    """Occluder mask of each instance: union of the visible masks of nearer instances (smaller
    ``order``) that cover a hidden part of it."""
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


def read_cocoa_native(source: Path, class_agnostic: bool = False) -> dict:
    """Native COCOA: a folder of per-image JSON files (``regions``) beside their images, or one JSON
    file holding a list of such records (``annotations``). Categories come from region names."""
    if source.is_dir():
        paths = sorted(source.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
        records = [(p, _read_json(p)) for p in paths]
        image_dir = source
    else:
        data = _read_json(source)
        records = [(source, r) for r in (data["annotations"] if isinstance(data, dict) else data)]
        image_dir = source.parent
    records = [(p, r) for p, r in records if isinstance(r, dict) and "regions" in r]
    if not records:
        raise DataError(f"{source}: no COCOA records (objects with 'regions') found")
    names = [reg.get("name", "object").strip().lower() for _, r in records for reg in r["regions"]]
    cat_ids = _category_table(names, class_agnostic)
    images, annotations = [], []
    for index, (path, record) in enumerate(records):
        image_id = int(record.get("image_id", index + 1))
        file_name = _find_image(image_dir, path.stem, record)
        with Image.open(image_dir / file_name) as handle:
            width, height = handle.size
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        regions = record["regions"]
        where = [f"{path}: image {image_id} region {k + 1}" for k in range(len(regions))]
        amodal = [segmentation_mask(r["segmentation"], height, width, w) for r, w in zip(regions, where)]
        visible = [segmentation_mask(r["visible_mask"], height, width, w) if "visible_mask" in r else a
                   for r, a, w in zip(regions, amodal, where)]
        order = [float(r.get("order", k + 1)) for k, r in enumerate(regions)]
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


def _find_image(image_dir: Path, stem: str, record: dict) -> str:
    for suffix in IMAGE_SUFFIXES:
        if (image_dir / f"{stem}{suffix}").is_file():
            return f"{stem}{suffix}"
    url_name = str(record.get("url", "")).rsplit("/", 1)[-1]
    if url_name and (image_dir / url_name).is_file():
        return url_name
    raise DataError(f"{image_dir / stem}.json: no image {stem}.jpg/.png (or {url_name or '?'}) beside it")


def read_coco_style(source: Path, amodal_key: str, visible_key: str, bbox_key: str | None = None) -> dict:
    """KINS (``a_segm``/``i_segm``) or D2SA/COCOA-cls (``segmentation``/``visible_mask``): a COCO
    file whose annotations carry an amodal and a visible segmentation (polygons or RLE)."""
    data = _read_json(source)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                              for k in ("images", "annotations", "categories")):
        raise DataError(f"{source}: expected a COCO file with images, annotations and categories")
    _check_coco(source, data)
    images = {im["id"]: im for im in data["images"]}
    per_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if ann.get("image_id") not in images:
            raise DataError(f"{source}: annotation {ann.get('id')} refers to unknown image {ann.get('image_id')}")
        per_image.setdefault(ann["image_id"], []).append(ann)
    out = []
    for image_id, anns in per_image.items():
        im = images[image_id]
        h, w = im["height"], im["width"]
        where = [f"{source}: annotation {a.get('id')}" for a in anns]
        amodal = [segmentation_mask(a[amodal_key], h, w, wh) for a, wh in zip(anns, where)]
        visible = [segmentation_mask(a[visible_key], h, w, wh) if a.get(visible_key) else m
                   for a, m, wh in zip(anns, amodal, where)]
        # Without a depth order, an instance's occluders are those whose visible mask covers its
        # hidden part.
        order = [float(a.get("ico_id", a.get("order", 0))) for a in anns]
        if len(set(order)) <= 1:
            order = [float(v.sum() / max(m.sum(), 1)) * -1.0 for v, m in zip(visible, amodal)]
        for a, am, vi, oc in zip(anns, amodal, visible, _occluders(visible, amodal, order)):
            out.append(_annotation(a["id"], image_id, a["category_id"], am, vi, oc))
    return {"images": list(images.values()), "annotations": out, "categories": data["categories"]}


def _check_coco(source: Path, data: dict) -> None:
    """Refuse what would convert silently wrong: missing keys, duplicate ids, unknown category ids,
    file names outside the image folder."""
    for kind, required in (("images", ("id", "file_name", "height", "width")), ("annotations", ("id", "image_id",
                                                                                            "category_id")),
                           ("categories", ("id",))):
        seen = set()
        for entry in data[kind]:
            missing = [k for k in required if k not in entry]
            if missing:
                raise DataError(f"{source}: an entry of {kind} lacks {', '.join(missing)}")
            if entry["id"] in seen:
                raise DataError(f"{source}: duplicate {kind[:-1].replace('categorie', 'category')} id {entry['id']}")
            seen.add(entry["id"])
    known = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        if ann["category_id"] not in known:
            raise DataError(f"{source}: annotation {ann['id']} has unknown category id {ann['category_id']}")
    for image in data["images"]:  # relative to any folder: absolute paths and ".." are refused
        resolve_image_path(source.parent, str(image["file_name"]), source)


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
        return read_coco_style(source, "segmentation", "visible_mask")
    if fmt == "amodal3d":
        return _read_json(source)
    raise DataError(f"unknown format {fmt!r}: use auto, cocoa, kins or d2sa")

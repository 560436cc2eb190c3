"""The annotation schema of docs/schema.md (COCO-like, aistron convention)."""

from __future__ import annotations

from amodal3d import CATEGORIES

SCHEMA_VERSION = 1


def is_int(value: object) -> bool:
    """A JSON integer (not a boolean, not a float such as 3.0, not a string such as "3")."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A JSON number (int or float; not a boolean, string or null)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


ID_LIMIT = 2**53  # ids are integers of magnitude below this (exact as float64, and in int64 arithmetic)


def is_id(value: object) -> bool:
    """A JSON integer usable as an id: ``-ID_LIMIT < value < ID_LIMIT``."""
    return type(value) is int and -ID_LIMIT < value < ID_LIMIT


def id_problem(entry: dict, key: str = "id") -> str | None:
    """What is wrong with an id field (``id``, ``image_id``, ``category_id``) of a COCO entry, or None."""
    value = entry[key]
    if not is_int(value):
        return f"{key} {value!r} is not an integer id"
    return None if -ID_LIMIT < value < ID_LIMIT else f"{key} {value!r} is out of range (ids are below 2**53 in size)"


def image_size_problem(entry: dict, max_pixels: int | None = None) -> str | None:
    """What is wrong with the ``width`` / ``height`` of a COCO image entry (positive integers, at most
    ``max_pixels`` pixels in all), or None."""
    for key in ("width", "height"):
        value = entry[key]
        if not is_int(value) or value <= 0:
            return f"{key} {value!r} is not a positive integer"
    if max_pixels is not None and entry["width"] * entry["height"] > max_pixels:
        return (f"{entry['width']}x{entry['height']} image is over the {max_pixels:,}-pixel limit; downscale it "
                f"or raise AMODAL3D_MAX_PIXELS")
    return None


def entry_name(kind: str, entry: object) -> str:
    """``image 3`` / ``annotation 12`` / ``category 2`` (``?`` for an entry without a usable id)."""
    ident = entry.get("id", "?") if isinstance(entry, dict) else "?"
    return f"{kind} {ident if is_int(ident) else repr(ident)}"


def categories_json() -> list[dict]:
    """The 13 categories as COCO categories (ids 1..13) carrying their ShapeNet synset."""
    return [{"id": i + 1, "name": name, "supercategory": "shapenet", "synset": synset,
             "shapenet_name": shapenet} for i, (name, synset, shapenet) in enumerate(CATEGORIES)]


def dataset_json(images: list[dict], annotations: list[dict], info: dict | None = None,
                 categories: list[dict] | None = None) -> dict:
    """A full annotation file, images and annotations sorted by id."""
    return {
        "info": {"schema": "amodal3d", "schema_version": SCHEMA_VERSION, **(info or {})},
        "licenses": [],
        "images": sorted(images, key=lambda im: im["id"]),
        "annotations": sorted(annotations, key=lambda a: a["id"]),
        "categories": categories if categories is not None else categories_json(),
    }

"""The annotation schema of DESIGN.md (COCO-like, aistron convention)."""

from __future__ import annotations

from amodal3d import CATEGORIES, CATEGORY_ID

SCHEMA_VERSION = 1


def categories_json() -> list[dict]:
    """The 13 categories as COCO categories (ids 1..13) carrying their ShapeNet synset."""
    return [{"id": i + 1, "name": name, "supercategory": "shapenet", "synset": synset,
             "shapenet_name": shapenet} for i, (name, synset, shapenet) in enumerate(CATEGORIES)]


def categories_are_ours(categories: object) -> bool:
    """True when a COCO ``categories`` list names its ids as this project does (1 airplane .. 13 vessel):
    only then are its category ids this model's categories; others (COCO, KINS, class-agnostic) are not."""
    return isinstance(categories, list) and bool(categories) and all(
        isinstance(c, dict) and CATEGORY_ID.get(c.get("name")) == c.get("id") for c in categories)


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

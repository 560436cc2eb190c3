"""Procedural ShapeNet-like meshes of the 13 categories.

``generate_mesh(category, rng)`` draws one random object: a structural variant of the category (a
swivel chair, a pickup, a sailboat...) and continuous parameters (sizes, proportions, angles,
optional parts). Objects are assembled from the light primitives of
:mod:`amodal3d.data.shapes.primitives` (no booleans: only silhouettes, depth and shading are used),
each primitive its own part (``mesh.metadata["part_ids"]``, int32 (F,)), and returned in the
ShapeNetCore v2 ``model_normalized`` frame: +Y up, the object's front towards +Z, bounding box centred
at the origin with a diagonal of 1. Objects whose real counterparts are bilaterally symmetric are
built symmetric about x = 0 (see :data:`ASYMMETRIC_VARIANTS` for the exceptions).

Generators build in metres (a chair seat is ~0.45 m high) before normalisation; every random
quantity comes from the given ``numpy.random.Generator``, so a seed reproduces a mesh exactly. Each
category's generator is a module of this package (``chair.py``, ``car.py``...: ``build(rng, variant)``),
the builders they share are in ``common.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from amodal3d import CATEGORY_NAMES
from amodal3d.data.shapes import (
    airplane,
    bench,
    car,
    chair,
    display,
    dresser,
    lamp,
    phone,
    rifle,
    sofa,
    speaker,
    table,
    vessel,
)
from amodal3d.data.shapes.primitives import Part, assemble, normalize_mesh

__all__ = ["ASYMMETRIC_VARIANTS", "VARIANTS", "generate_mesh", "normalize_mesh"]

VARIANTS: dict[str, tuple[str, ...]] = {
    "airplane": ("airliner", "straight", "delta", "tail_engine"),
    "bench": ("park", "backless", "picnic", "wooden"),
    "dresser": ("drawers", "doors", "sideboard", "wardrobe"),
    "car": ("sedan", "hatchback", "suv", "pickup", "sports"),
    "chair": ("four_leg", "swivel", "sled", "armchair"),
    "display": ("monitor", "arm", "tv", "crt"),
    "lamp": ("floor", "desk", "pendant", "table"),
    "speaker": ("bookshelf", "tower", "cylindrical", "subwoofer"),
    "rifle": ("assault", "sniper", "shotgun", "bullpup"),
    "sofa": ("two_seat", "three_seat", "sectional", "armless"),
    "table": ("four_leg", "pedestal", "trestle", "panel"),
    "phone": ("smartphone", "flip", "desk", "candybar"),
    "vessel": ("sailboat", "motorboat", "ship", "submarine"),
}
"""Structural variants per category (``generate_mesh(..., variant=...)`` forces one)."""

ASYMMETRIC_VARIANTS: frozenset[tuple[str, str]] = frozenset({("sofa", "sectional")})
"""(category, variant) pairs that are not mirror symmetric about x = 0 (an L-shaped sofa)."""


_GENERATORS: dict[str, Callable[[np.random.Generator, str], list[Part]]] = {
    "chair": chair.build,
    "table": table.build,
    "bench": bench.build,
    "sofa": sofa.build,
    "dresser": dresser.build,
    "car": car.build,
    "airplane": airplane.build,
    "display": display.build,
    "lamp": lamp.build,
    "speaker": speaker.build,
    "rifle": rifle.build,
    "phone": phone.build,
    "vessel": vessel.build,
}


def generate_mesh(category: str, rng: np.random.Generator, variant: str | None = None) -> trimesh.Trimesh:
    """One random object of ``category`` (a name of :data:`amodal3d.CATEGORY_NAMES`), normalized to the
    ShapeNetCore v2 frame (+Y up, front +Z, bounding box centred, diagonal 1).

    ``variant`` forces a structural variant (one of ``VARIANTS[category]``); by default one is drawn
    from ``rng``. The mesh carries ``metadata["part_ids"]`` (int32 (F,), a part index per face) and
    ``metadata["variant"]``. Raises ``ValueError`` for an unknown category or variant."""
    if category not in _GENERATORS:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORY_NAMES)}")
    variants = VARIANTS[category]
    if variant is None:
        variant = variants[int(rng.integers(len(variants)))]
    elif variant not in variants:
        raise ValueError(f"unknown {category} variant {variant!r}; valid: {', '.join(variants)}")
    mesh = normalize_mesh(assemble(_GENERATORS[category](rng, variant)))
    mesh.metadata["variant"] = variant
    return mesh

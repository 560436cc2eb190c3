"""Procedural phone meshes: :func:`build` draws the parts of one phone of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    cylinder,
    disc,
    ellipsoid,
    profile_zy,
    rot_x,
    rounded_box,
    transform,
    tube,
)


def _keypad(center: Sequence[float], width: float, height: float, rows: int, cols: int,
            rotation: np.ndarray | None = None) -> list[Part]:
    """Grid of small keys on a surface facing +z (then rotated by ``rotation`` about ``center``)."""
    c = np.asarray(center, dtype=np.float64)
    kw, kh = width / cols * 0.75, height / rows * 0.7
    parts = []
    for i in range(rows):
        for j in range(cols):
            x = (j + 0.5) / cols * width - width / 2
            y = height / 2 - (i + 0.5) / rows * height
            parts.append(transform(box((kw, kh, 0.003), (x, y, 0.001)), rotation, c))
    return parts


def build(rng: np.random.Generator, variant: str) -> list[Part]:
    """Smartphone, open flip phone, desk telephone with handset, candy-bar phone; screen/keys face +z."""
    parts: list[Part] = []
    if variant == "smartphone":
        w, h, d = _u(rng, 0.064, 0.082), _u(rng, 0.13, 0.168), _u(rng, 0.007, 0.011)
        corner = _u(rng, 0.004, 0.012)
        parts.append(rounded_box((w, h, d), d * _u(rng, 0.2, 0.48), (0, 0, 0), corner=corner))
        bezel = _u(rng, 0.002, 0.005)
        chin = _u(rng, 0.0, 0.012)
        parts.append(rounded_box((w - 2 * bezel, h - 2 * bezel - chin, 0.0012), 0.0005,
                                 (0, chin / 2, d / 2 + 0.0002),
                                 corner=max(corner - bezel, 0.001)))
        parts.append(box((0.012, 0.0015, 0.001), (0, h / 2 - bezel / 2 - 0.0005, d / 2 + 0.0003)))
        if _chance(rng, 0.6):  # camera bump on the back
            cw = _u(rng, 0.015, 0.03)
            parts.append(rounded_box((cw, cw * _u(rng, 1.0, 1.8), 0.0015), 0.0006,
                                     (0, h / 2 - 0.02, -d / 2 - 0.0006),
                                     corner=0.004))
        else:
            parts.append(disc((0, h / 2 - 0.015, -d / 2 - 0.0005), 0.006, 0.0015, axis="z", sections=12))
        parts += _both(box((0.0012, 0.015, d * 0.4), (w / 2 + 0.0004, h * 0.15, 0)))
        return parts
    if variant == "candybar":
        w, h, d = _u(rng, 0.044, 0.052), _u(rng, 0.1, 0.125), _u(rng, 0.013, 0.02)
        parts.append(rounded_box((w, h, d), d * 0.4, (0, 0, 0), corner=_u(rng, 0.005, 0.012)))
        sh = h * _u(rng, 0.28, 0.36)
        parts.append(box((w * 0.78, sh, 0.0012), (0, h / 2 - 0.012 - sh / 2, d / 2 + 0.0003)))
        parts.append(disc((0, h / 2 - 0.016 - sh - 0.008, d / 2 + 0.0008), 0.007, 0.0025, axis="z",
                          sections=12))
        parts += _keypad((0, -h / 2 + 0.008 + 0.5 * (h * 0.36), d / 2), w * 0.8, h * 0.36, 4, 3)
        if _chance(rng, 0.3):
            parts.append(cylinder((0, h / 2 - 0.004, -d * 0.2), (0, h / 2 + 0.012, -d * 0.2), 0.003,
                                  sections=8))
        return parts
    if variant == "flip":
        w = _u(rng, 0.044, 0.052)
        h1, h2 = _u(rng, 0.08, 0.1), _u(rng, 0.08, 0.1)
        d1, d2 = _u(rng, 0.011, 0.016), _u(rng, 0.007, 0.011)
        tilt = _u(rng, 8, 30)
        parts.append(rounded_box((w, h1, d1), d1 * 0.35, (0, h1 / 2, 0), corner=0.006))
        parts += _keypad((0, h1 * 0.38, d1 / 2), w * 0.78, h1 * 0.52, 4, 3)
        parts.append(disc((0, h1 * 0.78, d1 / 2 + 0.0008), 0.0065, 0.002, axis="z", sections=12))
        pivot = np.array([0.0, h1, -d1 / 2 + d2 / 2])
        rot = rot_x(-tilt)
        parts.append(transform(rounded_box((w, h2, d2), d2 * 0.35, (0, h2 / 2 + 0.004, 0), corner=0.006), rot,
                               pivot))
        parts.append(transform(box((w * 0.8, h2 * 0.55, 0.0012), (0, h2 * 0.55, d2 / 2 + 0.0003)), rot,
                               pivot))
        parts.append(cylinder((-w / 2 + 0.003, h1, -d1 / 2 + d2 / 2), (w / 2 - 0.003, h1, -d1 / 2 + d2 / 2),
                              0.0055, sections=10))
        return parts
    # desk phone: wedge base with keypad and display, handset across the top
    w, depth = _u(rng, 0.17, 0.24), _u(rng, 0.17, 0.23)
    hb, hf = _u(rng, 0.06, 0.09), _u(rng, 0.025, 0.04)
    zf, zb = depth / 2, -depth / 2
    parts.append(profile_zy([(zf, 0.0), (zf, hf), (zb + 0.06, hb), (zb, hb), (zb, 0.0)], w))
    slope = np.degrees(np.arctan2(hb - hf, zf - zb - 0.06))
    rot = rot_x(-(90 - slope))
    mid = np.array([0.0, (hf + hb) / 2, (zf + zb + 0.06) / 2])   # centre of the sloped top
    pad_c = mid + rot @ np.array([0.0, -0.015, 0.0])
    parts += _keypad(pad_c, w * 0.4, 0.07, 4, 3, rot)
    parts.append(transform(box((w * 0.35, 0.022, 0.004), (0, 0.04, 0.0)), rot, mid))
    # handset lying across the back, on a cradle
    hl = _u(rng, 0.19, 0.23)
    hy = hb + 0.018
    hz = zb + 0.03
    parts += _both(box((0.03, 0.015, 0.04), (hl / 2 - 0.025, hb + 0.005, hz)))
    parts.append(tube([(-hl / 2 + 0.02, hy + 0.004, hz), (-hl / 4, hy + 0.012, hz), (hl / 4, hy + 0.012, hz),
                       (hl / 2 - 0.02, hy + 0.004, hz)], 0.011, sections=8, aspect=0.8))
    for sx in (1.0, -1.0):
        parts.append(ellipsoid((sx * (hl / 2 - 0.02), hy, hz), (0.025, 0.015, 0.026), rows=5, sections=10))
    return parts

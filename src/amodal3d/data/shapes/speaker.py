"""Procedural speaker meshes: :func:`build` draws the parts of one speaker of a structural variant of
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
    lathe,
    rot_x,
    rot_z,
    rounded_box,
)


def _driver(center: Sequence[float], radius: float, rotation: np.ndarray | None = None) -> Part:
    """Loudspeaker driver facing +z (frame rim, concave cone, dust cap) whose back sits at ``center``."""
    r = radius
    prof = [(0.0, 0.0), (r, 0.0), (r, 0.06 * r + 0.002), (0.88 * r, 0.1 * r + 0.002),
            (0.76 * r, 0.06 * r + 0.002),
            (0.3 * r, 0.002), (0.27 * r, 0.05 * r + 0.002), (0.0, 0.08 * r + 0.002)]
    rot = rot_x(90) if rotation is None else rotation @ rot_x(90)
    return lathe(prof, sections=16, center=center, rotation=rot)


def build(rng: np.random.Generator, variant: str) -> list[Part]:
    """Bookshelf speaker, floor-standing tower, cylindrical (smart / portable) speaker, subwoofer."""
    parts: list[Part] = []
    if variant == "cylindrical":
        r = _u(rng, 0.05, 0.1)
        h = r * _u(rng, 1.6, 3.2)
        if _chance(rng, 0.3):  # lying portable speaker: axis along x, drivers on the front
            length = r * _u(rng, 2.5, 4.0)
            parts.append(lathe([(0.0, -length / 2), (r * 0.95, -length / 2), (r, -length / 2 + 0.01),
                                (r, length / 2 - 0.01), (r * 0.95, length / 2), (0.0, length / 2)],
                               sections=18, center=(0, r, 0), rotation=rot_z(90)))
            rd = r * 0.5
            for sx in (-1.0, 1.0):
                parts.append(_driver((sx * length * 0.22, r, np.sqrt(r ** 2 - rd ** 2) - 0.003), rd))
                parts.append(disc((sx * (length / 2 + 0.004), r, 0), r * 0.7, 0.01, axis="x", sections=14))
            return parts
        foot = _u(rng, 0.005, 0.015)
        parts.append(disc((0, foot / 2, 0), r * _u(rng, 0.75, 0.92), foot, sections=20))
        parts.append(lathe([(0.0, foot), (r * 0.9, foot), (r, foot + 0.02), (r, h - 0.015), (r * 0.92, h),
                            (0.0, h)], sections=20))
        n = int(rng.integers(1, 3))
        rd = r * _u(rng, 0.35, 0.5)
        for k in range(n):
            y = h * (0.3 + 0.4 * k) if n == 2 else h * 0.5
            parts.append(_driver((0, y, np.sqrt(r ** 2 - rd ** 2) - 0.003), rd))
        if _chance(rng, 0.5):
            parts.append(disc((0, h + 0.003, 0), r * 0.8, 0.006, axis="y", sections=18))
        return parts
    if variant == "tower":
        w, h, d = _u(rng, 0.17, 0.28), _u(rng, 0.8, 1.15), _u(rng, 0.22, 0.36)
    elif variant == "subwoofer":
        w = _u(rng, 0.3, 0.5)
        h, d = w * _u(rng, 0.95, 1.15), w * _u(rng, 0.9, 1.15)
    else:
        w, h, d = _u(rng, 0.14, 0.26), _u(rng, 0.22, 0.4), _u(rng, 0.18, 0.3)
    feet = 0.0
    if variant == "tower":
        feet = _u(rng, 0.02, 0.05)
        parts.append(box((w + 0.06, 0.02, d + 0.05), (0, feet - 0.01, 0)))
        for sz in (1, -1):
            parts += _both(cylinder((w / 2 + 0.01, 0.0, sz * d / 2), (w / 2 + 0.01, feet - 0.02, sz * d / 2),
                                    0.008, 0.001, sections=6))  # spikes
    elif variant == "subwoofer":
        feet = 0.02
        for sz in (1, -1):
            parts += _both(disc((w / 2 - 0.05, feet / 2, sz * (d / 2 - 0.05)), 0.03, feet, sections=10))
    edge = _u(rng, 0.002, 0.03)
    parts.append(rounded_box((w, h, d), edge, (0, feet + h / 2, 0), corner=edge))
    zf = d / 2 - 0.002
    if variant == "subwoofer":
        parts.append(_driver((0, feet + h / 2, zf), 0.42 * min(w, h)))
        if _chance(rng, 0.5):
            parts.append(disc((0, feet + 0.08, zf), 0.03, 0.01, axis="z", sections=12))
        return parts
    tweeter_r = _u(rng, 0.012, 0.022)
    n = 1 if variant == "bookshelf" else int(rng.integers(2, 5))
    y = feet + h - max(0.04, tweeter_r + 0.025)
    parts.append(_driver((0, y, zf), tweeter_r))
    y -= tweeter_r + 0.01
    room = (y - feet - (0.06 if variant == "tower" else 0.02)) / n     # height available per woofer
    woofer_r = min(w * _u(rng, 0.32, 0.42), 0.1, 0.5 * room - 0.005)
    for _ in range(n):
        parts.append(_driver((0, y - room / 2 if n == 1 else y - woofer_r - 0.008, zf), woofer_r))
        y -= room if n == 1 else 2 * woofer_r + 0.016
    if _chance(rng, 0.5):  # bass port
        py = feet + min(0.06, y - feet - 0.02) if y - feet > 0.05 else feet + h * 0.1
        parts.append(lathe([(0.02, 0.0), (0.02, 0.006)], sections=12, caps=False, center=(0, py, zf),
                           rotation=rot_x(90)))
    return parts

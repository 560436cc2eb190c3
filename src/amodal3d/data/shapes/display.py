"""Procedural display meshes: :func:`build` draws the parts of one display of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amodal3d.data.shapes.common import (
    _chance,
    _pick,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    cylinder,
    lathe,
    loft,
    rot_x,
    rounded_box,
    rounded_rect,
    transform,
    tube,
)


def _screen_panel(w: float, h: float, depth: float, bezel: float, center: Sequence[float],
                  rng: np.random.Generator, tilt: float = 0.0) -> list[Part]:
    """Flat panel (bezel frame box + inset screen + rear bulge) facing +z, centred at ``center``."""
    c = np.asarray(center, dtype=np.float64)
    rot = rot_x(-tilt)
    panel = rounded_box((w, h, depth), min(0.004, depth / 3), corner=_u(rng, 0.002, 0.012))
    parts = [transform(panel, rot, c)]
    chin = bezel * _u(rng, 1.0, 3.0) if _chance(rng, 0.4) else 0.0   # thicker bottom bezel
    parts.append(transform(box((w - 2 * bezel, h - 2 * bezel - chin, 0.004), (0, chin / 2, depth / 2 + 0.001)),
                           rot, c))
    if _chance(rng, 0.7):
        bulge = rounded_box((w * _u(rng, 0.4, 0.8), h * _u(rng, 0.4, 0.7), depth * _u(rng, 0.8, 2.0)), 0.01,
                            (0, -0.05 * h, -depth / 2))
        parts.append(transform(bulge, rot, c))
    return parts


def build(rng: np.random.Generator, variant: str) -> list[Part]:
    """Monitor on a stand, monitor on a desk arm, wide TV, CRT monitor; screen faces +z."""
    parts: list[Part] = []
    if variant == "crt":
        w = _u(rng, 0.36, 0.48)
        h = w * _u(rng, 0.78, 0.85)
        depth = w * _u(rng, 0.85, 1.1)
        base_h = _u(rng, 0.02, 0.08)
        y0 = base_h + h / 2 + 0.01
        front_d = _u(rng, 0.05, 0.1)
        parts.append(rounded_box((w, h, front_d), 0.01, (0, y0, -front_d / 2), corner=0.02))
        parts.append(rounded_box((w * 0.8, h * 0.78, 0.01), 0.004, (0, y0 + 0.01 * h, 0.002), corner=0.03))
        shrink = _u(rng, 0.45, 0.65)
        rings = []
        for f, sc in ((0.0, 0.97), (0.25, 0.95), (1.0, shrink)):
            rect = rounded_rect(w * sc, h * sc, 0.03, 2)
            rings.append(np.column_stack([rect[:, 0], rect[:, 1] + y0 - (1 - sc) * 0.15 * h,
                                          np.full(len(rect), -front_d - f * (depth - front_d))]))
        parts.append(loft(np.stack(rings)))
        if base_h > 0.03:
            parts.append(lathe([(0.0, 0.0), (w * 0.32, 0.0), (w * 0.3, 0.015), (w * 0.15, base_h + 0.01),
                                (0.0, base_h + 0.01)], sections=16, center=(0, 0, -depth * 0.4)))
        else:
            parts.append(box((w * 0.6, base_h + 0.005, depth * 0.6),
                             (0, (base_h + 0.005) / 2, -depth * 0.45)))
        return parts
    if variant == "tv":
        w = _u(rng, 0.9, 1.6)
        h = w * 9 / 16 + _u(rng, 0.0, 0.04)
        depth = _u(rng, 0.02, 0.06)
        stand = _pick(rng, ("feet", "pedestal", "none"))
        lift = _u(rng, 0.05, 0.12) if stand != "none" else 0.0
        y0 = lift + h / 2
        parts += _screen_panel(w, h, depth, _u(rng, 0.006, 0.02), (0, y0, 0), rng)
        if stand == "feet":
            xf = w / 2 - _u(rng, 0.06, 0.25)
            fd = _u(rng, 0.18, 0.3)
            for sx in (1.0, -1.0):
                parts.append(tube([(sx * xf, lift + 0.03, 0.0), (sx * (xf + 0.03), 0.0, fd / 2)], 0.012,
                                  sections=6))
                parts.append(tube([(sx * xf, lift + 0.03, 0.0), (sx * (xf + 0.03), 0.0, -fd / 2)], 0.012,
                                  sections=6))
        elif stand == "pedestal":
            parts.append(box((0.08, lift + 0.05, 0.03), (0, (lift + 0.05) / 2, -depth / 2 - 0.01)))
            parts.append(rounded_box((_u(rng, 0.3, 0.5), 0.02, _u(rng, 0.18, 0.26)), 0.006, (0, 0.01, -0.02),
                                     corner=0.03))
        else:  # wall bracket on the back
            parts.append(box((0.3, 0.25, 0.03), (0, y0, -depth / 2 - 0.035)))
        return parts
    # computer monitor
    w = _u(rng, 0.45, 0.75)
    aspect = _pick(rng, (9 / 16, 10 / 16, 9 / 21 * 1.1))
    h = w * aspect
    depth = _u(rng, 0.015, 0.04)
    tilt = _u(rng, 0.0, 10.0)
    if variant == "monitor":
        lift = _u(rng, 0.06, 0.16)
        y0 = lift + h / 2
        parts += _screen_panel(w, h, depth, _u(rng, 0.005, 0.02), (0, y0, 0), rng, tilt)
        neck_z = -depth / 2 - _u(rng, 0.02, 0.06)
        base = _pick(rng, ("plate", "disc", "v"))
        base_d = _u(rng, 0.16, 0.24)
        foot_z = neck_z - _u(rng, 0.0, 0.05)
        parts.append(tube([(0, y0 - 0.03, neck_z + 0.01), (0, 0.015, foot_z)], 0.03, sections=4, aspect=0.4))
        if base == "plate":
            parts.append(rounded_box((_u(rng, 0.2, 0.3), 0.015, base_d), 0.005, (0, 0.0075, foot_z + 0.03),
                                     corner=0.02))
        elif base == "disc":
            parts.append(transform(lathe([(1.0, 0.0), (0.95, 0.015)], sections=20), None,
                                   (0, 0, foot_z + 0.02),
                                   (0.11, 1.0, base_d / 2)))
        else:
            for sx in (1.0, -1.0):
                parts.append(tube([(0, 0.012, foot_z), (sx * 0.12, 0.008, foot_z + base_d * 0.7)], 0.012,
                                  sections=4, aspect=0.5))
        return parts
    # monitor on an articulated desk arm, clamped behind it
    lift = _u(rng, 0.15, 0.3)
    y0 = lift + h / 2
    parts += _screen_panel(w, h, depth, _u(rng, 0.005, 0.02), (0, y0, 0), rng, tilt)
    mount_z = -depth / 2 - 0.02
    pole_z = mount_z - _u(rng, 0.2, 0.35)
    pole_h = y0 + _u(rng, -0.1, 0.15)
    parts.append(box((0.1, 0.1, 0.012), (0, y0, mount_z + 0.006)))
    parts.append(cylinder((0, 0.0, pole_z), (0, pole_h, pole_z), 0.018, sections=10))
    parts.append(box((0.1, 0.04, 0.14), (0, 0.02, pole_z + 0.02)))
    elbow = np.array([0.0, pole_h - _u(rng, 0.0, 0.1), (pole_z + mount_z) / 2 - 0.03])
    parts.append(tube([(0, pole_h - 0.03, pole_z), elbow], 0.02, sections=6, aspect=0.6))
    parts.append(tube([elbow, (0, y0, mount_z - 0.03)], 0.018, sections=6, aspect=0.6))
    parts.append(cylinder(elbow - np.array([0, 0.025, 0]), elbow + np.array([0, 0.025, 0]), 0.025,
                          sections=10))
    return parts
